/**
 * IMAP listeners: plain with STARTTLS (143) and implicit TLS (993), each
 * connection an ImapSession over an ImapConnection (connection.ts), which
 * also does STARTTLS and COMPRESS=DEFLATE. The listener enforces the
 * connection limits, in total and per client address.
 */
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { ImapHooks } from './hooks.ts';
import type { SessionLimits } from './session.ts';
import { serveConnection } from './connection.ts';
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
  /** A file to append a timing line per command to (connection.ts `trace`); the composition root reads TWOWAY_IMAP_TRACE. */
  traceFile?: string;
}

export interface ImapListener {
  port: number | null;
  tlsPort: number | null;
  /** Open connections. */
  connections(): number;
  close(): Promise<void>;
}

export async function startImapListener(o: ImapListenerOptions): Promise<ImapListener> {
  const secureContext = tls.createSecureContext({ key: o.tls.key, cert: o.tls.cert });
  const sockets = new Set<net.Socket>();
  const perIp = new Map<string, number>();
  const wireCache = new WireCache(o.wireCacheBytes ?? 32 * 1024 * 1024);
  // A timing line per command (connection.ts `trace`), for tracing how a client and the server wait
  // on each other; the last field is the octets of the write.
  const traceOut = o.traceFile ? createWriteStream(o.traceFile, { flags: 'a' }) : null;
  let connectionNo = 0;

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
    const onClose = () => {
      sockets.delete(raw);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
    };
    const { hostname, hooks, allowPlaintextAuth, limits, onError } = o;
    const connection = ++connectionNo;
    const trace = traceOut ? (line: string) => void traceOut.write(`${connection} ${line}\n`) : undefined;
    serveConnection(raw, implicitTls, { hostname, hooks, allowPlaintextAuth, limits, secureContext, wireCache, onClose, ...(onError ? { onError } : {}), ...(trace ? { trace } : {}) });
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
        traceOut?.end();
        await Promise.all(servers.map((s) => (s.listening ? once(s, 'close') : Promise.resolve())));
      },
    };
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
}
