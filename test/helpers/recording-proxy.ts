/**
 * A recording HTTP proxy for the browser tests that check what the browser
 * talks to: Chromium started with `--proxy-server` pointing here (and
 * `--proxy-bypass-list=<-loopback>`, so 127.0.0.1 goes through it too) opens
 * every connection through this proxy, which writes down the host and port
 * of each one. HTTPS arrives as `CONNECT host:port` (the proxy sees no
 * content, only where the browser went). Names the test serves are tunnelled
 * to 127.0.0.1 (the proxy, not the browser, resolves them); anything else is
 * recorded and answered 502, so no test traffic leaves the machine.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface ProxyRecord {
  method: string;
  host: string;
  port: number;
  /** The whole URL of a plain-HTTP request (an HTTPS one shows only host and port). */
  url?: string;
  /** Tunnelled to the test's own server (true) or refused with 502 (false). */
  forwarded: boolean;
  at: number;
}

export interface RecordingProxy {
  port: number;
  records: ProxyRecord[];
  close(): Promise<void>;
}

/** `local(host, port)`: whether host:port is one of the test's servers on 127.0.0.1. */
export async function startRecordingProxy(local: (host: string, port: number) => boolean): Promise<RecordingProxy> {
  const records: ProxyRecord[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((req, res) => {
    // A plain-HTTP request through the proxy (absolute URI): recorded, never forwarded (the tests use HTTPS only).
    const url = new URL(req.url ?? '/', 'http://invalid');
    records.push({ method: req.method ?? '?', host: url.hostname, port: Number(url.port || 80), url: req.url, forwarded: false, at: Date.now() });
    res.writeHead(502).end();
  });
  server.on('connection', track);
  server.on('connect', (req: IncomingMessage, client: Socket) => {
    const { hostname, port } = new URL(`http://${req.url ?? ''}`);
    const p = Number(port || 443);
    const host = hostname.replace(/^\[|\]$/g, '');
    const forwarded = local(host, p);
    records.push({ method: 'CONNECT', host, port: p, forwarded, at: Date.now() });
    if (!forwarded) return void client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    const upstream = connect(p, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client).pipe(upstream);
    });
    track(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    records,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
