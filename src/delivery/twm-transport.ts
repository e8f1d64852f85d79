/**
 * The sending side of Two-Way Mail as a queue transport (docs/protocol.md
 * 7.1-7.3): for a recipient domain that publishes `_twoway._tcp`, the queue
 * worker hands the recipients here instead of to SMTP.
 *
 * Design note.
 * - The first attempt stores the message and the notice's exact octets
 *   (TwmOutboundRepository.create) before anything is sent; every retry sends
 *   the same octets under a fresh signature, so the notice id is stable.
 * - The queue keeps doing what it does for SMTP: retries with backoff, give
 *   up, DSNs for recipients that fail at this stage (unknown recipient, a
 *   permanent refusal). A recipient whose notice was answered `accepted` or
 *   `pending` leaves the queue as "delivered to the TWM outbox"; from then on
 *   its state lives in the TWM tables (fetch, receipt, expiry: services/
 *   twm-outbox.ts), which is what `twoway sent` shows.
 * - Once a notice may have reached the recipient's server, that message
 *   goes to those recipients by TWM only (remote-transport.ts checks for an
 *   existing notice before looking at DNS).
 */
import { createHash, randomBytes } from 'node:crypto';
import { domainOf } from '../core/address.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS, TWM_PURPOSES, type Notice, type NoticeResult } from '../core/twm-types.ts';
import { noticeToJson, parseNoticeResult } from '../core/twm-schema.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { normaliseListId } from '../core/screener.ts';
import type { TwmOutboundRepository, TwmOutNotice } from '../store/types.ts';
import { TwmUnreachableError, type TwmClient, type TwmResponse, type TwmSigningKey } from './twm-client-types.ts';
import { describeProblem } from './twm-problem.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

export interface TwmTransportOptions {
  outbox: TwmOutboundRepository;
  client: TwmClient;
  /** The signing key for one of our domains. */
  key: (domain: string) => TwmSigningKey;
  /** How long a notice can be fetched (`expires` - `created`). */
  expiryMs: number;
  now?: () => Date;
}

/**
 * A notice arriving less than this before its expiry leaves no time to fetch
 * (7.3): an hour, or a tenth of a short lifetime (labs and tests).
 */
const lastNoticeMargin = (expiryMs: number) => Math.min(3_600_000, expiryMs / 10);
const MAX_RESULT_SIZE = 65_536;

export function createTwmTransport(options: TwmTransportOptions): Transport {
  const now = options.now ?? (() => new Date());

  async function noticeFor(domain: string, message: OutboundMessage, recipients: string[]): Promise<TwmOutNotice> {
    const existing = await options.outbox.findByMessage(message.messageId, domain);
    if (existing) return existing;
    const facts = messageFacts(parseHeaders(message.raw));
    if (!facts.from) throw new Error('a TWM message needs exactly one From: address');
    const created = new Date(Math.floor(now().getTime() / 1000) * 1000);
    const purpose = purposeOf(message.raw);
    const intro = introOf(message.raw);
    const listId = facts.listId ? normaliseListId(facts.listId) : null;
    const notice: Notice = {
      id: randomBytes(16).toString('base64url'),
      from: facts.from,
      to: recipients.map((r) => r.toLowerCase()),
      size: message.raw.length,
      sha256: createHash('sha256').update(message.raw).digest('hex'),
      created,
      expires: new Date(created.getTime() + options.expiryMs),
      ...(intro ? { intro } : {}),
      ...(purpose ? { purpose } : {}),
      ...(listId ? { listId } : {}),
    };
    const { notice: stored } = await options.outbox.create({
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
      recipients: notice.to,
      raw: message.raw,
    });
    return stored;
  }

  return {
    async deliver(domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
      const notice = await noticeFor(domain, message, recipients);
      const from = JSON.parse(notice.content.toString('utf8')) as { from: string; to: string[] };
      const listed = new Set(from.to);
      const results = new Map<string, RecipientResult>();
      const ours = recipients.filter((r) => listed.has(r.toLowerCase()));
      for (const r of recipients) {
        // Not in the stored notice (the queue split a message's recipients across polls): retried
        // until a later attempt; see docs/protocol.md 14.
        if (!listed.has(r.toLowerCase())) results.set(r, { recipient: r, status: 'deferred', reply: '451 4.3.0 TWM: recipient not in the stored notice' });
      }
      if (now().getTime() >= notice.expiresAt.getTime() - lastNoticeMargin(options.expiryMs)) {
        const reason = 'could not notify the recipient server before the notice expired';
        await options.outbox.transition(notice.id, ours, { from: ['queued'], to: 'failed', reason }, now());
        for (const r of ours) results.set(r, { recipient: r, status: 'failed', reply: `554 5.4.7 TWM: ${reason}` });
        return recipients.map((r) => results.get(r)!);
      }

      let response: TwmResponse;
      try {
        response = await options.client.post(domain, TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, notice.content, options.key(domainOf(from.from)), {
          maxResponse: MAX_RESULT_SIZE,
        });
      } catch (err) {
        const text = err instanceof TwmUnreachableError ? err.message : err instanceof Error ? err.message : String(err);
        for (const r of ours) results.set(r, { recipient: r, status: 'deferred', reply: `451 4.4.1 TWM: ${text}` });
        return recipients.map((r) => results.get(r)!);
      }

      if (response.status === 200) {
        let result: NoticeResult;
        try {
          result = parseNoticeResult(JSON.parse(response.body.toString('utf8')));
        } catch {
          for (const r of ours) results.set(r, { recipient: r, status: 'deferred', reply: `451 4.5.0 TWM: unreadable notice result from ${response.endpoint}` });
          return recipients.map((r) => results.get(r)!);
        }
        const byRcpt = new Map(result.results.map((e) => [e.rcpt.toLowerCase(), e]));
        const at = now();
        for (const r of ours) {
          const entry = byRcpt.get(r.toLowerCase());
          const remoteMta = response.endpoint;
          if (!entry || entry.status === 'deferred') {
            const wait = entry?.retryAfter ? ` (retry after ${entry.retryAfter} s)` : '';
            results.set(r, { recipient: r, status: 'deferred', reply: `451 4.2.0 TWM: recipient deferred${wait}`, remoteMta });
          } else if (entry.status === 'unknown') {
            await options.outbox.transition(notice.id, [r], { from: ['queued', 'accepted', 'pending'], to: 'failed', reason: 'unknown recipient' }, at);
            results.set(r, { recipient: r, status: 'failed', reply: `550 5.1.1 TWM: <${r}>: unknown recipient`, remoteMta });
          } else {
            await options.outbox.transition(notice.id, [r], { from: ['queued'], to: entry.status }, at);
            results.set(r, { recipient: r, status: 'delivered', reply: `250 2.0.0 TWM notice ${notice.id}: ${entry.status}`, remoteMta });
          }
        }
        return recipients.map((r) => results.get(r)!);
      }

      const problem = describeProblem(response);
      if (problem.temporary) {
        for (const r of ours) results.set(r, { recipient: r, status: 'deferred', reply: `451 4.0.0 TWM: ${problem.text}`, remoteMta: response.endpoint });
      } else {
        await options.outbox.transition(notice.id, ours, { from: ['queued'], to: 'failed', reason: problem.text }, now());
        for (const r of ours) results.set(r, { recipient: r, status: 'failed', reply: `550 5.0.0 TWM: ${problem.text}`, remoteMta: response.endpoint });
      }
      return recipients.map((r) => results.get(r)!);
    },
  };
}

/** The registered TWM-Purpose of the message, for the notice's `purpose` (9.1). */
function purposeOf(raw: Buffer): string | undefined {
  const facts = messageFacts(parseHeaders(raw));
  return facts.ownershipConfirmation ? TWM_PURPOSES[0] : undefined;
}

/**
 * The sending user's introduction for strangers: the `TWM-Intro` header
 * field, unfolded, as plain text within section 6.1's rules (controls and
 * bidirectional overrides removed, at most 1000 characters).
 */
export function introOf(raw: Buffer): string | undefined {
  const field = parseHeaders(raw).find((h) => h.name === 'twm-intro');
  if (!field) return undefined;
  const text = field.value
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
  return text ? [...text].slice(0, 1000).join('') : undefined;
}
