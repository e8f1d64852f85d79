/** What became of the mail the authenticated user sent, per recipient (SMTP queue and Two-Way Mail). */
import { z } from 'zod';
import type { Services } from '../../services/index.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { dateTime, items } from './schemas.ts';

const sentMessage = z.object({
  messageId: z.string(),
  subject: z.string().nullable(),
  createdAt: dateTime,
  recipients: z.array(
    z.object({
      recipient: z.string(),
      via: z.enum(['queue', 'twm']),
      status: z.string().meta({ description: 'queued, delivered, failed; for Two-Way Mail also notified, pending, declined, expired, "fetched, not confirmed"' }),
      detail: z.string().nullable(),
      noticeId: z.string().nullable(),
      updatedAt: dateTime.nullable(),
    }),
  ),
});

export function sentRoutes(services: Services): ApiRoute[] {
  const { sent } = services;
  return [
    defineRoute({
      method: 'GET',
      url: '/api/sent',
      tag: 'sending',
      auth: true,
      summary: 'Sent messages with the status of each recipient, newest first',
      query: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional() }),
      response: { status: 200, description: 'The messages', schema: items(sentMessage) },
      async handler({ user, query }) {
        return { items: await sent.list(user, query.limit ? { limit: query.limit } : {}) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/sent/:messageId',
      tag: 'sending',
      auth: true,
      summary: 'One sent message with the status of each recipient',
      params: z.strictObject({ messageId: z.string().min(1).max(200) }),
      response: { status: 200, description: 'The message', schema: sentMessage },
      notFound: 'No such message (or not yours)',
      async handler({ user, params }) {
        return sent.status(user, params.messageId);
      },
    }),
  ];
}
