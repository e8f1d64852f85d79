/**
 * The fetch worker's steps for one claimed notice (design note in
 * twm-fetch-worker.ts): the fetch, the checks and the store of its body,
 * the receipt, and their retries. Every write is made under this process's
 * lease (`owner`): if another process took the notice over, the write
 * changes nothing and is logged as refused.
 */
import { domainOf } from '../core/address.ts';
import { ReplyError } from '../core/errors.ts';
import { DEFAULT_HEADER_LIMITS } from '../core/header-limits.ts';
import { nextAttempt } from '../core/retry-schedule.ts';
import { fetchRequestToJson, receiptToJson } from '../core/twm-schema.ts';
import { MAX_CONTACT_ATTEMPTS, TWM_MEDIA_TYPES, TWM_PATHS, TWM_RECEIPT_GRACE_MS, type ReceiptEntry, type ReceiptError, type TwmInState } from '../core/twm-types.ts';
import { formatRfc5322Date } from '../mail/date.ts';
import type { TwmInNotice, TwmInRecipient, TwmInRecipientChange } from '../store/types.ts';
import { checkFetchedBody } from './twm-fetch-check.ts';
import { reportType, TwmUnreachableError, type TwmResponse } from './twm-client-types.ts';
import { describeProblem } from './twm-problem.ts';
import type { TwmFetchWorkerOptions } from './twm-fetch-worker.ts';

export interface StepContext {
  options: TwmFetchWorkerOptions;
  owner: string;
  now: () => Date;
  log: (obj: object, msg: string) => void;
  count: (outcome: string) => void;
  /** A row was made due now (a failed receipt): the worker should poll. */
  due?: () => void;
}

export function createFetchSteps(ctx: StepContext) {
  return {
    fetch: (n: TwmInNotice, rows: TwmInRecipient[]) => fetchBody(ctx, n, rows),
    receipt: (n: TwmInNotice, rows: TwmInRecipient[]) => sendReceipt(ctx, n, rows),
  };
}

/** Counts an outcome against the sender's domain for its failure report (6.6). */
function report(ctx: StepContext, n: TwmInNotice, resultType: string): void {
  ctx.options.report?.(n.senderDomain, resultType);
}

/** A write of this attempt's outcome, only while our lease holds. */
async function write(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[], from: readonly TwmInState[], change: TwmInRecipientChange, at = ctx.now()): Promise<void> {
  const rcpts = rows.map((r) => r.rcpt);
  const changed = await ctx.options.inbox.update(n.senderDomain, n.id, rcpts, from, change, at, ctx.owner);
  if (changed.length < rcpts.length) {
    ctx.log({ notice: n.id, from: n.from, refused: rcpts.filter((r) => !changed.includes(r)), owner: ctx.owner }, 'late write refused: the lease on these TWM rows was taken over by another process');
  }
}

/**
 * A fetch that did not get through (or could not be stored): backoff, until `expires` or the
 * MAX_CONTACT_ATTEMPTS-th attempt. Given up, the row keeps its attempts: that is how a sender's
 * retry of the notice (endpoints/twm/retried-notice.ts) finds it and schedules it again.
 */
async function retry(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[], error: string): Promise<void> {
  const at = ctx.now();
  const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;
  const next = nextAttempt(attempts, at, ctx.options.backoff);
  if (next > n.expiresAt || attempts >= MAX_CONTACT_ATTEMPTS) {
    await write(ctx, n, rows, ['scheduled'], { state: 'expired', nextAttemptAt: null, lastError: error, attempts }, at);
    ctx.log({ notice: n.id, from: n.from, error }, 'twm fetch given up');
    return;
  }
  await write(ctx, n, rows, ['scheduled'], { nextAttemptAt: next, lastError: error, attempts }, at);
}

async function failed(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[], error: ReceiptError): Promise<void> {
  ctx.count(error);
  report(ctx, n, `fetch-${error}`);
  ctx.log({ notice: n.id, from: n.from, error }, 'twm fetched body refused; failed receipt due');
  await write(ctx, n, rows, ['scheduled'], { state: 'receipt-due', receipt: 'failed', receiptError: error, nextAttemptAt: ctx.now(), attempts: 0 });
  ctx.due?.();
}

async function closed(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[], lastError: string): Promise<void> {
  await write(ctx, n, rows, ['scheduled'], { state: 'closed', nextAttemptAt: null, lastError });
}

async function fetchBody(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[]): Promise<void> {
  if (n.size > ctx.options.maxMessageSize) return failed(ctx, n, rows, 'message-too-large');
  const rcpts = rows.map((r) => r.rcpt);
  let response: TwmResponse;
  try {
    response = await ctx.options.client.post(domainOf(n.from), TWM_PATHS.fetch(n.id), TWM_MEDIA_TYPES.fetch, fetchRequestToJson({ rcpt: rcpts }), ctx.options.key(domainOf(rcpts[0]!)), {
      maxResponse: n.size + 1,
    });
  } catch (err) {
    report(ctx, n, reportType(err, 'fetch'));
    if (err instanceof TwmUnreachableError && err.permanent) {
      // The sender's target is no TWM endpoint (12.2): never contacted again for this notice, no receipt.
      ctx.count('abandoned');
      ctx.log({ notice: n.id, from: n.from, problem: err.message }, 'twm fetch target is no TWM endpoint; abandoned');
      return closed(ctx, n, rows, err.message);
    }
    ctx.count('retry');
    return retry(ctx, n, rows, err instanceof TwmUnreachableError ? err.message : String(err));
  }
  if (response.status !== 200) {
    const problem = describeProblem(response);
    report(ctx, n, `fetch-${problem.code ?? `http-${response.status}`}`);
    ctx.count(problem.temporary ? 'retry' : 'abandoned');
    if (problem.temporary) return retry(ctx, n, rows, problem.text);
    // 403, 404, 410 or another permanent refusal: abandoned, no receipt (8.3).
    ctx.log({ notice: n.id, from: n.from, problem: problem.text }, 'twm fetch refused; abandoned');
    return closed(ctx, n, rows, problem.text);
  }
  const checked = checkFetchedBody(n, response, ctx.options.headerLimits ?? DEFAULT_HEADER_LIMITS);
  if ('failed' in checked) return failed(ctx, n, rows, checked.failed);
  if ('refused' in checked) {
    // No receipt error names a header too large; it is a refusal like the policy's, recorded and closed.
    ctx.count('abandoned');
    report(ctx, n, 'fetch-header-limits');
    ctx.log({ notice: n.id, from: n.from, reply: checked.refused }, 'twm fetched body refused: header limits');
    return closed(ctx, n, rows, checked.refused);
  }
  if (!(await store(ctx, n, rows, response, checked))) return;
  ctx.count('stored');
  report(ctx, n, 'success');
  ctx.log({ notice: n.id, from: n.from, rcpts: rcpts.length, size: n.size }, 'twm message fetched and stored');
  // Durable now: the receipt may go out. Only its outcome is written (a crash before that write
  // fetches once more, and ingest recognises the message by its key).
  await sendReceipt(ctx, n, rows.map((r) => ({ ...r, receipt: 'delivered' as const, receiptError: null, attempts: 0 })));
}

type Checked = Extract<ReturnType<typeof checkFetchedBody>, { facts: unknown }>;

/** Stores the checked body for the notice's local recipients through the one ingest path; false if it was not stored. */
async function store(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[], response: TwmResponse, checked: Checked): Promise<boolean> {
  const { relayedBy, headers } = checked;
  const identity = relayedBy ?? checked.facts.from;
  const users = [];
  for (const r of rows) {
    const user = await ctx.options.ingest.findRecipient(r.rcpt);
    if (user) users.push(user);
  }
  const senderDomain = n.senderDomain;
  try {
    if (users.length > 0) {
      await ctx.options.ingest.ingest({
        channel: 'twm',
        origin: 'remote',
        envelopeFrom: n.from,
        recipients: users,
        raw: response.body,
        headers,
        prepend: `Received: from ${response.endpoint.replace(/[^\x21-\x7e]/g, '?')}\r\n\tby ${ctx.options.hostname} (twoway) with TWM id ${n.id};\r\n\t${formatRfc5322Date(ctx.now())}\r\n`,
        auth: { identity, alignedDomain: senderDomain, authenticatedDomains: [senderDomain] },
        // A list's or forwarder's message is decided as theirs, not the author's (7.6).
        ...(relayedBy === null ? {} : { relayedBy }),
        // Stored once per recipient even when a crash (or a takeover) makes us fetch it again.
        twmKey: `${senderDomain} ${n.id}`,
      });
    }
    return true;
  } catch (err) {
    if (err instanceof ReplyError && !err.temporary) {
      // The policy refused the message at ingest (it cannot for TWM today); nothing stored, nothing to report.
      ctx.log({ notice: n.id, from: n.from, reply: err.message }, 'twm message refused at ingest');
      await closed(ctx, n, rows, err.message);
      return false;
    }
    await retry(ctx, n, rows, err instanceof Error ? err.message : String(err));
    return false;
  }
}

/**
 * Sends one receipt for `rows` (all of one receipt status: a `delivered`
 * batch just stored, or rows already `receipt-due`) and writes its outcome.
 */
async function sendReceipt(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[]): Promise<void> {
  if (rows.length === 0) return;
  const from = ['scheduled', 'receipt-due'] as const;
  const results: ReceiptEntry[] = rows.map((r) => ({
    rcpt: r.rcpt,
    status: r.receipt ?? 'failed',
    ...(r.receipt === 'failed' || r.receipt === null ? { error: r.receiptError ?? 'size-mismatch' } : {}),
  }));
  const rcpts = rows.map((r) => r.rcpt);
  let response: TwmResponse;
  try {
    response = await ctx.options.client.post(domainOf(n.from), TWM_PATHS.receipt, TWM_MEDIA_TYPES.receipt, receiptToJson({ id: n.id, results }), ctx.options.key(domainOf(rcpts[0]!)), {
      maxResponse: 4096,
    });
  } catch (err) {
    report(ctx, n, reportType(err, 'receipt'));
    if (err instanceof TwmUnreachableError && err.permanent) {
      ctx.log({ notice: n.id, from: n.from, problem: err.message }, 'twm receipt target is no TWM endpoint; abandoned');
      return write(ctx, n, rows, from, { state: 'closed', receipt: rows[0]!.receipt, receiptError: rows[0]!.receiptError, nextAttemptAt: null, lastError: err.message });
    }
    return retryReceipt(ctx, n, rows, err instanceof TwmUnreachableError ? err.message : String(err));
  }
  const { receipt: status, receiptError } = rows[0]!;
  if (response.status === 204 || response.status === 200 || response.status === 404) {
    return write(ctx, n, rows, from, { state: 'closed', receipt: status, receiptError, nextAttemptAt: null });
  }
  const problem = describeProblem(response);
  report(ctx, n, `receipt-${problem.code ?? `http-${response.status}`}`);
  if (problem.temporary) return retryReceipt(ctx, n, rows, problem.text);
  ctx.log({ notice: n.id, from: n.from, problem: problem.text }, 'twm receipt refused; abandoned');
  await write(ctx, n, rows, from, { state: 'closed', receipt: status, receiptError, nextAttemptAt: null, lastError: problem.text });
}

/** A receipt that did not get through: `receipt-due` with backoff, until `expires` + 24 h. */
async function retryReceipt(ctx: StepContext, n: TwmInNotice, rows: TwmInRecipient[], error: string): Promise<void> {
  const at = ctx.now();
  const deadline = new Date(n.expiresAt.getTime() + TWM_RECEIPT_GRACE_MS);
  const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;
  const next = nextAttempt(attempts, at, ctx.options.backoff);
  const { receipt: status, receiptError } = rows[0]!;
  const giveUp = next > deadline || attempts >= MAX_CONTACT_ATTEMPTS;
  const change =
    giveUp
      ? { state: 'closed' as const, receipt: status, receiptError, nextAttemptAt: null, lastError: error, attempts }
      : { state: 'receipt-due' as const, receipt: status, receiptError, nextAttemptAt: next, lastError: error, attempts };
  await write(ctx, n, rows, ['scheduled', 'receipt-due'], change, at);
  if (giveUp) ctx.log({ notice: n.id, from: n.from, error }, 'twm receipt given up');
}
