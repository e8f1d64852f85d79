/**
 * A scripted Two-Way Mail peer for tests: a domain with its own Ed25519 key
 * and SRV record in the shared embedded DNS, an HTTPS endpoint (private-CA
 * certificate) that serves whatever body the test wants for a fetch and
 * records receipts, and the project's real client and signing code to send
 * notices, fetches and receipts. It lets tests play a misbehaving sender or
 * recipient against a real twoway server.
 */
import { createServer, type Server } from 'node:https';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { issueCertificate } from '../../src/config/private-ca.ts';
import { keyRecordValue, rawPublicKey } from '../../src/core/twm-key-record.ts';
import { createTwmClient } from '../../src/delivery/twm-client.ts';
import type { TwmClient, TwmResponse, TwmSigningKey } from '../../src/delivery/twm-client-types.ts';
import { createResolver } from '../../src/dns/resolver.ts';
import type { EmbeddedDnsServer } from '../../src/dns/embedded-server.ts';
import type { TwmLab } from './twm.ts';

export interface PeerRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** When the request was complete (Date.now()). */
  at: number;
}

export interface TwmPeer {
  domain: string;
  key: TwmSigningKey;
  client: TwmClient;
  /** Every request the peer's endpoint received. */
  received: PeerRequest[];
  /** What a fetch of `id` answers (default 404). */
  bodies: Map<string, { status?: number; body: Buffer }>;
  /** A scripted answer for any request (a notice result, a capability document); undefined: the defaults. */
  answer: ((request: PeerRequest) => { status: number; headers?: Record<string, string>; body?: Buffer } | undefined) | undefined;
  /** Signs and POSTs to `domain`'s endpoint (found through DNS, like any server). */
  post(domain: string, path: string, contentType: string, body: Buffer): Promise<TwmResponse>;
  close(): Promise<void>;
}

export async function startTwmPeer(o: { lab: TwmLab; dns: EmbeddedDnsServer; domain: string; host: string }): Promise<TwmPeer> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pair = issueCertificate(o.lab.ca, [`twm.${o.domain}`]);
  const received: PeerRequest[] = [];
  const bodies = new Map<string, { status?: number; body: Buffer }>();
  const server: Server = createServer({ key: pair.key, cert: pair.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const got = { path, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      received.push(got);
      const scripted = peer.answer?.(got);
      if (scripted) {
        res.writeHead(scripted.status, scripted.headers ?? {}).end(scripted.body ?? Buffer.alloc(0));
        return;
      }
      const fetch = /^\/\.well-known\/twm\/v1\/fetch\/([A-Za-z0-9_-]+)$/.exec(path);
      if (fetch) {
        const answer = bodies.get(fetch[1]!);
        if (!answer) {
          res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such notice', twm_error: 'unknown-id' }));
          return;
        }
        res.writeHead(answer.status ?? 200, { 'content-type': 'message/rfc822', 'content-length': answer.body.length }).end(answer.body);
        return;
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, o.host, resolve));
  const port = (server.address() as AddressInfo).port;
  o.dns.add([
    { name: `_twoway._tcp.${o.domain}`, type: 'SRV', ttl: 1, data: { priority: 10, weight: 10, port, target: `twm.${o.domain}` } },
    { name: `twm.${o.domain}`, type: 'A', ttl: 1, data: o.host },
    { name: `s1._twoway.${o.domain}`, type: 'TXT', data: keyRecordValue(rawPublicKey(publicKey)) },
  ]);
  const client = createTwmClient({ resolver: createResolver({ servers: [o.dns.address], cacheTtlCapSeconds: 0 }), trustAnchors: [o.lab.ca.cert], lab: true });
  const key: TwmSigningKey = { selector: 's1', domain: o.domain, privateKey: privateKey as KeyObject };
  const peer: TwmPeer = {
    domain: o.domain,
    key,
    client,
    received,
    bodies,
    answer: undefined,
    post: (domain, path, contentType, body) => client.post(domain, path, contentType, body, key, { maxResponse: 65_536 }),
    async close() {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return peer;
}
