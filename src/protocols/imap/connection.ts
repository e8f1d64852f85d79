/**
 * One IMAP connection below its session: the socket (a TLSSocket over it
 * after STARTTLS), COMPRESS=DEFLATE (RFC 4978: raw deflate both ways, a sync
 * flush after every response) and the end of the connection, whichever way
 * it comes. The listener (server.ts) counts connections and starts these.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import type { ImapHooks } from './hooks.ts';
import { ImapSession, type SessionLimits, type SessionTransport } from './session.ts';
import type { Chunk } from './format.ts';
import type { WireCache } from './wire-cache.ts';
import { SyncZlib, Z_NO_FLUSH, Z_SYNC_FLUSH } from './sync-zlib.ts';

export interface ConnectionOptions {
  hostname: string;
  hooks: ImapHooks;
  allowPlaintextAuth: boolean;
  limits: SessionLimits & { idleTimeoutMs: number };
  secureContext: tls.SecureContext;
  wireCache: WireCache;
  onError?: (err: unknown) => void;
  /**
   * Per-command timing lines (TWOWAY_IMAP_TRACE, server.ts): the command's tag and name, then
   * milliseconds from the arrival of its last octet to its start, to its tagged reply, and to
   * the write that sent that reply to the socket.
   */
  trace?: (line: string) => void;
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
  #deflate: SyncZlib | null = null;
  #inflate: SyncZlib | null = null;
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
      ...(o.trace ? { trace: this.#traceCommand } : {}),
    });
  }

  /** Commands whose tagged reply is written but not yet flushed: tag, name, arrived, started, replied. */
  readonly #traced: Array<[string, string, number, number, number]> = [];

  readonly #traceCommand = (tag: string, command: string, arrivedAt: number, startedAt: number): void => {
    this.#traced.push([tag, command, arrivedAt, startedAt, performance.now()]);
  };

  /** The socket's 'data' listener (one bound function, so that STARTTLS can remove it). */
  readonly onData = (d: Buffer): void => {
    if (!this.#inflate) {
      this.session.input(d);
      return;
    }
    try {
      // Each piece to the session as it is inflated; none once the connection has ended.
      this.#inflate.process(d, Z_SYNC_FLUSH, this.#inflated);
    } catch {
      this.sock.destroy();
    }
  };

  readonly #inflated = (piece: Buffer): boolean => {
    if (this.#closed || this.session.ended) return false;
    this.session.input(piece);
    return true;
  };

  finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.o.onClose();
    this.session.end();
    this.#deflate?.close();
    this.#inflate?.close();
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
    if (this.#pendingOctets === 0 || this.#closed) {
      this.#pending.length = 0;
      this.#pendingOctets = 0;
      return !this.sock.writableNeedDrain;
    }
    const pending = this.#pending;
    let buf: Buffer;
    if (this.#deflate) {
      // Each piece deflated where it lies (no copy into one buffer first), the last one sync-flushed
      // (RFC 4978: the client can decode each response when it arrives); what comes out is small.
      const out: Buffer[] = [];
      const sink = (piece: Buffer) => void out.push(piece);
      for (let i = 0; i < pending.length; i++) this.#deflate.process(pending[i]!, i === pending.length - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH, sink);
      buf = out.length === 1 ? out[0]! : Buffer.concat(out);
    } else buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, this.#pendingOctets);
    pending.length = 0;
    this.#pendingOctets = 0;
    const ok = this.sock.write(buf);
    if (this.#traced.length > 0 && this.o.trace) {
      const now = performance.now();
      const ms = (a: number, b: number) => (b - a).toFixed(2);
      for (const [tag, name, arrived, started, replied] of this.#traced) this.o.trace(`${tag} ${name} ${ms(arrived, started)} ${ms(arrived, replied)} ${ms(arrived, now)} ${buf.length}`);
      this.#traced.length = 0;
    }
    return ok;
  }

  async drain(): Promise<void> {
    this.flush();
    // Resolves when what was written has gone to the kernel (or the connection is gone).
    const { raw, sock } = this;
    while (!this.#closed && sock.writableNeedDrain) {
      await new Promise<void>((resolve) => {
        const done = () => {
          sock.off('drain', done);
          raw.off('close', done);
          resolve();
        };
        sock.once('drain', done);
        raw.once('close', done);
      });
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
    // On this thread (sync-zlib.ts: a trip to the thread pool per write cost more than the zlib work).
    this.#deflate = SyncZlib.deflateRaw();
    this.#inflate = SyncZlib.inflateRaw();
  }

  close(): void {
    this.flush();
    this.sock.end();
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
