/**
 * Sending and the outbound queue, for the authenticated user: submit a
 * message (the same checks as SMTP submission), and see, retry or delete
 * the queue entries of mail the user sent. Other users' entries look like
 * entries that do not exist.
 */
import { z } from 'zod';
import { notFound, ReplyError } from '../../core/errors.ts';
import type { Services } from '../../services/index.ts';
import { queueEntryView as toView } from '../../services/queue.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { dateTime, items, noContent } from './schemas.ts';

const STATES = ['scheduled', 'deferred', 'delivered', 'failed'] as const;

const queueEntry = z.object({
  id: z.number().int(),
  messageId: z.string(),
  sender: z.string(),
  recipient: z.string(),
  createdAt: dateTime,
  state: z.enum(STATES),
  attempts: z.number().int().nullable(),
  nextAttemptAt: dateTime.nullable(),
  detail: z.string().nullable().meta({ description: 'The last reply or error' }),
});

const idParams = z.strictObject({ id: z.string() });
function entryId(raw: string): number {
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw notFound(`No queue entry ${raw}`);
  return Number(raw);
}

export function queueRoutes(services: Services): ApiRoute[] {
  const { queue, outbound } = services;
  return [
    defineRoute({
      method: 'POST',
      url: '/api/send',
      tag: 'sending',
      auth: true,
      summary: 'Send a message',
      description:
        'Submits an RFC 5322 message as the authenticated user, with the checks of SMTP submission: the From: address must be the user\'s (403), Date and Message-ID are added when missing, the message is DKIM-signed, queued, copied to Sent, and its recipients become contacts.',
      body: {
        kind: 'json',
        schema: z.strictObject({
          to: z.array(z.string().min(3).max(320)).min(1).max(1000),
          message: z.string().min(1).meta({ description: 'The message (headers and body), CRLF or LF line endings' }),
        }),
      },
      response: { status: 202, description: 'Queued', schema: z.object({ messageId: z.string(), recipients: z.array(z.string()) }) },
      async handler({ user, body }) {
        if (!outbound) throw new ReplyError(451, '4.3.0', 'Sending is not configured on this server', { status: 503 });
        const raw = Buffer.from(body.message.replace(/\r?\n/g, '\r\n'), 'utf8');
        return outbound.submit({ user, envelopeFrom: user.address, recipients: body.to, raw });
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/queue',
      tag: 'sending',
      auth: true,
      summary: 'Queue entries of mail you sent, one per recipient',
      query: z.strictObject({ state: z.enum(STATES).optional() }),
      response: { status: 200, description: 'The entries', schema: items(queueEntry) },
      async handler({ user, query }) {
        const entries = await queue.list({ owner: user, ...(query.state ? { state: query.state } : {}) });
        return { items: entries.map(toView) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/queue/:id/retry',
      tag: 'sending',
      auth: true,
      summary: 'Retry a scheduled or deferred entry now',
      params: idParams,
      response: { status: 200, description: 'The entry, scheduled for now', schema: queueEntry },
      notFound: 'No such entry (or not yours), or it is already delivered or failed',
      async handler({ user, params }) {
        return toView(await queue.retry(entryId(params.id), user));
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/queue/flush',
      tag: 'sending',
      auth: true,
      summary: 'Retry every scheduled and deferred entry of mail you sent, now',
      response: { status: 200, description: 'The entries, scheduled for now', schema: items(queueEntry) },
      async handler({ user }) {
        return { items: (await queue.flush(user)).map(toView) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/queue/:id',
      tag: 'sending',
      auth: true,
      summary: 'Delete an entry: its recipient will not get the message',
      params: idParams,
      response: { status: 204, description: 'Deleted', schema: noContent },
      notFound: 'No such entry (or not yours)',
      async handler({ user, params }) {
        await queue.remove(entryId(params.id), user);
      },
    }),
  ];
}
