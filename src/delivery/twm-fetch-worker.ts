/**
 * The recipient's fetches and receipts (docs/protocol.md 8.3-8.5).
 *
 * Design note.
 * - The store is the state: rows `scheduled` (a fetch is due) and
 *   `receipt-due` (a receipt is due) with their next attempt time. The worker
 *   polls due rows, groups them by notice, and does one fetch (for every
 *   scheduled recipient of the notice) and one receipt per notice. Notices
 *   in flight are left out of later polls, and a poll never waits for the
 *   work it started (at most `maxInFlight` notices at once), so one slow
 *   sender does not hold up the others.
 * - After a successful store the receipt goes out at once, and only its
 *   outcome is written (`closed`, or `receipt-due` to retry): one write per
 *   message instead of two.
 * - A fetch goes to the sender domain's own SRV target, signed under the
 *   recipient domain's key; the client never uses anything from the notice
 *   but its id. The octets are checked (size, SHA-256, Content-Digest, From:,
 *   List-Id) before anything is stored; then the one ingest path stores them
 *   durably, and only then is the `delivered` receipt due.
 * - At-least-once: a crash between ingest and the row update fetches the
 *   message again; ingest then finds it stored under the notice's key and
 *   stores nothing twice (never a loss, and no duplicate).
 * - Retries use the queue's backoff; fetches end at `expires` (the store's
 *   expire() closes them), receipts at `expires` + 24 h, and both after
 *   MAX_CONTACT_ATTEMPTS attempts; a target that proves not to be a TWM
 *   endpoint (TLS identity, no TLS, a non-TWM answer) ends them at once.
 */
import { createHash } from 'node:crypto';
import { domainOf, normalisedAddress } from '../core/address.ts';
import { ReplyError } from '../core/errors.ts';
import { nextAttempt, type BackoffOptions } from '../core/retry-schedule.ts';
import { normaliseListId } from '../core/screener-keys.ts';
import { fetchRequestToJson, receiptToJson } from '../core/twm-schema.ts';
import { contentDigest } from '../core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS, TWM_RECEIPT_GRACE_MS, type ReceiptError, type ReceiptEntry } from '../core/twm-types.ts';
import type { Ingest } from '../ingest/ingest.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { DEFAULT_HEADER_LIMITS, HeaderLimitChecker, type HeaderLimits } from '../core/header-limits.ts';
import { formatRfc5322Date } from '../mail/date.ts';
import type { TwmInboundRepository, TwmInNotice, TwmInRecipient } from '../store/types.ts';
import { TwmUnreachableError, type TwmClient, type TwmResponse, type TwmSigningKey } from './twm-client-types.ts';
import { startPollLoop } from './poll-loop.ts';
import { describeProblem } from './twm-problem.ts';

export interface TwmFetchWorkerOptions {
  inbox: TwmInboundRepository;
  ingest: Pick<Ingest, 'findRecipient' | 'ingest'>;
  client: Pick<TwmClient, 'post'>;
  /** The signing key for one of our domains. */
  key: (domain: string) => TwmSigningKey;
  hostname: string;
  maxMessageSize: number;
  /** Header section limits (core/header-limits.ts), the same as SMTP's. */
  headerLimits?: HeaderLimits;
  backoff: Omit<BackoffOptions, 'random'>;
  pollIntervalMs?: number;
  /** Rows read per poll. */
  batchSize?: number;
  /** Notices being fetched or receipted at once. Default 50. */
  maxInFlight?: number;
  now?: () => Date;
  log?: (obj: object, msg: string) => void;
  /** A `pending` notice is forgotten this long after it arrived, if it has not expired before (12.7). Default 14 days. */
  pendingHoldMs?: number;
  /** Counts fetch outcomes (metrics): `stored`, `retry`, `abandoned`, or a receipt error code. */
  onFetch?: (outcome: string) => void;
}

export interface TwmFetchWorker {
  kick(): void;
  /** Runs polls until nothing is due now (tests). */
  drain(): Promise<void>;
  stop(): Promise<void>;
}

type Row = { notice: TwmInNotice; recipient: TwmInRecipient };

/**
 * Attempts per notice for its fetch, and again for its receipt (docs/protocol.md 12.2): a notice
 * whose sender's SRV names a third party's host costs that host at most this many attempts, each
 * of at most 20 addresses (3.1), within at most this many backoff intervals (each at most
 * `delivery.max_backoff`): the total-time cap.
 */
export const MAX_CONTACT_ATTEMPTS = 8;

export function startTwmFetchWorker(options: TwmFetchWorkerOptions): TwmFetchWorker {
  const { inbox } = options;
  const now = options.now ?? (() => new Date());
  const log = options.log ?? (() => undefined);
  const batchSize = options.batchSize ?? 50;
  const maxInFlight = options.maxInFlight ?? 50;
  /** Notices (`senderDomain id`) being handled, and their promises. */
  const inFlight = new Map<string, Promise<void>>();
  let lastExpiry = 0;

  /** A fetch that did not get through (or could not be stored): backoff, until `expires` or the attempt cap (12.2). */
  async function retry(n: TwmInNotice, rows: TwmInRecipient[], error: string, deadline: Date): Promise<void> {
    const at = now();
    const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;
    const next = nextAttempt(attempts, at, options.backoff);
    const rcpts = rows.map((r) => r.rcpt);
    if (next > deadline || attempts >= MAX_CONTACT_ATTEMPTS) {
      await inbox.update(n.senderDomain, n.id, rcpts, ['scheduled'], { state: 'expired', nextAttemptAt: null, lastError: error, attempts }, at);
      log({ notice: n.id, from: n.from, error }, 'twm fetch given up');
      return;
    }
    await inbox.update(n.senderDomain, n.id, rcpts, ['scheduled'], { nextAttemptAt: next, lastError: error, attempts }, at);
  }

  const count = options.onFetch ?? (() => undefined);

  async function failed(n: TwmInNotice, rows: TwmInRecipient[], error: ReceiptError): Promise<void> {
    count(error);
    log({ notice: n.id, from: n.from, error }, 'twm fetched body refused; failed receipt due');
    await inbox.update(n.senderDomain, n.id, rows.map((r) => r.rcpt), ['scheduled'], { state: 'receipt-due', receipt: 'failed', receiptError: error, nextAttemptAt: now(), attempts: 0 }, now());
  }

  async function fetch(n: TwmInNotice, rows: TwmInRecipient[]): Promise<void> {
    if (n.size > options.maxMessageSize) return failed(n, rows, 'message-too-large');
    const rcpts = rows.map((r) => r.rcpt);
    let response: Awaited<ReturnType<typeof options.client.post>>;
    try {
      response = await options.client.post(domainOf(n.from), TWM_PATHS.fetch(n.id), TWM_MEDIA_TYPES.fetch, fetchRequestToJson({ rcpt: rcpts }), options.key(domainOf(rcpts[0]!)), {
        maxResponse: n.size + 1,
      });
    } catch (err) {
      if (err instanceof TwmUnreachableError && err.permanent) {
        // The sender's target is no TWM endpoint (12.2): never contacted again for this notice, no receipt.
        count('abandoned');
        log({ notice: n.id, from: n.from, problem: err.message }, 'twm fetch target is no TWM endpoint; abandoned');
        await inbox.update(n.senderDomain, n.id, rcpts, ['scheduled'], { state: 'closed', nextAttemptAt: null, lastError: err.message }, now());
        return;
      }
      count('retry');
      return retry(n, rows, err instanceof TwmUnreachableError ? err.message : String(err), n.expiresAt);
    }
    if (response.status !== 200) {
      const problem = describeProblem(response);
      count(problem.temporary ? 'retry' : 'abandoned');
      if (problem.temporary) return retry(n, rows, problem.text, n.expiresAt);
      // 403, 404, 410 or another permanent refusal: abandoned, no receipt (8.3).
      log({ notice: n.id, from: n.from, problem: problem.text }, 'twm fetch refused; abandoned');
      await inbox.update(n.senderDomain, n.id, rcpts, ['scheduled'], { state: 'closed', nextAttemptAt: null, lastError: problem.text }, now());
      return;
    }
    const body = response.body;
    const checked = checkFetchedBody(n, response, options.headerLimits ?? DEFAULT_HEADER_LIMITS);
    if ('failed' in checked) return failed(n, rows, checked.failed);
    if ('refused' in checked) {
      // No receipt error names a header too large; it is a refusal like the policy's, recorded and closed.
      count('abandoned');
      log({ notice: n.id, from: n.from, reply: checked.refused }, 'twm fetched body refused: header limits');
      await inbox.update(n.senderDomain, n.id, rcpts, ['scheduled'], { state: 'closed', nextAttemptAt: null, lastError: checked.refused }, now());
      return;
    }
    const { facts } = checked;

    const users = [];
    for (const r of rows) {
      const user = await options.ingest.findRecipient(r.rcpt);
      if (user) users.push(user);
    }
    const senderDomain = n.senderDomain;
    try {
      if (users.length > 0) {
        await options.ingest.ingest({
          channel: 'twm',
          origin: 'remote',
          envelopeFrom: n.from,
          recipients: users,
          raw: body,
          prepend: `Received: from ${response.endpoint.replace(/[^\x21-\x7e]/g, '?')}\r\n\tby ${options.hostname} (twoway) with TWM id ${n.id};\r\n\t${formatRfc5322Date(now())}\r\n`,
          auth: { identity: facts.from, alignedDomain: senderDomain, authenticatedDomains: [senderDomain] },
          // Stored once per recipient even when a crash makes us fetch it again.
          twmKey: `${senderDomain} ${n.id}`,
        });
      }
    } catch (err) {
      if (err instanceof ReplyError && !err.temporary) {
        // The policy refused the message at ingest (it cannot for TWM today); nothing stored, nothing to report.
        log({ notice: n.id, from: n.from, reply: err.message }, 'twm message refused at ingest');
        await inbox.update(senderDomain, n.id, rcpts, ['scheduled'], { state: 'closed', nextAttemptAt: null, lastError: err.message }, now());
        return;
      }
      return retry(n, rows, err instanceof Error ? err.message : String(err), n.expiresAt);
    }
    count('stored');
    log({ notice: n.id, from: n.from, rcpts: rcpts.length, size: n.size }, 'twm message fetched and stored');
    // Durable now: the receipt may go out. Only its outcome is written (a crash before that write
    // fetches once more, and ingest recognises the message by its key).
    await receipt(n, rows.map((r) => ({ ...r, receipt: 'delivered' as const, receiptError: null, attempts: 0 })));
  }

  /**
   * Sends one receipt for `rows` (all of one receipt status: a `delivered`
   * batch just stored, or rows already `receipt-due`) and writes its outcome.
   */
  async function receipt(n: TwmInNotice, rows: TwmInRecipient[]): Promise<void> {
    if (rows.length === 0) return;
    const from = ['scheduled', 'receipt-due'] as const;
    const results: ReceiptEntry[] = rows.map((r) => ({
      rcpt: r.rcpt,
      status: r.receipt ?? 'failed',
      ...(r.receipt === 'failed' || r.receipt === null ? { error: r.receiptError ?? 'size-mismatch' } : {}),
    }));
    const rcpts = rows.map((r) => r.rcpt);
    const deadline = new Date(n.expiresAt.getTime() + TWM_RECEIPT_GRACE_MS);
    let response: Awaited<ReturnType<typeof options.client.post>>;
    try {
      response = await options.client.post(domainOf(n.from), TWM_PATHS.receipt, TWM_MEDIA_TYPES.receipt, receiptToJson({ id: n.id, results }), options.key(domainOf(rcpts[0]!)), {
        maxResponse: 4096,
      });
    } catch (err) {
      if (err instanceof TwmUnreachableError && err.permanent) {
        log({ notice: n.id, from: n.from, problem: err.message }, 'twm receipt target is no TWM endpoint; abandoned');
        await inbox.update(n.senderDomain, n.id, rcpts, from, { state: 'closed', receipt: rows[0]!.receipt, receiptError: rows[0]!.receiptError, nextAttemptAt: null, lastError: err.message }, now());
        return;
      }
      return retryReceipt(n, rows, err instanceof TwmUnreachableError ? err.message : String(err), deadline);
    }
    const { receipt: status, receiptError } = rows[0]!;
    if (response.status === 204 || response.status === 200 || response.status === 404) {
      await inbox.update(n.senderDomain, n.id, rcpts, from, { state: 'closed', receipt: status, receiptError, nextAttemptAt: null }, now());
      return;
    }
    const problem = describeProblem(response);
    if (problem.temporary) return retryReceipt(n, rows, problem.text, deadline);
    log({ notice: n.id, from: n.from, problem: problem.text }, 'twm receipt refused; abandoned');
    await inbox.update(n.senderDomain, n.id, rcpts, from, { state: 'closed', receipt: status, receiptError, nextAttemptAt: null, lastError: problem.text }, now());
  }

  /** A receipt that did not get through: `receipt-due` with backoff, until `expires` + 24 h. */
  async function retryReceipt(n: TwmInNotice, rows: TwmInRecipient[], error: string, deadline: Date): Promise<void> {
    const at = now();
    const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;
    const next = nextAttempt(attempts, at, options.backoff);
    const { receipt: status, receiptError } = rows[0]!;
    const giveUp = next > deadline || attempts >= MAX_CONTACT_ATTEMPTS;
    const change =
      giveUp
        ? { state: 'closed' as const, receipt: status, receiptError, nextAttemptAt: null, lastError: error, attempts }
        : { state: 'receipt-due' as const, receipt: status, receiptError, nextAttemptAt: next, lastError: error, attempts };
    await inbox.update(n.senderDomain, n.id, rows.map((r) => r.rcpt), ['scheduled', 'receipt-due'], change, at);
    if (giveUp) log({ notice: n.id, from: n.from, error }, 'twm receipt given up');
  }

  /** Starts the due work not already in flight; true if more may be due than was taken. */
  async function poll(): Promise<boolean> {
    const at = now();
    // Expiry is a write: once every few seconds is enough (a notice's lifetime is days).
    if (at.getTime() - lastExpiry >= 5_000) {
      lastExpiry = at.getTime();
      await inbox.expire(at, new Date(at.getTime() - (options.pendingHoldMs ?? 14 * 86_400_000)));
    }
    const free = maxInFlight - inFlight.size;
    if (free <= 0) return false;
    // Rows of notices in flight come back too; ask for enough to find `batchSize` others.
    const limit = batchSize + inFlight.size;
    const due: Row[] = await inbox.due(at, limit);
    const groups = new Map<string, { notice: TwmInNotice; fetch: TwmInRecipient[]; receipt: TwmInRecipient[] }>();
    for (const { notice, recipient } of due) {
      const key = `${notice.senderDomain} ${notice.id}`;
      if (inFlight.has(key)) continue;
      const g = groups.get(key) ?? { notice, fetch: [], receipt: [] };
      (recipient.state === 'scheduled' ? g.fetch : g.receipt).push(recipient);
      groups.set(key, g);
    }
    let started = 0;
    for (const [key, g] of groups) {
      if (started >= free) return true;
      started++;
      const work = (async () => {
        try {
          if (g.fetch.length > 0) await fetch(g.notice, g.fetch);
          // Rows of one receipt share its status; `failed` ones may differ in their error.
          const byStatus = new Map<string, TwmInRecipient[]>();
          for (const r of g.receipt) byStatus.set(`${r.receipt} ${r.receiptError}`, [...(byStatus.get(`${r.receipt} ${r.receiptError}`) ?? []), r]);
          for (const rows of byStatus.values()) await receipt(g.notice, rows);
        } catch (err) {
          log({ err, notice: g.notice.id }, 'twm fetch worker error');
        }
      })().finally(() => {
        inFlight.delete(key);
        kick();
      });
      inFlight.set(key, work);
    }
    return due.length === limit;
  }

  const loop = startPollLoop(poll, {
    intervalMs: options.pollIntervalMs ?? 1000,
    onError: (err) => log({ err }, 'twm fetch worker poll failed'),
    pending: () => inFlight.values(),
  });
  function kick(): void {
    loop.kick();
  }
  return { kick, drain: loop.drain, stop: loop.stop };
}

/**
 * The checks of a fetched body against its notice (docs/protocol.md 7.4,
 * 8.3), in order: size, SHA-256, Content-Digest, header limits, From: and
 * List-Id. `failed` names the receipt error; `refused` is a header-limit
 * refusal, which no receipt error names.
 */
function checkFetchedBody(
  n: TwmInNotice,
  response: Pick<TwmResponse, 'body' | 'truncated' | 'headers'>,
  headerLimits: HeaderLimits,
): { failed: ReceiptError } | { refused: string } | { facts: ReturnType<typeof messageFacts> } {
  const body = response.body;
  if (response.truncated || body.length !== n.size || (response.headers['content-length'] !== undefined && Number(response.headers['content-length']) !== n.size)) {
    return { failed: 'size-mismatch' };
  }
  if (createHash('sha256').update(body).digest('hex') !== n.sha256) return { failed: 'digest-mismatch' };
  const digest = response.headers['content-digest'];
  if (digest !== undefined && !digest.includes(contentDigest(body).slice('sha-256='.length))) return { failed: 'digest-mismatch' };
  const header = new HeaderLimitChecker(headerLimits);
  header.push(body);
  const refused = header.finish();
  if (refused) return { refused: refused.message };
  const facts = messageFacts(parseHeaders(body));
  if (facts.from === null || facts.from !== normalisedAddress(n.from)) return { failed: 'from-mismatch' };
  if (n.listId !== null && (facts.listId === null || normaliseListId(facts.listId) !== n.listId)) return { failed: 'from-mismatch' };
  return { facts };
}
