/**
 * One HTTP/1.1 request over a fresh TLS connection, written byte for byte:
 * fuzzers and security tests need header lines that undici and node:http
 * refuse to send (NUL, bare CR, repeated fields, lying lengths). The
 * request always says `Connection: close`, so the answer ends with the
 * connection; `hung` reports a server that neither answered nor closed
 * within the timeout, `dropped` one that closed without a status line.
 */
import { connect } from 'node:tls';

export interface RawHttpsTarget {
  host: string;
  port: number;
  ca: string;
  servername: string;
  /** Source address (per-address rate limits count per client address). */
  localAddress?: string;
}

export interface RawHttpsAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** No answer and no close within the timeout. */
  hung: boolean;
  /** Closed (or reset) without a status line. */
  dropped: boolean;
  /** The socket error, if the connection failed (for failure messages). */
  error?: string;
}

/** Header lines as [name, value] pairs, repeated names allowed; values are written as latin1 octets. */
export type RawHeaders = Array<[string, string]>;

export function rawHttps(
  target: RawHttpsTarget,
  o: { method: string; path: string; headers: RawHeaders; body?: Buffer; timeoutMs?: number },
): Promise<RawHttpsAnswer> {
  const body = o.body ?? Buffer.alloc(0);
  const head = `${o.method} ${o.path} HTTP/1.1\r\n${o.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const socket = connect({
      host: target.host,
      port: target.port,
      ca: target.ca,
      servername: target.servername,
      ...(target.localAddress ? { localAddress: target.localAddress } : {}),
    });
    let error: string | undefined;
    const finish = (hung: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parse(Buffer.concat(chunks)), hung, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(true), o.timeoutMs ?? 15_000);
    socket.on('secureConnect', () => {
      socket.write(Buffer.from(head, 'latin1'));
      // Not end(): node's HTTP server drops a pending answer when the client half-closes (Connection: close ends it instead).
      socket.write(body);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = `${err.code ?? ''} ${err.message}`;
      finish(false);
    });
    socket.on('close', () => finish(false));
  });
}

function parse(all: Buffer): Omit<RawHttpsAnswer, 'hung'> {
  // Interim answers (100 Continue) come before the real one.
  let raw = all;
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw.subarray(0, 16).toString('latin1')) && raw.includes('\r\n\r\n')) raw = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
  const end = raw.indexOf('\r\n\r\n');
  const headText = (end === -1 ? raw : raw.subarray(0, end)).toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(headText);
  if (!m) return { status: 0, headers: {}, body: Buffer.alloc(0), dropped: true };
  const headers: Record<string, string> = {};
  for (const line of headText.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = end === -1 ? Buffer.alloc(0) : raw.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  // Only the first answer: a server that answered before reading the whole request may parse the rest as another one.
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status: Number(m[1]), headers, body, dropped: false };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    if (eol === -1) break;
    const size = parseInt(b.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(b.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}
