/**
 * CardDAV test clients over real HTTPS, trusting the test server's
 * certificate: tsdav (the client library the issue names), a fetch for
 * hand-made requests, and a raw request that sends the path exactly as
 * given (fetch and URL would normalise `..` and `%2e%2e` away).
 */
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createDAVClient } from 'tsdav';
import { Agent, fetch as undiciFetch } from 'undici';
import type { TestServer } from './server.ts';

export const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`;

export function davFetch(t: TestServer) {
  const ca = readFileSync(t.server.config.tls.cert, 'utf8');
  const agent = new Agent({ connect: { ca } });
  // tsdav and our tests call it with the global fetch's signature; undici's types differ only nominally.
  const f = ((url: string | URL, init?: RequestInit) =>
    undiciFetch(url, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher: agent })) as unknown as typeof globalThis.fetch;
  return { fetch: f, ca, close: () => agent.close() };
}

export async function tsdavClient(t: TestServer, f: typeof globalThis.fetch, username: string, password: string) {
  return createDAVClient({
    serverUrl: t.server.http.url,
    credentials: { username, password },
    authMethod: 'Basic',
    defaultAccountType: 'carddav',
    fetch: f,
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request with the path sent byte for byte. */
export function rawRequest(
  t: TestServer,
  ca: string,
  o: { method: string; path: string; auth?: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<RawResponse> {
  const url = new URL(t.server.http.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        method: o.method,
        path: o.path,
        ca,
        headers: { ...(o.auth ? { authorization: o.auth } : {}), ...o.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}
