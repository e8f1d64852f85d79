/** Reading mail: mailboxes, message listings, one message's metadata or raw text. */
import { z } from 'zod';
import { notFound } from '../../core/errors.ts';
import type { Services } from '../../services/index.ts';
import { messageView as toMessageView, parseMailbox } from '../../services/mail.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { decimal, items, mailboxView, messageView } from './schemas.ts';

const MAX_PAGE = 500;

/**
 * Message ids in paths. Anything that is not a positive decimal id is
 * answered 404 like an id that does not exist (or is another user's), not
 * 400: the path names a resource, and every "no such message" looks alike.
 */
const idParams = z.strictObject({ id: z.string() });
function messageId(raw: string): number {
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw notFound(`No message ${raw}`);
  return Number(raw);
}

export function mailRoutes(services: Services): ApiRoute[] {
  const { mail } = services;
  return [
    defineRoute({
      method: 'GET',
      url: '/api/mailboxes',
      tag: 'mail',
      auth: true,
      summary: 'List mailboxes with message counts',
      response: { status: 200, description: 'The mailboxes', schema: items(mailboxView) },
      async handler({ user }) {
        const boxes = await mail.mailboxes(user.id);
        return { items: boxes.map((b) => ({ name: b.name, count: b.count, uidValidity: b.uidValidity, uidNext: b.uidNext })) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/messages',
      tag: 'mail',
      auth: true,
      summary: 'List messages (metadata only)',
      description: 'Without `mailbox`, lists every mailbox.',
      query: z.strictObject({
        // Case-insensitive like IMAP's INBOX; the service names the valid ones when it rejects.
        mailbox: z.string().min(1).max(64).optional().meta({ examples: ['INBOX', 'Screener'] }),
        limit: decimal(1, MAX_PAGE).optional().meta({ description: `Page size, 1-${MAX_PAGE}, default 50` }),
        offset: decimal(0, Number.MAX_SAFE_INTEGER).optional().meta({ description: 'Messages to skip, default 0' }),
      }),
      response: { status: 200, description: 'One page of messages', schema: items(messageView) },
      async handler({ user, query }) {
        const mailbox = query.mailbox === undefined ? undefined : parseMailbox(query.mailbox);
        const list = await mail.list(user.id, mailbox, { limit: query.limit ?? 50, offset: query.offset ?? 0 });
        return { items: list.map(toMessageView) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/messages/:id',
      tag: 'mail',
      auth: true,
      summary: "One message's metadata",
      params: idParams,
      response: { status: 200, description: 'The message', schema: messageView },
      notFound: 'No such message (or not yours)',
      async handler({ user, params }) {
        const { raw: _raw, ...summary } = await mail.get(user.id, messageId(params.id));
        return toMessageView(summary);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/messages/:id/raw',
      tag: 'mail',
      auth: true,
      summary: 'The message as received (RFC 5322)',
      params: idParams,
      response: { status: 200, description: 'The raw message', schema: z.instanceof(Buffer), mediaType: 'message/rfc822' },
      notFound: 'No such message (or not yours)',
      async handler({ user, params }) {
        return (await mail.get(user.id, messageId(params.id))).raw;
      },
    }),
  ];
}
