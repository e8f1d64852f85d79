/**
 * The recipient's side of Two-Way Mail at notice time (docs/protocol.md
 * 5.3, 5.5, 8.1, 8.2, 8.4 and 8.6): key lookup, nonces, the notice's own
 * checks, the per-recipient decision, and a sender's retry, which also
 * schedules again a fetch given up (retried-notice.ts).
 * What later decisions do to pending notices is services/twm-decisions.ts;
 * fetching and receipts are the fetch worker's (delivery/twm-fetch-worker.ts).
 *
 * The decision is the same policy as for SMTP (`ingest.predict`, channel
 * `twm`, the signer domain as the authenticated domain); the fetched message
 * is decided again by `ingest` when it arrives.
 */
import type { KeyObject } from 'node:crypto';
import { normalisedAddress } from '../../core/address.ts';
import { parseKeyRecord } from '../../core/twm-key-record.ts';
import { signerRateKey } from '../../core/rate-keys.ts';
import type { SpamScan } from '../../core/spam.ts';
import { createTokenBuckets, type RateLimit } from '../../core/token-bucket.ts';
import { twmError, type Notice, type NoticeResult, type TwmInState } from '../../core/twm-types.ts';
import type { DnsResolver } from '../../dns/types.ts';
import type { Ingest } from '../../ingest/ingest.ts';
import type { TwmNonce, TwmSigner } from '../../protocols/twoway/types.ts';
import type { TwmInboundRepository, TwmInRecipient, TwmRequestTouch } from '../../store/types.ts';
import { NonceSeenError, StoreConflictError, type TwmNonceWrite } from '../../store/types.ts';
import { createNonceMemory, createNonceStore, type NonceRepository, type NonceStore } from './nonces.ts';
import { createPendingTotals, type PendingTotals } from './pending-totals.ts';
import { answerRetry, type RetryContext, type RetryTerms } from './retried-notice.ts';

export interface TwmInboxOptions {
  inbox: TwmInboundRepository;
  ingest: Pick<Ingest, 'findRecipient' | 'predict'>;
  resolver: DnsResolver;
  domains: string[];
  maxMessageSize: number;
  uniformAnswers: boolean;
  noticeRate: RateLimit;
  /** Stored pending notices allowed per (user, sender address) and per user; beyond: `deferred` (12.7). */
  pendingCaps?: { perSender: number; perUser: number };
  /**
   * How long a pending count from the store stands in for the next notices (pending-totals.ts):
   * PENDING_TOTAL_TTL_MS by default; longer only when this process alone records notices.
   */
  pendingCountTtlMs?: number;
  /** Fetches for accepted recipients start within this (random jitter, 8.4). */
  fetchJitterMs?: number;
  /** Declined receipts wait a random time up to this (8.6). */
  declineDelayMs: number;
  /**
   * Since when nonces are remembered (5.5): the process start (the default), or the epoch when the
   * store is new, since then no earlier process can have seen a request.
   */
  noncesSince?: Date;
  /** Wakes the fetch worker when something is due soon. */
  kick: () => void;
  /** Where nonces are kept: the store (shared by every process and node). Default: this process's memory. */
  nonces?: NonceRepository;
  now?: () => Date;
  random?: () => number;
  /** Replaces the plain key lookup (with DNSSEC: key-lookup-secure.ts). */
  lookupKey?: (keyid: string) => Promise<KeyObject | null>;
  /**
   * Scans a stranger's introduction with the spam filter (spam/index.ts), when one is configured.
   * The result only ranks the contact request and marks it likely spam: it never changes the
   * answer, since an answer that depended on it would tell the sender what the filter thinks.
   */
  scanIntro?: (input: { intro: string; from: string; to: string[] }) => Promise<SpamScan>;
}

/** `created` may be at most this far in the future (6.1); `expires` at most 30 days after it. */
const CLOCK_SKEW_MS = 300_000;
const MAX_LIFETIME_MS = 30 * 24 * 3_600_000;
/** A capped recipient is asked to come back in an hour: the user may act, or the hold (12.7) frees room. */
const PENDING_CAP_RETRY_S = 3600;

/** The TWM key lookup hook (docs/protocol.md 3.2): the signer's public key from DNS, or null when there is none. */
function createKeyLookup(resolver: DnsResolver): (keyid: string) => Promise<KeyObject | null> {
  // Parsed keys by record text: the resolver caches the answer for its TTL, so the same text comes
  // back for every notice of a busy domain; parsing it (and building a KeyObject) each time is waste.
  const parsedKeys = new Map<string, KeyObject | null>();
  // By the resolver's shared cached answer itself: the same (frozen) object for as long as it is
  // cached, so a busy domain's notices find their key without building the record text again.
  const byAnswer = new WeakMap<object, KeyObject | null>();
  return async function lookupKey(keyid: string): Promise<KeyObject | null> {
    try {
      // The shared (frozen) cached answer when the resolver has one: read only here, no copy per notice.
      const txt = resolver.resolveShared ? await resolver.resolveShared(keyid, 'TXT') : await resolver.resolve(keyid, 'TXT');
      const known = byAnswer.get(txt);
      if (known !== undefined) return known;
      const text = `${keyid}\n${txt.map((parts) => parts.join('')).join('\n')}`;
      let key = parsedKeys.get(text);
      if (key === undefined) {
        key = parseKeyRecord(txt);
        if (parsedKeys.size >= 10_000) parsedKeys.clear();
        parsedKeys.set(text, key);
      }
      if (resolver.resolveShared) byAnswer.set(txt, key);
      return key;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') return null;
      throw twmError('temporarily-unavailable', `key lookup failed (${code ?? 'error'}); try again later`, { retryAfter: 60, cause: err });
    }
  };
}

export function createTwmInbox(options: TwmInboxOptions) {
  const random = options.random ?? Math.random;
  const served = new Set(options.domains);
  const memory = options.nonces ? null : createNonceMemory(options.noncesSince ? { startedAt: options.noncesSince } : {});
  const shared = options.nonces ? createNonceStore(options.nonces) : null;
  const caps = options.pendingCaps ?? { perSender: 100, perUser: 10_000 };
  const perDomain = createTokenBuckets(options.noticeRate);
  const ctx: InboxContext = {
    options,
    now: options.now ?? (() => new Date()),
    random,
    perDomain,
    retry: { inbox: options.inbox, uniformAnswers: options.uniformAnswers, giveBack: (key) => perDomain.giveBack(key), kick: options.kick },
    jitter: options.fetchJitterMs ?? 10_000,
    caps,
    pendingTotals: createPendingTotals(caps.perUser, options.pendingCountTtlMs),
    senderTotals: createPendingTotals(caps.perSender, options.pendingCountTtlMs),
  };
  const notice = (n: Notice, signer: TwmSigner, contentSha256: string): Promise<NoticeResult> => receiveNotice(ctx, n, signer, contentSha256);
  return {
    hooks: {
      servesDomain: (domain: string) => served.has(domain.toLowerCase()),
      lookupKey: options.lookupKey ?? createKeyLookup(options.resolver),
      rememberNonce: async (keyid: string, nonce: string, until: Date, created: Date) => (shared ? shared.remember(keyid, nonce, until, created) : memory!.remember(keyid, nonce, until, created)),
      notice,
      // Nonces in the store: a new notice's nonce goes into the notice's own transaction.
      ...(shared ? { noticeWithNonce: (n: Notice, signer: TwmSigner, contentSha256: string, nonce: TwmNonce) => receiveWithNonce(ctx, shared, n, signer, contentSha256, nonce) } : {}),
    },
  };
}

/**
 * Step 12, deferred (protocols/twoway/types.ts noticeWithNonce): the nonce is
 * remembered with the notice when the notice is recorded, else on its own
 * before the answer; a seen nonce is `replay` whatever the other answer was.
 */
interface DeferredNonce {
  write: TwmNonceWrite;
  /** Remembered (or found seen) already: nothing left to do. */
  settled: boolean;
}

async function receiveWithNonce(ctx: InboxContext, store: NonceStore, n: Notice, signer: TwmSigner, contentSha256: string, nonce: TwmNonce): Promise<NoticeResult> {
  // `stale-signature` first, as step 12 would have answered it.
  const duty = new DeferredNonceDuty(store, { write: store.claim(nonce.keyid, nonce.nonce, nonce.until, nonce.created), settled: false });
  try {
    return await receiveNotice(ctx, n, signer, contentSha256, duty);
  } catch (err) {
    if (err instanceof NonceSeenError) throw replayed();
    await duty.settle();
    throw err;
  }
}

/** A class, not a closure per notice: under tsx (the benchmarks) each closure also costs a call naming it. */
class DeferredNonceDuty implements NonceDuty {
  constructor(
    private readonly store: NonceStore,
    readonly deferred: DeferredNonce,
  ) {}

  async settle(): Promise<void> {
    if (this.deferred.settled) return;
    this.deferred.settled = true;
    if (!(await this.store.rememberClaim(this.deferred.write))) throw replayed();
  }
}

const replayed = () => twmError('replay', 'this signature was used before');

/** What receiveNotice does with a deferred nonce: remember it on the paths that record nothing. */
interface NonceDuty {
  deferred: DeferredNonce;
  settle(): Promise<void>;
}

/** What every notice's handling shares: the options and the state kept between notices. */
interface InboxContext {
  options: TwmInboxOptions;
  now: () => Date;
  random: () => number;
  /** Notices per organizational domain (12.7). */
  perDomain: ReturnType<typeof createTokenBuckets>;
  /** What a sender's retry of a recorded notice needs (retried-notice.ts). */
  retry: RetryContext;
  jitter: number;
  caps: { perSender: number; perUser: number };
  /** The users' pending totals between counts (pending-totals.ts). */
  pendingTotals: PendingTotals;
  /** The same per (user, sender): senderKey(). */
  senderTotals: PendingTotals<string>;
}

type RecipientRow = Omit<TwmInRecipient, 'updatedAt' | 'attempts' | 'lastError'>;

/**
 * One notice, from its own checks to its stored rows and answers (5.5, 8.1, 8.2).
 *
 * A notice seen before (5.5) is answered with its stored statuses before any other check of its
 * own, and takes no other action but rescheduling fetches given up
 * (retried-notice.ts, which also says when such a retry is refused instead). Asking the store
 * first cost every notice a read transaction of its own (about 10 µs of a stranger's 700 in a
 * perf profile, net: the next read now takes the fresh WAL snapshot this one took), so the
 * question is put only where a notice would be refused or deferred (`seenBefore`); a new notice
 * learns it from its own insert (recordUnlessKnown), and a known one then gives back the
 * rate-limit token it took, so that a retry costs the sender domain nothing, as when it was
 * asked first (unless it reschedules a fetch: new work, retried-notice.ts).
 */
async function receiveNotice(ctx: InboxContext, n: Notice, signer: TwmSigner, contentSha256: string, nonce?: NonceDuty): Promise<NoticeResult> {
  const { options } = ctx;
  const at = ctx.now();
  checkNoticeTimes(n, at);
  if (n.size > options.maxMessageSize) {
    const tooLarge = () => twmError('message-too-large', `the message is larger than ${options.maxMessageSize} octets`, { maxSize: options.maxMessageSize });
    const known = await seenBefore(ctx, n, signer, contentSha256, nonce, { refuse: tooLarge }, at);
    if (known) return known;
    throw tooLarge();
  }
  // By organizational domain (12.7): a wildcard of subdomains shares its parent's bucket.
  const rateKey = signerRateKey(signer.domain);
  const wait = ctx.perDomain.take(rateKey, at.getTime());
  if (wait > 0) {
    const limited = () => twmError('rate-limited', `too many notices from ${rateKey}`, { retryAfter: wait });
    const known = await seenBefore(ctx, n, signer, contentSha256, nonce, { refuse: limited }, at);
    if (known) return known;
    throw limited();
  }

  const rows: RecipientRow[] = [];
  const requests: TwmRequestTouch[] = [];
  const results: NoticeResult['results'] = [];
  let capped = false;
  for (const rcpt of n.to) {
    const outcome = await decideRecipient(ctx, n, signer, rcpt, at);
    rows.push(outcome.row);
    results.push(outcome.result);
    if (outcome.request) requests.push(outcome.request);
    capped ||= outcome.capped;
  }
  if (capped) {
    const known = await seenBefore(ctx, n, signer, contentSha256, nonce, { rateKey }, at);
    if (known) return known;
    await nonce?.settle();
    // Nothing stored: the sender sends the same notice again later and every recipient is decided
    // afresh (a notice is recorded whole, so one capped recipient defers its companions too).
    return { id: n.id, results: n.to.map((rcpt) => ({ rcpt, status: 'deferred' as const, retryAfter: PENDING_CAP_RETRY_S })) };
  }
  await scoreIntro(options.scanIntro, n, requests);
  let known: Awaited<ReturnType<TwmInboundRepository['recordUnlessKnown']>>;
  try {
    known = await options.inbox.recordUnlessKnown(storedNotice(n, signer, contentSha256, at), rows, requests, nonce?.deferred.write);
    // Remembered in the write, whether or not the notice was known.
    if (nonce) nonce.deferred.settled = true;
  } catch (err) {
    // A store that reports a known notice as a conflict (record's contract): answer as for a retry.
    // The nonce was rolled back with it: still to be remembered.
    if (err instanceof StoreConflictError) {
      const seen = await seenBefore(ctx, n, signer, contentSha256, nonce, { rateKey }, at);
      if (seen) return seen;
      ctx.perDomain.giveBack(rateKey);
    }
    if (err instanceof NonceSeenError && nonce) nonce.deferred.settled = true;
    throw err;
  }
  if (known) return answerRetry(ctx.retry, known, n, contentSha256, signer.domain, at, { rateKey });
  for (const r of rows) {
    if (r.state !== 'pending' || r.userId === null) continue;
    ctx.pendingTotals.added(r.userId, 1);
    ctx.senderTotals.added(senderKey(r.userId, n.from.toLowerCase()), 1);
  }
  wakeFetcher(ctx, rows, at);
  return { id: n.id, results };
}

/**
 * The answer to a notice seen before (5.5) when it is, its nonce remembered; undefined for a new
 * one. `terms`: the rate-limit token the notice took, or the refusal it gets if it is new work
 * after all (retried-notice.ts).
 */
async function seenBefore(ctx: InboxContext, n: Notice, signer: TwmSigner, contentSha256: string, nonce: NonceDuty | undefined, terms: RetryTerms, at: Date): Promise<NoticeResult | undefined> {
  const known = await ctx.options.inbox.find(signer.domain, n.id);
  if (!known) return undefined;
  try {
    await nonce?.settle();
  } catch (err) {
    if ('rateKey' in terms) ctx.perDomain.giveBack(terms.rateKey);
    throw err;
  }
  return answerRetry(ctx.retry, known, n, contentSha256, signer.domain, at, terms);
}

/** The checks that need neither the store nor DNS (6.1): the clock window and the lifetime. */
function checkNoticeTimes(n: Notice, at: Date): void {
  if (n.created.getTime() > at.getTime() + CLOCK_SKEW_MS) throw twmError('invalid-request', '"created" is in the future');
  if (n.expires.getTime() - n.created.getTime() > MAX_LIFETIME_MS) throw twmError('invalid-request', '"expires" is more than 30 days after "created"');
  if (n.expires <= at) throw twmError('expired', 'the notice has expired');
}

/** One recipient of a new notice: the policy's verdict (8.2), as a stored row and an answer. */
async function decideRecipient(
  ctx: InboxContext,
  n: Notice,
  signer: TwmSigner,
  rcpt: string,
  at: Date,
): Promise<{ row: RecipientRow; result: NoticeResult['results'][number]; request?: TwmRequestTouch; capped: boolean }> {
  const { options } = ctx;
  const address = rcpt.toLowerCase();
  const user = await options.ingest.findRecipient(address);
  if (!user) {
    const row: RecipientRow = { senderDomain: signer.domain, noticeId: n.id, rcpt: address, userId: null, state: 'unknown', receipt: null, receiptError: null, nextAttemptAt: null };
    return { row, result: { rcpt, status: options.uniformAnswers ? 'pending' : 'unknown' }, capped: false };
  }
  const from = normalisedAddress(n.from);
  const verdict = await options.ingest.predict(user, {
    channel: 'twm',
    origin: 'remote',
    from,
    fromProblem: from === null ? `unparsable notice "from" ${JSON.stringify(n.from.slice(0, 300))}` : null,
    listId: n.listId?.toLowerCase() ?? null,
    alignedDomain: signer.domain,
    authenticatedDomains: [signer.domain],
    autoSubmitted: false,
    ownershipConfirmation: n.purpose === 'ownership-confirmation',
    at,
  });
  let state: TwmInState;
  let nextAttemptAt: Date | null = null;
  let receipt: 'declined' | null = null;
  let request: TwmRequestTouch | undefined;
  let capped = false;
  // In open mode a stranger is answered `accepted` and fetched; a blocked sender whose block is not
  // to be revealed must see exactly that (8.6, 12.6): the same answer, a fetch within the same
  // jitter, and the `delivered` receipt of a stored message. Ingest then drops it, as SMTP's open
  // mode answers 250 and drops.
  const hideBlock = verdict.kind === 'drop' && user.mode === 'open' && !user.revealDeclined;
  if (verdict.kind === 'inbox' || hideBlock) {
    state = 'scheduled';
    nextAttemptAt = new Date(at.getTime() + ctx.random() * ctx.jitter);
  } else if (verdict.kind === 'drop') {
    // Blocked: held silently, or a declined receipt if the user chose to reveal it (8.6). The receipt
    // waits a random time, so that its speed does not reveal that the decision was automatic.
    state = user.revealDeclined ? 'receipt-due' : 'held';
    if (user.revealDeclined) {
      receipt = 'declined';
      nextAttemptAt = new Date(at.getTime() + ctx.random() * options.declineDelayMs);
    }
  } else {
    const sender = n.from.toLowerCase();
    const count = await countPending(ctx, user.id, sender, at);
    capped = count.fromSender >= ctx.caps.perSender || count.total >= ctx.caps.perUser;
    state = 'pending';
    request = { userId: user.id, sender, authDomain: signer.domain, intro: n.intro ?? null, at };
  }
  // Written out, not spread from a shared base: one object shape for every row.
  const row: RecipientRow = { senderDomain: signer.domain, noticeId: n.id, rcpt: address, userId: user.id, state, receipt, receiptError: null, nextAttemptAt };
  return { row, result: { rcpt, status: state === 'scheduled' ? 'accepted' : 'pending' }, request, capped };
}

/**
 * The user's pending notices from the sender and in all (12.7), each from its estimate while far
 * below its cap (pending-totals.ts), else from the store.
 */
async function countPending(ctx: InboxContext, userId: number, sender: string, at: Date): Promise<{ fromSender: number; total: number }> {
  const key = senderKey(userId, sender);
  const total = ctx.pendingTotals.estimate(userId, at.getTime());
  const fromSender = ctx.senderTotals.estimate(key, at.getTime());
  if (total !== undefined && fromSender !== undefined) return { fromSender, total };
  if (total !== undefined) {
    const counted = await ctx.options.inbox.countPendingFrom(userId, sender);
    ctx.senderTotals.counted(key, counted, at.getTime());
    return { fromSender: counted, total };
  }
  const count = await ctx.options.inbox.countPending(userId, sender);
  ctx.pendingTotals.counted(userId, count.total, at.getTime());
  ctx.senderTotals.counted(key, count.fromSender, at.getTime());
  return count;
}

/** The key of a (user, sender) pending count: a newline is in no address. */
const senderKey = (userId: number, sender: string): string => `${userId}\n${sender}`;

/** The notice as stored: addresses lower-cased for matching, the rest as signed. */
function storedNotice(n: Notice, signer: TwmSigner, contentSha256: string, at: Date) {
  return {
    senderDomain: signer.domain,
    id: n.id,
    contentSha256,
    from: n.from.toLowerCase(),
    to: n.to.map((t) => t.toLowerCase()),
    size: n.size,
    sha256: n.sha256,
    createdAt: n.created,
    expiresAt: n.expires,
    intro: n.intro ?? null,
    purpose: n.purpose ?? null,
    listId: n.listId?.toLowerCase() ?? null,
    receivedAt: at,
  };
}

/**
 * Wakes the fetch worker when the first jittered fetch is due: its own poll
 * (every second) would add up to another second to every delivery. Clamped:
 * a test clock may be far from the timer's.
 */
function wakeFetcher(ctx: InboxContext, rows: RecipientRow[], at: Date): void {
  const dueAt = rows.flatMap((r) => (r.state === 'scheduled' && r.nextAttemptAt ? [r.nextAttemptAt.getTime()] : []));
  if (dueAt.length === 0) return;
  const delay = Math.min(Math.max(0, Math.min(...dueAt) - at.getTime()), ctx.jitter);
  if (delay === 0) ctx.options.kick();
  else setTimeout(ctx.options.kick, delay).unref();
}

export type TwmInbox = ReturnType<typeof createTwmInbox>;

/**
 * A stranger's notice has no body to score: its introduction, the one text
 * a stranger sends before being allowed, is scanned once per notice and the
 * score goes on every contact request the notice creates (the Screener ranks
 * by it, core/reputation.ts). One line of text is thin evidence (rspamd's
 * Bayes needs more words), so this only sorts and marks: docs/architecture.md section 8.
 */
async function scoreIntro(scan: TwmInboxOptions['scanIntro'], n: Notice, requests: TwmRequestTouch[]): Promise<void> {
  if (!scan || !n.intro || requests.length === 0) return;
  const result = await scan({ intro: n.intro, from: n.from, to: n.to });
  if (result.status !== 'scanned') return;
  for (const r of requests) {
    r.spamScore = result.score;
    r.likelySpam = result.judgement !== 'clean';
  }
}
