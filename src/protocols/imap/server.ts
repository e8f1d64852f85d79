/**
 * IMAP listeners: plain with STARTTLS (143) and implicit TLS (993), each
 * connection an ImapSession. The transport below the session also does
 * STARTTLS (a TLSSocket over the same connection) and COMPRESS=DEFLATE
 * (RFC 4978: raw deflate both ways, a sync flush after every response).
 */
import net from 'node:net';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { once } from 'node:events';
import type { ImapHooks } from './hooks.ts';
import { ImapSession, type SessionLimits, type SessionTransport } from './session.ts';
import type { Chunk } from './format.ts';
import { WireCache } from './wire-cache.ts';

export interface ImapListenerOptions {
  hostname: string;
  host: string;
  /** Port with STARTTLS; null: not started. */
  port: number | null;
  /** Port with implicit TLS; null: not started. */
  tlsPort: number | null;
  tls: { key: string; cert: string };
  allowPlaintextAuth: boolean;
  hooks: ImapHooks;
  limits: SessionLimits & { maxConnections: number; maxConnectionsPerIp: number; idleTimeoutMs: number };
  /** Budget of the rendered ENVELOPE/BODYSTRUCTURE cache shared by the sessions (wire-cache.ts); default 32 MiB. */
  wireCacheBytes?: number;
  onError?: (err: unknown) => void;
}

export interface ImapListener {
  port: number | null;
  tlsPort: number | null;
  /** Open connections. */
  connections(): number;
  close(): Promise<void>;
}

export async function startImapListener(o: ImapListenerOptions): Promise<ImapListener> {
  const context = tls.createSecureContext({ key: o.tls.key, cert: o.tls.cert });
  const sockets = new Set<net.Socket>();
  const perIp = new Map<string, number>();
  const wireCache = new WireCache(o.wireCacheBytes ?? 32 * 1024 * 1024);

  const accept = (raw: net.Socket, implicitTls: boolean) => {
    const ip = raw.remoteAddress ?? '';
    const n = perIp.get(ip) ?? 0;
    if (sockets.size >= o.limits.maxConnections || n >= o.limits.maxConnectionsPerIp) {
      raw.end('* BYE [UNAVAILABLE] Too many connections\r\n');
      raw.on('error', () => undefined);
      return;
    }
    perIp.set(ip, n + 1);
    sockets.add(raw);
    raw.setNoDelay(true);
    let sock: net.Socket = implicitTls ? new tls.TLSSocket(raw, { isServer: true, secureContext: context }) : raw;
    let secure = implicitTls;
    let deflate: zlib.DeflateRaw | null = null;
    let inflate: zlib.InflateRaw | null = null;
    let closed = false;
    const onData = (d: Buffer) => {
      if (inflate) inflate.write(d);
      else session.input(d);
    };
    const finish = () => {
      if (closed) return;
      closed = true;
      sockets.delete(raw);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
      session.end();
    };
    const transport: SessionTransport = {
      write(chunks: Chunk[]) {
        if (closed) return true;
        // Adjacent strings are joined first (V8 ropes) and converted once: a FETCH
        // batch is thousands of small chunks, and one Buffer per chunk cost more
        // than the rest of the response (profiled, docs/imap.md "Performance").
        const parts: Buffer[] = [];
        let s = '';
        for (const c of chunks) {
          if (typeof c === 'string') s += c;
          else {
            if (s !== '') parts.push(Buffer.from(s, 'latin1'));
            s = '';
            parts.push(c);
          }
        }
        if (s !== '') parts.push(Buffer.from(s, 'latin1'));
        const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        if (deflate) {
          deflate.write(buf);
          deflate.flush(zlib.constants.Z_SYNC_FLUSH);
          return !deflate.writableNeedDrain && !sock.writableNeedDrain;
        }
        return sock.write(buf);
      },
      async drain() {
        // Resolves when what was written has gone to the kernel (or the connection is gone).
        for (const stream of deflate ? [deflate, sock] : [sock]) {
          while (!closed && stream.writableNeedDrain) {
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
      },
      async startTls() {
        sock.removeListener('data', onData);
        const t = new tls.TLSSocket(sock, { isServer: true, secureContext: context });
        t.on('error', () => finish());
        t.on('data', onData);
        t.setTimeout(o.limits.idleTimeoutMs, () => t.destroy());
        sock = t;
        secure = true;
        await once(t, 'secure');
      },
      startDeflate() {
        deflate = zlib.createDeflateRaw();
        deflate.on('data', (d: Buffer) => sock.write(d));
        inflate = zlib.createInflateRaw();
        inflate.on('data', (d: Buffer) => session.input(d));
        inflate.on('error', () => sock.destroy());
      },
      close() {
        if (deflate) deflate.end(() => sock.end());
        else sock.end();
        setTimeout(() => raw.destroy(), 2000).unref();
      },
      get secure() {
        return secure;
      },
      get compressed() {
        return deflate !== null;
      },
      remoteAddress: ip,
    };
    const session = new ImapSession(transport, {
      hostname: o.hostname,
      hooks: o.hooks,
      allowPlaintextAuth: o.allowPlaintextAuth,
      tlsAvailable: true,
      limits: o.limits,
      wireCache,
      ...(o.onError ? { onError: o.onError } : {}),
    });
    sock.on('data', onData);
    sock.on('error', () => finish());
    raw.on('error', () => finish());
    raw.on('close', () => finish());
    // An idle connection goes after idleTimeoutMs (RFC 9051: at least 30 minutes once logged in).
    sock.setTimeout(o.limits.idleTimeoutMs, () => {
      transport.write(['* BYE Autologout; idle for too long\r\n']);
      sock.destroy();
    });
    if (implicitTls) sock.once('secure', () => session.greet());
    else session.greet();
  };

  const servers: net.Server[] = [];
  const listen = async (port: number, implicitTls: boolean): Promise<number> => {
    const server = net.createServer((s) => accept(s, implicitTls));
    server.listen(port, o.host);
    await once(server, 'listening');
    servers.push(server);
    return (server.address() as net.AddressInfo).port;
  };
  try {
    const port = o.port === null ? null : await listen(o.port, false);
    const tlsPort = o.tlsPort === null ? null : await listen(o.tlsPort, true);
    return {
      port,
      tlsPort,
      connections: () => sockets.size,
      async close() {
        for (const s of servers) s.close();
        for (const s of sockets) s.destroy();
        await Promise.all(servers.map((s) => (s.listening ? once(s, 'close') : Promise.resolve())));
      },
    };
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
}
