/**
 * One HTTPS exchange of the TWM client with one checked address: a POST,
 * its answer read into memory up to a limit, under the timeouts of
 * docs/protocol.md section 4.3. Never rejects: every failure is a result the
 * caller weighs (next address, or a retry on a fresh connection).
 *
 * Design note
 * - The socket goes to `address` (an IP literal, so node:net does no DNS
 *   lookup at all: the address the caller checked is the one used, section
 *   4.4) and TLS verifies the certificate for `servername`, the SRV target
 *   (section 4.2), with `checkServerIdentity` pinned to that name rather
 *   than whatever the request options might derive it from.
 * - Two timers, one armed at a time: the connect timer (TCP + TLS) until
 *   `secureConnect`, then a no-progress timer re-armed by the answer's head
 *   and by every chunk of its body.
 * - Redirects are never followed: node:https does not follow them, and the
 *   caller treats 3xx as "next target".
 * - The answer is bounded by `maxResponse`: past a larger Content-Length, or
 *   past `maxResponse` octets, nothing more is read; the answer is returned
 *   `truncated` (a fetched body longer than announced is a protocol error
 *   the caller reports, section 8.4, not a transport failure to retry).
 */
import { request, type Agent } from 'node:https';
import { checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate, type TLSSocket } from 'node:tls';
import { daneVerify, type TlsaRecord } from '../core/dane.ts';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';

export interface ExchangeRequest {
  /** The checked IP address to connect to. */
  address: string;
  port: number;
  /** The SRV target: TLS SNI and the name the certificate must carry. */
  servername: string;
  path: string;
  /** Default POST; GET only for the capability document (docs/protocol.md 6.6). */
  method?: 'POST' | 'GET';
  headers: Record<string, string>;
  body: Buffer;
  /** A keep-alive agent, or false for a one-off connection. */
  agent: Agent | false;
  /** PEM trust anchors; undefined: Node's bundled CAs. */
  ca: string[] | undefined;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxResponse: number;
  /**
   * Validated, usable TLSA records (docs/protocol.md 3.5): the chain is then
   * checked by DANE instead of WebPKI, on `secureConnect`, before the
   * request's octets (held by TLS until then) can leave.
   */
  dane?: TlsaRecord[];
  now?: Date;
}

export type ExchangeResult =
  | { kind: 'answer'; status: number; headers: Record<string, string>; body: Buffer; truncated: boolean }
  /**
   * `stale`: a kept-alive connection was found closed before any answer
   * (the server dropped it while idle); the request did not reach it, and
   * one retry on a fresh connection is in order.
   */
  | {
      kind: 'failed';
      problem: string;
      stale: boolean;
      /**
       * The target proved it is not this TWM endpoint (docs/protocol.md 12.2): `identity`, its TLS
       * certificate does not verify for the target name; `non-tls`, it answered without TLS.
       */
      decisive?: 'identity' | 'non-tls';
      /** The certificate matched none of the target's TLSA records (DANE). */
      dane?: true;
    };

export function exchange(r: ExchangeRequest): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    const x: Exchange = { settled: false, answered: false, reused: false, timer: undefined, req: undefined, resolve };
    const req = request({
      host: r.address,
      port: r.port,
      servername: r.servername,
      method: r.method ?? 'POST',
      path: r.path,
      headers: r.headers,
      agent: r.agent,
      ca: r.ca,
      minVersion: 'TLSv1.2',
      // With DANE, WebPKI's verdict is not the one that counts (a DANE-EE certificate may be self-signed).
      rejectUnauthorized: !r.dane,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => (r.dane ? undefined : checkServerIdentity(r.servername, cert)),
    });
    x.req = req;

    arm(x, r.connectTimeoutMs, 'connect and TLS handshake');
    req.on('socket', (socket) => onSocket(x, r, socket as TLSSocket));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const stale = x.reused && !x.answered && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      fail(x, describeError(err), stale, decisiveFailure(err));
    });
    req.on('response', (res) => readAnswer(x, r, res));
    req.end(r.body);
  });
}

/** One exchange in progress: it settles once, with an answer or a failure. */
interface Exchange {
  settled: boolean;
  answered: boolean;
  /** The request went out on a kept-alive connection whose handshake was already done. */
  reused: boolean;
  timer: NodeJS.Timeout | undefined;
  req: ClientRequest | undefined;
  resolve: (result: ExchangeResult) => void;
}

function finish(x: Exchange, result: ExchangeResult): void {
  if (x.settled) return;
  x.settled = true;
  clearTimeout(x.timer);
  x.resolve(result);
}

function fail(x: Exchange, problem: string, stale = false, decisive?: 'identity' | 'non-tls', dane = false): void {
  finish(x, { kind: 'failed', problem, stale, ...(decisive ? { decisive } : {}), ...(dane ? { dane: true as const } : {}) });
  // After settling: destroying emits 'error', which then finds us settled.
  x.req?.destroy();
}

function arm(x: Exchange, ms: number, what: string): void {
  clearTimeout(x.timer);
  x.timer = setTimeout(() => fail(x, `${what} timed out after ${ms} ms`), ms);
}

/** The connection: DANE checked at the handshake, the answer's timer armed once the request can go out. */
function onSocket(x: Exchange, r: ExchangeRequest, socket: TLSSocket): void {
  // Decided by the socket, not `req.reusedSocket`: the agent can hand a queued request a freed
  // keep-alive socket without marking it reused, and waiting for its (long past) handshake
  // would leave a listener behind and the connect timer armed. `authorized` is true only once a
  // handshake verified the peer (rejectUnauthorized is on). Not getProtocol(): it already names
  // a TLS version before the handshake, which made every fresh connection look reused, and so
  // every reset connection tried twice (found by the canary test, test/twm-reflection.test.ts).
  x.reused = socket.authorized === true;
  const dane = r.dane;
  if (dane) {
    socket.once('secureConnect', () => {
      const verdict = daneVerify(chainOf(socket.getPeerCertificate(true)), dane, r.servername, r.now ?? new Date());
      if (!verdict.ok) fail(x, `DANE: ${verdict.problem}`, false, undefined, true);
    });
  }
  if (x.reused) arm(x, r.requestTimeoutMs, 'waiting for the answer');
  else socket.once('secureConnect', () => arm(x, r.requestTimeoutMs, 'waiting for the answer'));
}

/** The answer, read up to r.maxResponse bytes. */
function readAnswer(x: Exchange, r: ExchangeRequest, res: IncomingMessage): void {
  x.answered = true;
  arm(x, r.requestTimeoutMs, 'reading the answer');
  const status = res.statusCode ?? 0;
  const headers = flattenHeaders(res.headers);
  // Cut short: what was read so far is returned and the connection dropped (never reused mid-answer).
  const truncate = (body: Buffer): void => {
    finish(x, { kind: 'answer', status, headers, body, truncated: true });
    x.req?.destroy();
  };
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > r.maxResponse) {
    truncate(Buffer.alloc(0));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    if (x.settled) return;
    size += chunk.length;
    if (size > r.maxResponse) {
      chunks.push(chunk.subarray(0, chunk.length - (size - r.maxResponse)));
      truncate(Buffer.concat(chunks));
      return;
    }
    chunks.push(chunk);
    arm(x, r.requestTimeoutMs, 'reading the answer');
  });
  res.on('end', () => {
    finish(x, { kind: 'answer', status, headers, body: Buffer.concat(chunks), truncated: false });
  });
  res.on('aborted', () => fail(x, 'connection closed during the answer'));
  res.on('error', (err: NodeJS.ErrnoException) => fail(x, describeError(err)));
}

/** The presented chain, leaf first, as DER (node links it through `issuerCertificate`; a self-signed one links to itself). */
function chainOf(leaf: DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (let c: DetailedPeerCertificate | undefined = leaf; c?.raw && !seen.has(c); c = c.issuerCertificate) {
    seen.add(c);
    out.push(c.raw);
  }
  return out;
}

/** Lower-case names, repeated fields joined with ", " (RFC 9110 5.3). */
function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Certificate verification failures (node:tls / OpenSSL codes): the target is not who DNS named. */
const IDENTITY_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
]);

/** A failure that says the target is no TWM endpoint (not a passing fault): permanent for a notice (12.2). */
function decisiveFailure(err: NodeJS.ErrnoException): 'identity' | 'non-tls' | undefined {
  if (err.code && IDENTITY_CODES.has(err.code)) return 'identity';
  // OpenSSL's "wrong version number" and friends: the peer spoke something other than TLS.
  if (err.code === 'EPROTO' || err.code === 'ERR_SSL_WRONG_VERSION_NUMBER') return 'non-tls';
  return undefined;
}

/** The code first (ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID, ...): short and stable for logs and status texts. */
function describeError(err: NodeJS.ErrnoException): string {
  return err.code ? `${err.code}: ${err.message}` : err.message;
}
