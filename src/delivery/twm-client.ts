/**
 * The TWM/1 HTTPS client (docs/protocol.md sections 3.1, 4, 5.1, 5.2, 12.8):
 * discovers a domain's endpoints from its SRV records and POSTs signed
 * requests to them. The contract is in twm-client-types.ts.
 *
 * Design note
 * - Hosts come only from the SRV records of the domain asked for; paths are
 *   the caller's. Each target's AAAA and A records are resolved here, every
 *   address is checked against section 4.4 (`isPublicAddress`) unless `lab`
 *   is on, and the exchange connects to that very address (twm-https.ts),
 *   so DNS rebinding between check and connect is impossible.
 * - Selection follows RFC 2782 (core/srv-order.ts); targets are resolved
 *   lazily, in order, since the first one usually answers.
 * - Every attempt is signed afresh (new `created` and nonce): a retry must
 *   not look like a replay to the next target, and `@authority` and
 *   `@target-uri` name the target actually contacted.
 * - Errors carry target names, addresses and error codes, never header
 *   values or key material. This module logs nothing itself.
 * - One keep-alive https.Agent: it pools connections per address, port,
 *   server name and trust anchors, i.e. per endpoint.
 */
import { Agent } from 'node:https';
import { isIP } from 'node:net';
import type { SrvRecord } from 'node:dns';
import type { DnsAnswer, DnsResolver } from '../dns/types.ts';
import { isPublicAddress } from '../core/ip-ranges.ts';
import { orderSrvTargets } from '../core/srv-order.ts';
import { signRequest } from '../core/twm-signature.ts';
import { keyIdOf, TWM_MEDIA_TYPES } from '../core/twm-types.ts';
import { exchange, type ExchangeResult } from './twm-https.ts';
import { discoverSecure, tlsaFor } from './twm-discovery-secure.ts';
import type { TlsaRecord } from '../core/dane.ts';
import { CAPABILITIES_PATH, MAX_CAPABILITIES_OCTETS, parseCapabilities, type TwmCapabilities } from '../core/twm-capabilities.ts';
import {
  TwmUnreachableError,
  type TwmClient,
  type TwmClientOptions,
  type TwmDiscovery,
  type TwmResponse,
  type TwmSigningKey,
  type TwmValidationFailure,
} from './twm-client-types.ts';

/** Section 3.1: per attempt. */
const MAX_TARGETS = 10;
const MAX_ADDRESSES = 20;
/** Section 4.3 defaults. */
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Idle kept-alive connections are closed after this (sooner if the server's Keep-Alive hint says so). */
const IDLE_SOCKET_MS = 30_000;
/**
 * Above what the callers run at once per endpoint (the queue's 20 notices per domain, the fetch
 * worker's 50 notices in flight, each one request at a time), so that the pool is no queue of its
 * own: with 16, fetches and receipts waited for a socket under load, the sender served them in
 * smaller batches and its group commits held fewer (bench/twm-delivery.ts: TWM/SMTP throughput
 * 0.94 -> 1.04, CPU 0.98 -> 0.91, medians of 16 runs each on a loaded machine).
 */
const MAX_SOCKETS_PER_ENDPOINT = 64;
/** node:dns codes that are an answer (NXDOMAIN, NODATA), not a failure to get one. */
const ANSWERED = new Set(['ENOTFOUND', 'ENODATA']);

type Target = Extract<TwmDiscovery, { kind: 'twm' }>['targets'][number];
/** `decisive`: this address is no TWM endpoint (identity, no TLS, or a non-TWM answer); `validation`: why it failed validation. */
type Attempt =
  | { kind: 'final'; response: TwmResponse }
  | { kind: 'next'; problem: string; response?: TwmResponse; decisive?: boolean; validation?: TwmValidationFailure };

/** Media types a TWM endpoint answers with (4.3, 6.5); an answer with another one is no TWM answer. */
const TWM_ANSWER_TYPES = new Set(['message/rfc822', 'application/problem+json', ...Object.values(TWM_MEDIA_TYPES)]);

/** A TWM answer: 204 without content, or one of the TWM media types. A web server's page is not. */
function isTwmAnswer(status: number, headers: Record<string, string>): boolean {
  if (status === 204) return true;
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return TWM_ANSWER_TYPES.has(type);
}

export function createTwmClient(options: TwmClientOptions): TwmClient {
  const dnssec = options.dnssec ?? 'off';
  if (dnssec !== 'off' && !options.secure) throw new TypeError(`twm.dnssec = ${dnssec} needs a resolver that reports the AD bit`);
  const ctx: ClientContext = {
    options,
    resolver: options.resolver,
    lab: options.lab ?? false,
    ca: options.trustAnchors && options.trustAnchors.length > 0 ? [...options.trustAnchors] : undefined,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    now: options.now ?? (() => new Date()),
    agent: new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS_PER_ENDPOINT, timeout: IDLE_SOCKET_MS }),
    dnssec,
    secure: options.secure,
    closed: false,
  };
  return {
    discover: (domain) => discover(ctx, domain),
    post: (domain, path, contentType, body, key, limits) => post(ctx, domain, path, contentType, body, key, limits),
    capabilities: (domain) => capabilities(ctx, domain),
    async close() {
      ctx.closed = true;
      ctx.agent.destroy();
    },
  };
}

/** What the walk over a domain's endpoints skipped, and the first validation failure it met. */
interface Notes {
  problems: string[];
  refused: string[];
  validation?: TwmValidationFailure;
}

/** What every request of one client shares: its options with their defaults, and the connection pool. */
interface ClientContext {
  options: TwmClientOptions;
  resolver: DnsResolver;
  lab: boolean;
  ca: string[] | undefined;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  now: () => Date;
  agent: Agent;
  dnssec: NonNullable<TwmClientOptions['dnssec']>;
  secure: TwmClientOptions['secure'];
  closed: boolean;
}

async function discover(ctx: ClientContext, domain: string): Promise<TwmDiscovery> {
  const name = canonicalName(domain);
  const owner = `_twoway._tcp.${name}`;
  if (ctx.dnssec !== 'off' && ctx.secure) return discoverSecure(name, { mode: ctx.dnssec, secure: ctx.secure, policies: ctx.options.policies, onProblem: ctx.options.onProblem });
  let records: ReadonlyArray<Readonly<SrvRecord>>;
  try {
    const answer = await lookup(ctx.resolver, owner, 'SRV');
    if ('negative' in answer) return { kind: 'legacy' };
    records = answer.records;
  } catch (err) {
    // Negative answers came back as `negative` above; anything else is unknown (section 3.1), so
    // temporary: never a reason to fall back to SMTP.
    const code = errorCode(err);
    throw new TwmUnreachableError(`${name}: SRV lookup of ${owner} failed (${code}); retry later`);
  }
  // A `.` target (node:dns reports it as "") says "no TWM here"; it is ignored next to real targets.
  const targets = records
    .map((r): Target => ({ target: canonicalName(r.name), port: r.port, priority: r.priority, weight: r.weight }))
    .filter((t) => t.target !== '' && t.port > 0 && t.port <= 65535);
  if (targets.length === 0) return { kind: 'legacy' };
  targets.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  return { kind: 'twm', targets };
}

/** The domain's TWM targets, or an error saying it has none. */
async function discovered(ctx: ClientContext, domain: string): Promise<{ name: string; found: Extract<TwmDiscovery, { kind: 'twm' }> }> {
  if (ctx.closed) throw new Error('TWM client is closed');
  const name = canonicalName(domain);
  const found = await discover(ctx, name);
  if (found.kind === 'legacy') throw new TwmUnreachableError(`${name}: publishes no TWM service (_twoway._tcp.${name})`);
  return { name, found };
}

/**
 * The addresses to try, in order (3.1, 3.5, 4.4): RFC 2782 order, at most
 * MAX_TARGETS targets and MAX_ADDRESSES addresses. Below a validated SRV
 * answer a target's TLSA records come along (DANE), and a failed TLSA lookup
 * rules the target out. What is skipped is written to `notes`: problems, and
 * addresses the outbound restriction refuses (`lab` off).
 */
async function* endpointsOf(
  ctx: ClientContext,
  found: Extract<TwmDiscovery, { kind: 'twm' }>,
  notes: Notes,
): AsyncGenerator<{ target: Target; address: string; dane: TlsaRecord[] | undefined }> {
  let tried = 0;
  for (const target of dedupe(orderSrvTargets(found.targets)).slice(0, MAX_TARGETS)) {
    if (tried >= MAX_ADDRESSES) return;
    let dane: TlsaRecord[] | undefined;
    if (found.validated && ctx.secure) {
      const tlsa = await tlsaFor(ctx.secure, target.target, target.port, ctx.options.onProblem);
      if (tlsa.kind === 'failed') {
        notes.problems.push(`${target.target}: ${tlsa.problem}`);
        notes.validation ??= 'tlsa-invalid';
        continue;
      }
      dane = tlsa.kind === 'dane' ? tlsa.records : undefined;
    }
    const { addresses, problem } = await addressesOf(ctx.resolver, target.target);
    if (problem) notes.problems.push(`${target.target}: ${problem}`);
    for (const address of addresses) {
      if (!ctx.lab && !isPublicAddress(address)) {
        notes.refused.push(`${target.target} ${address}`);
        continue;
      }
      if (tried >= MAX_ADDRESSES) return;
      tried++;
      yield { target, address, dane };
    }
  }
}

async function post(
  ctx: ClientContext,
  domain: string,
  path: string,
  contentType: string,
  body: Buffer,
  key: TwmSigningKey,
  limits: { maxResponse: number },
): Promise<TwmResponse> {
  if (ctx.closed) throw new Error('TWM client is closed');
  // Only a path: the host always comes from DNS (section 12.8).
  if (!path.startsWith('/') || path.startsWith('//')) throw new TypeError(`TWM request path must be absolute: ${path}`);
  const { name, found } = await discovered(ctx, domain);
  const notes: Notes = { problems: [], refused: [] };
  let last: TwmResponse | undefined;
  let tried = 0;
  let decisive = 0;
  for await (const { target, address, dane } of endpointsOf(ctx, found, notes)) {
    tried++;
    const attempt = await attemptAt(ctx, target, address, path, contentType, body, key, limits.maxResponse, dane);
    if (attempt.kind === 'final') return attempt.response;
    if (attempt.decisive) decisive++;
    if (attempt.validation) notes.validation ??= attempt.validation;
    notes.problems.push(attempt.problem);
    if (attempt.response) last = attempt.response;
  }
  const { problems, refused } = notes;
  if (tried === 0 && refused.length > 0) {
    throw new TwmUnreachableError(
      `${name}: every address of its TWM targets is refused by the outbound address restriction (section 4.4; lab is off): ${refused.join(', ')}`,
    );
  }
  if (refused.length > 0) problems.push(`refused by the outbound address restriction (section 4.4): ${refused.join(', ')}`);
  const permanent = tried > 0 && decisive === tried;
  throw new TwmUnreachableError(`${name}: no TWM target gave a final answer (${problems.join('; ') || 'no targets'})`, last, permanent, notes.validation);
}

/** `host[:port]` as the request names it: the port only when it is not 443. */
const authorityOf = (target: Target) => (target.port === 443 ? target.target : `${target.target}:${target.port}`);

async function attemptAt(
  ctx: ClientContext,
  target: Target,
  address: string,
  path: string,
  contentType: string,
  body: Buffer,
  key: TwmSigningKey,
  maxResponse: number,
  dane: TlsaRecord[] | undefined,
): Promise<Attempt> {
  const authority = authorityOf(target);
  const endpoint = `${target.target}:${target.port}`;
  const where = `${endpoint} [${address}]`;
  const send = (pooled: boolean): Promise<ExchangeResult> => {
    const signed = signRequest({
      method: 'POST',
      targetUri: `https://${authority}${path}`,
      authority,
      contentType,
      body,
      keyid: keyIdOf(key.selector, key.domain),
      privateKey: key.privateKey,
      created: ctx.now(),
    });
    return exchange({
      address,
      port: target.port,
      servername: target.target,
      path,
      headers: {
        host: authority,
        'content-type': contentType,
        'content-length': String(body.length),
        ...signed,
      },
      body,
      // DANE connections are never pooled: the pool cannot tell which TLSA set a socket was checked against.
      agent: pooled && !dane ? ctx.agent : false,
      ca: ctx.ca,
      ...(dane ? { dane, now: ctx.now() } : {}),
      connectTimeoutMs: ctx.connectTimeoutMs,
      requestTimeoutMs: ctx.requestTimeoutMs,
      maxResponse,
    });
  };
  let result = await send(true);
  // A pooled connection the server had closed while idle: the request never arrived; once more, fresh.
  if (result.kind === 'failed' && result.stale) result = await send(false);
  if (result.kind === 'failed') {
    const validation = result.dane ? 'dane-mismatch' : result.decisive === 'identity' ? 'certificate-invalid' : undefined;
    return { kind: 'next', problem: `${where}: ${result.problem}`, ...(result.decisive ? { decisive: true } : {}), ...(validation ? { validation } : {}) };
  }
  const response: TwmResponse = { status: result.status, headers: result.headers, body: result.body, endpoint, ...(result.truncated ? { truncated: true } : {}) };
  // A 5xx or 429 page may come from a proxy in front of a TWM server that is down: temporary. Any
  // other answer that is no TWM answer says the target is something else (a web server, a canary).
  if (!isTwmAnswer(result.status, result.headers) && result.status < 500 && result.status !== 429) {
    const type = (result.headers['content-type'] ?? 'none').replace(/[^\x21-\x7e]/g, '?').slice(0, 60);
    return { kind: 'next', problem: `${where}: HTTP ${result.status} with content type ${type}: not a TWM answer`, response, decisive: true };
  }
  if (isFinal(result.status)) return { kind: 'final', response };
  return { kind: 'next', problem: `${where}: HTTP ${result.status}`, response };
}

/**
 * The capability document of the first target that gives a final answer (6.6): null when it
 * has none (404, anything but a strictly valid document), which means TWM/1. Unsigned: its
 * authority is the TLS connection to a target the domain's DNS names, as for every request.
 */
async function capabilities(ctx: ClientContext, domain: string): Promise<TwmCapabilities | null> {
  const { name, found } = await discovered(ctx, domain);
  const notes: Notes = { problems: [], refused: [] };
  for await (const { target, address, dane } of endpointsOf(ctx, found, notes)) {
    const result = await exchange({
      address,
      port: target.port,
      servername: target.target,
      path: CAPABILITIES_PATH,
      method: 'GET',
      headers: { host: authorityOf(target), accept: 'application/json' },
      body: Buffer.alloc(0),
      agent: dane ? false : ctx.agent,
      ca: ctx.ca,
      ...(dane ? { dane, now: ctx.now() } : {}),
      connectTimeoutMs: ctx.connectTimeoutMs,
      requestTimeoutMs: ctx.requestTimeoutMs,
      maxResponse: MAX_CAPABILITIES_OCTETS,
    });
    if (result.kind === 'failed') {
      notes.problems.push(`${target.target} [${address}]: ${result.problem}`);
      continue;
    }
    if (!isFinal(result.status)) {
      notes.problems.push(`${target.target} [${address}]: HTTP ${result.status}`);
      continue;
    }
    if (result.status !== 200) return null;
    const type = (result.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const parsed = type === 'application/json' && !result.truncated ? parseCapabilities(result.body) : null;
    if (!parsed) ctx.options.onProblem?.(name, `the capability document at ${target.target} is malformed; treated as absent (TWM/1)`);
    return parsed;
  }
  throw new TwmUnreachableError(`${name}: no TWM target answered for its capability document (${notes.problems.join('; ') || 'no targets'})`);
}

/** Section 3.1: 3xx (never followed), 429 and 5xx send the client on; anything else is the answer. */
function isFinal(status: number): boolean {
  return !((status >= 300 && status < 400) || status === 429 || status >= 500);
}

/**
 * AAAA then A (section 3.1), duplicates and anything that is not an IP literal dropped. A target
 * that is an alias (a CNAME) is skipped: 3.1 and RFC 2782 forbid it, and following it would let
 * the names a domain's SRV points at be steered by whoever controls the alias's zone.
 */
async function addressesOf(resolver: DnsResolver, host: string): Promise<{ addresses: string[]; problem?: string }> {
  const [aaaa, a, cname] = await Promise.allSettled([lookup(resolver, host, 'AAAA'), lookup(resolver, host, 'A'), lookup(resolver, host, 'CNAME')]);
  const records = (r: PromiseSettledResult<DnsAnswer<string>>) => (r.status === 'fulfilled' && 'records' in r.value ? r.value.records : []);
  const alias = records(cname);
  if (alias.length > 0) {
    return { addresses: [], problem: `is an alias (CNAME ${alias[0]}), not allowed as an SRV target (section 3.1)` };
  }
  const addresses = [...new Set([...records(aaaa), ...records(a)])].filter((ip) => isIP(ip) !== 0);
  if (addresses.length > 0) return { addresses };
  const codes = [aaaa, a].flatMap((r) => (r.status === 'rejected' ? [errorCode(r.reason)] : 'negative' in r.value ? [r.value.negative] : []));
  return { addresses, problem: codes.length > 0 ? `address lookup failed (${[...new Set(codes)].join('/')})` : 'no addresses' };
}

/**
 * A lookup as an answer, not a throw: the resolver's own `answer` where it
 * has one (no copy, no Error per NODATA: three of the four lookups of every
 * request are usually cached, and two of them negative), else `resolve`
 * with its negative answers (ENOTFOUND, ENODATA) caught.
 */
function lookup(resolver: DnsResolver, name: string, rrtype: 'A' | 'AAAA' | 'CNAME'): Promise<DnsAnswer<string>>;
function lookup(resolver: DnsResolver, name: string, rrtype: 'SRV'): Promise<DnsAnswer<SrvRecord>>;
async function lookup(resolver: DnsResolver, name: string, rrtype: 'A' | 'AAAA' | 'CNAME' | 'SRV'): Promise<DnsAnswer<string> | DnsAnswer<SrvRecord>> {
  if (resolver.answer) return rrtype === 'SRV' ? resolver.answer(name, rrtype) : resolver.answer(name, rrtype);
  try {
    if (rrtype === 'SRV') return { records: await resolver.resolve(name, rrtype) };
    return { records: await resolver.resolve(name, rrtype) };
  } catch (err) {
    const code = errorCode(err);
    if (ANSWERED.has(code)) return { negative: code };
    throw err;
  }
}

/** The same target and port listed twice is tried once, at its first place. */
function dedupe(targets: Target[]): Target[] {
  const seen = new Set<string>();
  return targets.filter((t) => {
    const id = `${t.target}:${t.port}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** Lower-case, no trailing dot (section 4.1); `.` itself becomes "". */
function canonicalName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}
