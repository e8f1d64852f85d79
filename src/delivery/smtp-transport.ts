/**
 * Outbound SMTP: the `Transport` for domains that do not speak Two-Way Mail.
 *
 * Design note
 * - Routing is DNS only (`mx.ts`): MX hosts by preference, each address in
 *   turn (A, then AAAA). A host that cannot be reached or will not talk
 *   (refused, timeout, 4xx/5xx greeting, 421, TLS and EHLO failures, or a
 *   connection lost before any RCPT reply) sends us to the next address; if
 *   none talks, every recipient is deferred with the last problem. Once a
 *   server has answered a RCPT, its answers are final for this attempt: a
 *   4xx there is the destination's decision, and the queue retries later.
 *   (Postfix also skips hosts with a 5xx greeting, as here; the 5xx still
 *   ends up as a deferral if no host accepts a session.)
 * - Per recipient: RCPT 5xx -> failed, 4xx -> deferred, and the reply to
 *   DATA or to the final dot decides for everyone RCPT accepted. A 452 at
 *   RCPT ("too many recipients", or our own inbound's "send it separately")
 *   is retried at once in a new transaction on the same session, as long as
 *   the previous transaction delivered something (RFC 5321 4.5.3.1.10).
 * - Sessions are pooled per (address, port) (`smtp-pool.ts`): after a
 *   transaction a session waits idle for the next message to that host. No
 *   RSET probe before reuse: a session the server closed is dropped by the
 *   pool when its socket ends, and one that dies at the next MAIL (421, or
 *   closed) is `unusable`, so the message goes over another (or a new)
 *   connection.
 * - The client is pipelined (RFC 2920) when the server offers PIPELINING:
 *   see `smtp-transaction.ts`.
 * - TLS is opportunistic and unverified (see `smtp-session.ts`).
 * - Result texts are the remote reply (`550 5.1.1 ...`) or a local problem
 *   starting with an enhanced code (`4.4.1 connection refused by ...`),
 *   see `smtp-replies.ts`; DNS outcomes come from `mx.ts`.
 * - `deliver` never rejects on network or DNS trouble; those are results.
 * - The addresses DNS (or an address literal) names are someone else's
 *   choice: loopback, private, link-local and other non-public addresses
 *   (`core/ip-ranges.ts`, the same rule as Two-Way Mail's) are never
 *   connected to unless `lab` is on. A domain whose every address is refused
 *   fails with 5.4.4: retrying would not change its records' meaning.
 */
import { formatReply, replies, type Reply } from '../core/reply.ts';
import type { DnsResolver } from '../dns/types.ts';
import { isPublicAddress } from '../core/ip-ranges.ts';
import { resolveDestinations } from './mx.ts';
import { ConnectionPool, type Lease } from './smtp-pool.ts';
import type { RcptOutcome } from './smtp-replies.ts';
import { ConnectError, openSession, SmtpSession } from './smtp-session.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

export interface SmtpTransportOptions {
  resolver: DnsResolver;
  /** Sent with EHLO; should be this host's name with matching forward and reverse DNS. */
  heloName: string;
  /** Source address of outgoing connections: the address the domain's SPF record names. */
  localAddress?: string;
  /** Destination port, 25 unless a test points it at a server on loopback. */
  port?: number;
  /** Allow loopback and private destination addresses (`delivery.lab`: labs and tests only). */
  lab?: boolean;
  /** Bounds TCP connect, greeting and TLS handshake together (default 30 s, Postfix's connect timeout). */
  connectTimeoutMs?: number;
  /** Inactivity limit while waiting for any reply (default 5 min, RFC 5321 4.5.3.2). */
  commandTimeoutMs?: number;
  /** Concurrent connections per destination address and port (default 4). */
  maxConnectionsPerHost?: number;
  /** How long an unused session is kept for the next message (default 10 s). */
  idleTimeoutMs?: number;
  log?: (obj: object, msg: string) => void;
}

export interface SmtpTransportStats {
  /** TCP connections opened (sessions that got through EHLO/STARTTLS). */
  connectionsOpened: number;
  /** Deliveries that ran on a session reused from the pool. */
  sessionsReused: number;
  /** SMTP transactions (MAIL FROM ... final reply) the server answered. */
  transactions: number;
  /** Sessions idle in the pool right now. */
  idle: number;
}

export type SmtpTransport = Transport & { close(): Promise<void>; stats(): SmtpTransportStats };

type HostAttempt = { kind: 'unreachable'; reply: Reply } | { kind: 'done'; results: Map<string, RcptOutcome> };
type SessionAttempt = { kind: 'unusable'; reply: Reply } | { kind: 'done'; results: Map<string, RcptOutcome> };

/** Characters that would break the MAIL/RCPT command line. */
const UNSENDABLE = /[\r\n<>]|^$/;

export function createSmtpTransport(options: SmtpTransportOptions): SmtpTransport {
  const maxPerHost = Math.max(1, options.maxConnectionsPerHost ?? 4);
  const ctx: TransportContext = {
    options,
    port: options.port ?? 25,
    lab: options.lab ?? false,
    connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
    commandTimeoutMs: options.commandTimeoutMs ?? 300_000,
    maxPerHost,
    log: options.log ?? (() => undefined),
    pool: new ConnectionPool<SmtpSession>({ maxPerKey: maxPerHost, idleTimeoutMs: options.idleTimeoutMs ?? 10_000 }),
    stats: { connectionsOpened: 0, sessionsReused: 0, transactions: 0 },
    closed: false,
  };
  return {
    deliver: (domain, message, recipients) => deliver(ctx, domain, message, recipients),
    async close() {
      ctx.closed = true;
      await ctx.pool.close();
    },
    stats: () => ({ ...ctx.stats, idle: ctx.pool.idleCount() }),
  };
}

/** What every delivery of one transport shares: its options with their defaults, the session pool, the counters. */
interface TransportContext {
  options: SmtpTransportOptions;
  port: number;
  lab: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  maxPerHost: number;
  log: (obj: object, msg: string) => void;
  pool: ConnectionPool<SmtpSession>;
  stats: { connectionsOpened: number; sessionsReused: number; transactions: number };
  closed: boolean;
}

async function deliver(ctx: TransportContext, domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
  const { options, lab, log, port } = ctx;
  const results = new Map<string, RcptOutcome>();
  const answer = (): RecipientResult[] => recipients.map((recipient) => ({ recipient, ...publicOutcome(results.get(recipient)) }));
  const everyone = (status: 'deferred' | 'failed', reply: Reply, who: string[]): void => {
    for (const r of who) results.set(r, { status, reply });
  };

  if (message.sender !== null && UNSENDABLE.test(message.sender)) {
    everyone('failed', replies.unsendableSender(message.sender), recipients);
    return answer();
  }
  const bad = recipients.filter((r) => UNSENDABLE.test(r));
  everyone('failed', replies.unsendableRecipient(), bad);
  const pending = [...new Set(recipients.filter((r) => !UNSENDABLE.test(r)))];
  if (pending.length === 0) return answer();
  if (ctx.closed) {
    everyone('deferred', replies.shuttingDown(), pending);
    return answer();
  }

  const destinations = await resolveDestinations(options.resolver, domain);
  if (destinations.kind !== 'hosts') {
    log({ messageId: message.messageId, domain, reason: destinations.reason }, 'no route to destination');
    everyone(destinations.kind === 'permanent' ? 'failed' : 'deferred', replies.noRoute(destinations.enhanced, destinations.reason), pending);
    return answer();
  }

  let lastProblem = replies.noExchangerReached(domain);
  const tried = new Set<string>();
  const refused: string[] = [];
  for (const host of destinations.hosts) {
    for (const address of host.addresses) {
      // Several MX names often share an address; one refusal is enough.
      if (tried.has(address)) continue;
      tried.add(address);
      if (!lab && !isPublicAddress(address)) {
        refused.push(`${host.name} ${address}`);
        continue;
      }
      const attempt = await tryAddress(ctx, host.name, address, message, pending);
      if (attempt.kind === 'done') {
        // Replies the server gave (they carry its code) are attributed to it; local texts are not.
        for (const [r, outcome] of attempt.results) results.set(r, outcome.code === undefined ? outcome : { ...outcome, remoteMta: host.name });
        return answer();
      }
      lastProblem = attempt.reply;
      log({ messageId: message.messageId, domain, host: host.name, address, port, reply: formatReply(attempt.reply) }, 'mail exchanger unavailable, trying the next');
    }
  }
  if (refused.length === tried.size) {
    log({ messageId: message.messageId, domain, refused }, 'every mail exchanger address is non-public; not connecting');
    everyone('failed', replies.nonPublicExchangers(domain, refused), pending);
    return answer();
  }
  everyone('deferred', lastProblem, pending);
  return answer();
}

/** Delivers over one address: a pooled session when there is one, else a new connection. */
async function tryAddress(ctx: TransportContext, host: string, address: string, message: OutboundMessage, recipients: string[]): Promise<HostAttempt> {
  const { port, pool, maxPerHost, log } = ctx;
  const key = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  // A reused session may turn out dead (the server closed it while idle: its first reply is a 421 or
  // nothing); each retry drops one, so this ends after at most one fresh connection.
  for (let round = 0; round <= maxPerHost; round++) {
    const lease = await pool.acquire(key);
    if (!lease) return { kind: 'done', results: allOf(recipients, { status: 'deferred', reply: replies.shuttingDown() }) };
    const session = lease.member ?? (await open(ctx, lease, host, address));
    if (!(session instanceof SmtpSession)) return { kind: 'unreachable', reply: session };

    const outcome = await transactAll(ctx, session, message, recipients);
    pool.release(lease, session, outcome.kind === 'done' && session.alive);
    if (outcome.kind === 'done') {
      if (lease.member) ctx.stats.sessionsReused++;
      log(
        { messageId: message.messageId, host, address, port, tls: session.secure, results: Object.fromEntries(outcome.results) },
        'SMTP delivery attempt finished',
      );
      return outcome;
    }
    // Died before any recipient was answered. On a reused session that is most
    // likely the server having just closed it: try a fresh connection.
    if (lease.member === undefined) return { kind: 'unreachable', reply: outcome.reply };
  }
  return { kind: 'unreachable', reply: replies.noUsableConnection(`${host}[${address}]:${port}`) };
}

/** Opens a session into an empty slot; the problem text (slot released) on failure. */
async function open(ctx: TransportContext, lease: Lease<SmtpSession>, host: string, address: string): Promise<SmtpSession | Reply> {
  const { options, port, pool, stats, connectTimeoutMs, commandTimeoutMs } = ctx;
  try {
    const session = await openSession({
      host,
      address,
      port,
      heloName: options.heloName,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      connectTimeoutMs,
      commandTimeoutMs,
    });
    stats.connectionsOpened++;
    session.onEnd(() => pool.forget(lease.key, session));
    return session;
  } catch (err) {
    pool.release(lease, undefined, false);
    if (err instanceof ConnectError) return err.reply;
    throw err; // not a network failure: a bug, let the worker see it
  }
}

/**
 * One transaction, then more for recipients refused with 452 while the
 * previous one made progress (servers that cap recipients per transaction).
 */
async function transactAll(ctx: TransportContext, session: SmtpSession, message: OutboundMessage, recipients: string[]): Promise<SessionAttempt> {
  const { stats } = ctx;
  const results = new Map<string, RcptOutcome>();
  let batch = recipients;
  for (let first = true; batch.length > 0; first = false) {
    const outcome = await session.transact(message, batch);
    if (outcome.kind === 'done') stats.transactions++;
    if (outcome.kind === 'unusable') {
      // Nothing is known from this host yet: let the caller try elsewhere.
      if (first) return outcome;
      for (const r of batch) results.set(r, { status: 'deferred', reply: outcome.reply });
      break;
    }
    for (const [r, o] of outcome.results) results.set(r, o);
    const again = batch.filter((r) => outcome.results.get(r)?.code === 452);
    batch = outcome.delivered > 0 && session.alive ? again : [];
  }
  return { kind: 'done', results };
}

function allOf(recipients: string[], outcome: RcptOutcome): Map<string, RcptOutcome> {
  return new Map(recipients.map((r) => [r, outcome]));
}

/** Drops the internal reply code; a missing entry would be a bug here, reported as a deferral, not a crash. */
function publicOutcome(o: RcptOutcome | undefined): Omit<RecipientResult, 'recipient'> {
  if (!o) return { status: 'deferred', reply: replies.noResult() };
  return { status: o.status, reply: o.reply, ...(o.remoteMta ? { remoteMta: o.remoteMta } : {}) };
}
