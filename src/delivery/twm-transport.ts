/**
 * The sending side of Two-Way Mail as a queue transport (docs/protocol.md
 * 7.1-7.3): for a recipient domain that publishes `_twoway._tcp`, the queue
 * worker hands the recipients here instead of to SMTP.
 *
 * Design note.
 * - The first attempt stores the notice's exact octets, with the message
 *   (the queue's copy, kept until the notice is done with it:
 *   store/twm-body-sharing.ts), before anything is sent
 *   (TwmOutboundRepository.create); every retry sends
 *   the same octets under a fresh signature, so the notice id is stable.
 * - The queue keeps doing what it does for SMTP: retries with backoff, give
 *   up, DSNs for recipients that fail at this stage (unknown recipient, a
 *   permanent refusal). A recipient whose notice was answered `accepted` or
 *   `pending` leaves the queue as "delivered to the TWM outbox"; from then on
 *   its state lives in the TWM tables (fetch, receipt, expiry:
 *   endpoints/twm/outbox.ts), which is what `twoway sent` shows.
 * - Bcc recipients (on no To:/Cc: field) get a notice of their own.
 * - A mailing list's or forwarder's message goes as the list or forwarder:
 *   `from` is its Sender:, `list_id` its List-Id when under that domain
 *   (mail/relay.ts, docs/protocol.md 7.6).
 * - Once a notice may have reached the recipient's server, that message
 *   goes to those recipients by TWM only (remote-transport.ts checks for an
 *   existing notice before looking at DNS).
 */
import { createHash, randomBytes } from 'node:crypto';
import { domainOf } from '../core/address.ts';
import { timePrefix } from '../core/time-ordered-id.ts';
import { parseAddressList } from '../core/mime-structure.ts';
import { replies, type Reply } from '../core/reply.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS, TWM_PURPOSES, type Notice, type NoticeResult } from '../core/twm-types.ts';
import { noticeToJson, parseNoticeResult } from '../core/twm-schema.ts';
import { decodeWords, messageFacts, parseHeaders, type Header } from '../mail/headers.ts';
import { twmIdentity } from '../mail/relay.ts';
import type { TwmOutboundRepository, TwmOutNotice } from '../store/types.ts';
import { reportType, TwmUnreachableError, type TwmClient, type TwmResponse, type TwmSigningKey } from './twm-client-types.ts';
import { describeProblem } from './twm-problem.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

export interface TwmTransportOptions {
  outbox: TwmOutboundRepository;
  client: TwmClient;
  /** The signing key for one of our domains. */
  key: (domain: string) => TwmSigningKey;
  /** How long a notice can be fetched (`expires` - `created`). */
  expiryMs: number;
  /** Domains we sign for (lower-case): a notice's `from` is an address of one of them. */
  domains: string[];
  now?: () => Date;
  /** Counts an outcome against the recipient domain for its failure report (docs/protocol.md 6.6). */
  report?: (domain: string, resultType: string) => void;
}

/**
 * A notice arriving less than this before its expiry leaves no time to fetch
 * (7.3): an hour, or a tenth of a short lifetime (labs and tests).
 */
const lastNoticeMargin = (expiryMs: number) => Math.min(3_600_000, expiryMs / 10);
const MAX_RESULT_SIZE = 65_536;

export function createTwmTransport(options: TwmTransportOptions): Transport {
  const ctx: TransportContext = { options, now: options.now ?? (() => new Date()), ours: new Set(options.domains) };
  return { deliver: (domain, message, recipients) => deliver(ctx, domain, message, recipients) };
}

interface TransportContext {
  options: TwmTransportOptions;
  now: () => Date;
  /** The domains we sign for. */
  ours: Set<string>;
}

/** The queue's call: each recipient goes with the notice that lists it, new notices stored first. */
async function deliver(ctx: TransportContext, domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
  // Each recipient goes with the notice that already lists it (a retry sends the same octets),
  // the others with one new notice: the queue may hand a message's recipients over in parts.
  const existing = message.routed?.notices ?? (await ctx.options.outbox.findByMessage(message.messageId, domain));
  const byRecipient = new Map<string, TwmOutNotice>();
  for (const n of existing) for (const r of n.recipients) byRecipient.set(r.recipient, n);
  const fresh = recipients.filter((r) => !byRecipient.has(r.toLowerCase()));
  // Bcc recipients (on no To:/Cc: field) get a notice each, so that no notice lists a Bcc
  // recipient to another recipient's server, or another to them (7.1, 13).
  // Parsed once for the recipients' split and every new notice's facts (10 KB of header per message is not free).
  const headers = fresh.length > 0 ? (message.routed?.headers ?? parseHeaders(message.raw)) : [];
  const visible = visibleRecipients(headers);
  const shown = fresh.filter((r) => visible.has(r.toLowerCase()));
  const parts = [...(shown.length > 0 ? [shown] : []), ...fresh.filter((r) => !visible.has(r.toLowerCase())).map((r) => [r])];
  for (const part of parts) {
    const n = await newNotice(ctx, domain, message, headers, part);
    for (const r of part) byRecipient.set(r.toLowerCase(), n);
  }
  const groups = new Map<string, { notice: TwmOutNotice; recipients: string[] }>();
  for (const r of recipients) {
    const n = byRecipient.get(r.toLowerCase())!;
    const g = groups.get(n.id) ?? { notice: n, recipients: [] };
    g.recipients.push(r);
    groups.set(n.id, g);
  }
  const results = new Map<string, RecipientResult>();
  for (const g of groups.values()) for (const r of await notify(ctx, domain, g.notice, g.recipients)) results.set(r.recipient, r);
  return recipients.map((r) => results.get(r)!);
}

/** A new notice (stored before anything is sent) for recipients no notice of this message lists yet. */
async function newNotice(ctx: TransportContext, domain: string, message: OutboundMessage, headers: Header[], recipients: string[]): Promise<TwmOutNotice> {
  const { options, now } = ctx;
  const facts = messageFacts(headers);
  // The router sends only such messages here (remote-transport.ts).
  const identity = twmIdentity(headers, (d) => ctx.ours.has(d));
  if (!identity) throw new Error('a TWM message needs one From: or Sender: address of a domain we sign for');
  const created = new Date(Math.floor(now().getTime() / 1000) * 1000);
  // The registered TWM-Purpose becomes the notice's purpose (9.1).
  const purpose = facts.ownershipConfirmation ? TWM_PURPOSES[0] : undefined;
  const intro = introOf(headers);
  const listId = identity.listId;
  const notice: Notice = {
    id: noticeId(now()),
    from: identity.from,
    // Carried as the envelope has them (RFC 5321 2.4: only the recipient's host may fold a local
    // part's case); compared and stored lower-cased (docs/protocol.md 1.3).
    to: [...recipients],
    size: message.raw.length,
    sha256: createHash('sha256').update(message.raw).digest('hex'),
    created,
    expires: new Date(created.getTime() + options.expiryMs),
    ...(intro ? { intro } : {}),
    ...(purpose ? { purpose } : {}),
    ...(listId ? { listId } : {}),
  };
  return options.outbox.create({
    notice: {
      id: notice.id,
      messageId: message.messageId,
      sender: message.sender ?? '',
      domain,
      content: noticeToJson(notice),
      subject: facts.subject,
      messageIdHeader: facts.messageId,
      size: notice.size,
      sha256: notice.sha256,
      createdAt: notice.created,
      expiresAt: notice.expires,
    },
    recipients: notice.to.map((r) => r.toLowerCase()),
    raw: message.raw,
    // The queue's octets: the notice serves them from there rather than storing a second copy.
    bodyInQueue: true,
  });
}

/**
 * A notice id: the creation time (core/time-ordered-id.ts: the id leads the
 * keys of the message's rows on both sides, and in time order they share
 * B-tree pages), then 128 bits from the CSPRNG (docs/protocol.md 6.1).
 */
export function noticeId(at: Date): string {
  return timePrefix(at.getTime()) + randomBytes(16).toString('base64url');
}

/** Sends one stored notice and maps its answer to the queue's per-recipient results. */
async function notify(ctx: TransportContext, domain: string, notice: TwmOutNotice, ours: string[]): Promise<RecipientResult[]> {
  const { options, now } = ctx;
  const results = new Map<string, RecipientResult>();
  const all = (status: RecipientResult['status'], reply: Reply, remoteMta?: string) =>
    ours.map((recipient) => ({ recipient, status, reply, ...(remoteMta ? { remoteMta } : {}) }));
  if (now().getTime() >= notice.expiresAt.getTime() - lastNoticeMargin(options.expiryMs)) {
    const reason = 'could not notify the recipient server before the notice expired';
    await options.outbox.transition(notice.id, ours, { from: ['queued'], to: 'failed', reason }, now());
    return all('failed', replies.twmExpiredUnsent(reason));
  }
  const from = (JSON.parse(notice.content.toString('utf8')) as { from: string }).from;
  let response: TwmResponse;
  try {
    response = await options.client.post(domain, TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, notice.content, options.key(domainOf(from)), { maxResponse: MAX_RESULT_SIZE });
  } catch (err) {
    const text = err instanceof TwmUnreachableError ? err.message : err instanceof Error ? err.message : String(err);
    options.report?.(domain, reportType(err, 'notice'));
    return all('deferred', replies.twmUnreachable(text));
  }
  if (response.status !== 200) {
    const problem = describeProblem(response);
    options.report?.(domain, problem.code ?? `notice-http-${response.status}`);
    if (problem.temporary) return all('deferred', replies.twmRefusedTemporarily(problem.text), response.endpoint);
    await options.outbox.transition(notice.id, ours, { from: ['queued'], to: 'failed', reason: problem.text }, now());
    return all('failed', replies.twmRefused(problem.text), response.endpoint);
  }
  let result: NoticeResult;
  try {
    result = parseNoticeResult(JSON.parse(response.body.toString('utf8')));
  } catch {
    options.report?.(domain, 'notice-unreadable-result');
    return all('deferred', replies.twmUnreadableResult(response.endpoint));
  }
  options.report?.(domain, 'success');
  const byRcpt = new Map(result.results.map((e) => [e.rcpt.toLowerCase(), e]));
  const remoteMta = response.endpoint;
  // One conditional write per status for the whole notice, not one per recipient.
  const moves = new Map<'unknown' | 'accepted' | 'pending', string[]>();
  for (const r of ours) {
    const entry = byRcpt.get(r.toLowerCase());
    if (!entry || entry.status === 'deferred') {
      const wait = entry?.retryAfter ? ` (retry after ${entry.retryAfter} s)` : '';
      results.set(r, { recipient: r, status: 'deferred', reply: replies.twmDeferred(wait), remoteMta });
    } else if (entry.status === 'unknown') {
      results.set(r, { recipient: r, status: 'failed', reply: replies.twmUnknownRecipient(r), remoteMta });
    } else {
      results.set(r, { recipient: r, status: 'delivered', reply: replies.twmAccepted(notice.id, entry.status), remoteMta });
    }
    if (entry && entry.status !== 'deferred') moves.set(entry.status, [...(moves.get(entry.status) ?? []), r]);
  }
  await recordAnswers(ctx, notice.id, moves);
  return ours.map((r) => results.get(r)!);
}

/** The notice's answer in the outbox: unknown recipients `failed`, the others `accepted` or `pending`. */
async function recordAnswers(ctx: TransportContext, id: string, moves: Map<'unknown' | 'accepted' | 'pending', string[]>): Promise<void> {
  const at = ctx.now();
  for (const [status, given] of moves) {
    // The rows hold the addresses lower-cased (newNotice); the queue hands them over as written.
    const rcpts = given.map((r) => r.toLowerCase());
    if (status === 'unknown') await ctx.options.outbox.transition(id, rcpts, { from: ['queued', 'accepted', 'pending'], to: 'failed', reason: 'unknown recipient' }, at);
    else await ctx.options.outbox.transition(id, rcpts, { from: ['queued'], to: status }, at);
  }
}

/** The addresses of the message's To: and Cc: fields, lower-cased (for comparison only). */
function visibleRecipients(headers: Header[]): Set<string> {
  const out = new Set<string>();
  for (const h of headers) {
    if (h.name !== 'to' && h.name !== 'cc') continue;
    for (const a of parseAddressList(h.value) ?? []) if (a.mailbox && a.host) out.add(`${a.mailbox}@${a.host}`.toLowerCase());
  }
  return out;
}

/**
 * The sending user's introduction for strangers: the `TWM-Intro` header
 * field, unfolded, its RFC 2047 encoded words decoded (a mail client, and
 * the web app's composer, encode non-ASCII text so), as plain text within
 * section 6.1's rules (controls and bidirectional overrides removed, at most
 * 1000 characters).
 */
export function introOf(headers: Header[]): string | undefined {
  const field = headers.find((h) => h.name === 'twm-intro');
  if (!field) return undefined;
  const text = decodeWords(field.value)
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
  return text ? [...text].slice(0, 1000).join('') : undefined;
}
