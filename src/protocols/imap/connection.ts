/**
 * One IMAP connection below its session: the socket (a TLSSocket over it
 * after STARTTLS), COMPRESS=DEFLATE (RFC 4978: raw deflate both ways, a sync
 * flush after every response) and the end of the connection, whichever way
 * it comes. The listener (server.ts) counts connections and starts these.
 */
import type net from 'node:net';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { once } from 'node:events';
import type { ImapHooks } from './hooks.ts';
import { ImapSession, type SessionLimits, type SessionTransport } from './session.ts';
import type { Chunk } from './format.ts';
import type { WireCache } from './wire-cache.ts';

export interface ConnectionOptions {
  hostname: string;
  hooks: ImapHooks;
  allowPlaintextAuth: boolean;
  limits: SessionLimits & { idleTimeoutMs: number };
  secureContext: tls.SecureContext;
  wireCache: WireCache;
  onError?: (err: unknown) => void;
  /** Called once when the connection ends, whichever way. */
  onClose: () => void;
}

/** Starts a session on an accepted socket: greets at once, or after the TLS handshake on the implicit-TLS port. */
export function serveConnection(raw: net.Socket, implicitTls: boolean, o: ConnectionOptions): void {
  raw.setNoDelay(true);
  const connection = new ImapConnection(raw, implicitTls, o);
  const { sock } = connection;
  sock.on('data', connection.onData);
  sock.on('error', () => connection.finish());
  raw.on('error', () => connection.finish());
  raw.on('close', () => connection.finish());
  // An idle connection goes after idleTimeoutMs (RFC 9051: at least 30 minutes once logged in).
  sock.setTimeout(o.limits.idleTimeoutMs, () => {
    connection.write(['* BYE Autologout; idle for too long\r\n']);
    connection.flush();
    sock.destroy();
  });
  if (implicitTls) sock.once('secure', () => connection.session.greet());
  else connection.session.greet();
}

class ImapConnection implements SessionTransport {
  sock: net.Socket;
  readonly session: ImapSession;
  readonly remoteAddress: string;
  #secure: boolean;
  #deflate: zlib.DeflateRaw | null = null;
  #inflate: zlib.InflateRaw | null = null;
  #closed = false;
  /** Responses not yet written (write()), and their octets. */
  readonly #pending: Buffer[] = [];
  #pendingOctets = 0;
  #flushQueued = false;

  constructor(
    private readonly raw: net.Socket,
    implicitTls: boolean,
    private readonly o: ConnectionOptions,
  ) {
    this.remoteAddress = raw.remoteAddress ?? '';
    this.sock = implicitTls ? new tls.TLSSocket(raw, { isServer: true, secureContext: o.secureContext }) : raw;
    this.#secure = implicitTls;
    this.session = new ImapSession(this, {
      hostname: o.hostname,
      hooks: o.hooks,
      allowPlaintextAuth: o.allowPlaintextAuth,
      tlsAvailable: true,
      limits: o.limits,
      wireCache: o.wireCache,
      ...(o.onError ? { onError: o.onError } : {}),
    });
  }

  /** The socket's 'data' listener (one bound function, so that STARTTLS can remove it). */
  readonly onData = (d: Buffer): void => {
    if (this.#inflate) this.#inflate.write(d);
    else this.session.input(d);
  };

  finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.o.onClose();
    this.session.end();
  }

  /**
   * Responses are gathered until this turn of the event loop ends (or
   * FLUSH_OCTETS are waiting), then go out as one write: one TLS write and,
   * with COMPRESS, one deflate call and sync flush, for all the responses of
   * the commands a client pipelined (mbsync sends a `UID FETCH` per message).
   * One write per response cost more than the responses themselves
   * (profiled, docs/imap.md "Performance").
   */
  write(chunks: Chunk[]): boolean {
    if (this.#closed) return true;
    this.#pendingOctets += appendChunks(chunks, this.#pending);
    if (this.#pendingOctets >= FLUSH_OCTETS) return this.flush();
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(this.#flushLater);
    }
    return true;
  }

  readonly #flushLater = (): void => {
    this.#flushQueued = false;
    this.flush();
  };

  /** Sends what write() gathered; false when the connection's send buffer is full. */
  flush(): boolean {
    const deflate = this.#deflate;
    if (this.#pendingOctets === 0 || this.#closed) {
      this.#pending.length = 0;
      this.#pendingOctets = 0;
      return !(deflate?.writableNeedDrain ?? false) && !this.sock.writableNeedDrain;
    }
    const buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingOctets);
    this.#pending.length = 0;
    this.#pendingOctets = 0;
    if (deflate) {
      // Sync-flushed by the write itself (the stream's default flush flag, startDeflate).
      deflate.write(buf);
      return !deflate.writableNeedDrain && !this.sock.writableNeedDrain;
    }
    return this.sock.write(buf);
  }

  async drain(): Promise<void> {
    this.flush();
    // Resolves when what was written has gone to the kernel (or the connection is gone).
    const raw = this.raw;
    for (const stream of this.#deflate ? [this.#deflate, this.sock] : [this.sock]) {
      while (!this.#closed && stream.writableNeedDrain) {
        await new Promise<void>((resolve) => {
          const done = () => {
            stream.off('drain', done);
            raw.off('close', done);
            resolve();
          };
          stream.once('drain', done);
          raw.once('close', done);
        });
      }
    }
  }

  async startTls(): Promise<void> {
    // The tagged OK goes out in the clear, before the handshake.
    this.flush();
    this.sock.removeListener('data', this.onData);
    const t = new tls.TLSSocket(this.sock, { isServer: true, secureContext: this.o.secureContext });
    t.on('error', () => this.finish());
    t.on('data', this.onData);
    t.setTimeout(this.o.limits.idleTimeoutMs, () => t.destroy());
    this.sock = t;
    this.#secure = true;
    await once(t, 'secure');
  }

  startDeflate(): void {
    // The tagged OK goes out uncompressed (RFC 4978 3).
    this.flush();
    // Every write ends with a sync flush (RFC 4978: the client can decode each response when it
    // arrives), done with the write in one call to zlib's thread pool, not a write and a flush.
    const deflate = zlib.createDeflateRaw({ flush: zlib.constants.Z_SYNC_FLUSH });
    deflate.on('data', (d: Buffer) => this.sock.write(d));
    this.#deflate = deflate;
    const inflate = zlib.createInflateRaw();
    inflate.on('data', (d: Buffer) => this.session.input(d));
    inflate.on('error', () => this.sock.destroy());
    this.#inflate = inflate;
  }

  close(): void {
    this.flush();
    if (this.#deflate) this.#deflate.end(() => this.sock.end());
    else this.sock.end();
    setTimeout(() => this.raw.destroy(), 2000).unref();
  }

  get secure(): boolean {
    return this.#secure;
  }

  get compressed(): boolean {
    return this.#deflate !== null;
  }
}

/** Above this many octets waiting, write() sends them at once rather than at the end of the turn. */
const FLUSH_OCTETS = 256 * 1024;

/**
 * Appends a response's chunks to `into`, adjacent strings joined first (V8
 * ropes) and converted once: a FETCH batch is thousands of small chunks, and
 * one Buffer per chunk cost more than the rest of the response (profiled,
 * docs/imap.md "Performance"). Returns the octets added.
 */
function appendChunks(chunks: Chunk[], into: Buffer[]): number {
  let octets = 0;
  let s = '';
  for (const c of chunks) {
    if (typeof c === 'string') s += c;
    else {
      if (s !== '') {
        into.push(Buffer.from(s, 'latin1'));
        octets += s.length;
      }
      s = '';
      into.push(c);
      octets += c.length;
    }
  }
  if (s !== '') {
    into.push(Buffer.from(s, 'latin1'));
    octets += s.length;
  }
  return octets;
}
