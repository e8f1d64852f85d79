/**
 * The address book as the allowlist. allow/block/remove go through the
 * contacts service, which writes vCards, so what the API does is what a
 * CardDAV client sees.
 */
import { z } from 'zod';
import { invalid, notFound } from '../../core/errors.ts';
import { parseContactCard } from '../../core/vcard/index-entries.ts';
import { DEFAULT_BOOK } from '../../services/contacts.ts';
import type { Services } from '../../services/index.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { contactView, dateTime, items, senderSpec } from './schemas.ts';
import { parseDuration } from '../../core/duration.ts';

/**
 * The card's own UID, or undefined (also for a card the parser rejects: the
 * service then reports the malformed line). Read before anything is written,
 * because the service keys a card by its own UID and would otherwise store it
 * under another name than the path the client PUT to.
 */
function cardUid(vcard: string): string | undefined {
  try {
    return parseContactCard(vcard).uid ?? undefined;
  } catch {
    return undefined;
  }
}

export function contactRoutes(services: Services): ApiRoute[] {
  return [
    ...allowlistRoutes(services),
    ...cardRoutes(services),
  ];
}

/** The address book as an allowlist: list, allow, block, remove. */
function allowlistRoutes(services: Services): ApiRoute[] {
  const { contacts } = services;
  return [
    defineRoute({
      method: 'GET',
      url: '/api/contacts',
      tag: 'contacts',
      auth: true,
      summary: 'List the address book',
      description: 'Every vCard with the policy entries (allowed or blocked addresses, domains, lists) it contributes.',
      response: { status: 200, description: 'The cards', schema: items(contactView) },
      async handler({ user }) {
        return { items: await contacts.list(user.id) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/contacts/allow',
      tag: 'contacts',
      auth: true,
      summary: 'Allow an address or a whole @domain',
      description: 'Lifts a block written by /api/contacts/block and adds a card unless one already allows the sender.',
      body: { kind: 'json', schema: z.strictObject({ sender: senderSpec }) },
      response: {
        status: 200,
        description: 'What changed',
        schema: z.object({ sender: z.string(), created: z.boolean(), unblocked: z.number().int() }),
      },
      async handler({ user, body }) {
        return { sender: body.sender, ...(await contacts.allow(user.id, body.sender)) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/contacts/block',
      tag: 'contacts',
      auth: true,
      summary: 'Block an address or a whole @domain',
      body: { kind: 'json', schema: z.strictObject({ sender: senderSpec }) },
      response: { status: 200, description: 'What changed', schema: z.object({ sender: z.string(), created: z.boolean() }) },
      async handler({ user, body }) {
        return { sender: body.sender, ...(await contacts.block(user.id, body.sender)) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/api/contacts/:sender',
      tag: 'contacts',
      auth: true,
      summary: 'Remove every card naming an address or @domain',
      description: 'The sender is URL-encoded in the path (e.g. %40example.net for @example.net).',
      params: z.strictObject({ sender: senderSpec }),
      response: { status: 200, description: 'UIDs of the removed cards', schema: z.object({ removed: z.array(z.string()) }) },
      notFound: 'No card names this sender',
      async handler({ user, params }) {
        const removed = await contacts.remove(user.id, params.sender);
        if (removed.length === 0) throw notFound(`No contact names ${params.sender}`);
        return { removed };
      },
    }),
  ];
}

/** Expected senders and whole cards. */
function cardRoutes(services: Services): ApiRoute[] {
  const { contacts } = services;
  return [
    defineRoute({
      method: 'POST',
      url: '/api/contacts/expect',
      tag: 'contacts',
      auth: true,
      summary: 'Expect an ownership confirmation from a domain',
      description:
        'Writes an expected-sender card (X-TWOWAY-EXPECT, purpose ownership-confirmation): a message from this domain or a subdomain (or from the declared sending domain `from`), with its From: domain authenticated (and marked `TWM-Purpose: ownership-confirmation` if `requireMarker`), reaches the INBOX in every mode until the entry expires or its uses run out. It does not make the sender a contact.',
      body: {
        kind: 'json',
        schema: z.strictObject({
          domain: z.string().min(1).max(253).meta({ examples: ['shop.example'] }),
          for: z
            .string()
            .regex(/^(?:\d+[smhdw])+$/i, 'Expected a duration such as 30m, 2h or 7d')
            .optional()
            .meta({ description: 'How long the entry lives (default 24h)', examples: ['2h'] }),
          uses: z.number().int().min(1).max(9999).optional().meta({ description: 'Messages it admits (default 1)' }),
          from: z.string().min(1).max(253).optional().meta({ description: 'A sending domain the site declared, also admitted', examples: ['mailer.example'] }),
          requireMarker: z.boolean().optional().meta({ description: 'Admit only messages marked TWM-Purpose: ownership-confirmation (default false)' }),
        }),
      },
      response: {
        status: 201,
        description: 'The card written',
        schema: z.object({ uid: z.string(), domain: z.string(), until: dateTime, uses: z.number().int().nullable() }),
      },
      async handler({ user, body }) {
        const forMs = parseDuration(body.for ?? '24h');
        if (forMs === null) throw invalid(`Bad duration "${body.for}"`);
        const card = await contacts.expect(user.id, body.domain, { forMs, uses: body.uses ?? 1, from: body.from, requireMarker: body.requireMarker });
        return { uid: card.uid, domain: card.domain, until: card.until, uses: card.uses };
      },
    }),
    defineRoute({
      method: 'PUT',
      url: '/api/contacts/cards/:uid',
      tag: 'contacts',
      auth: true,
      summary: 'Create or replace a vCard',
      description:
        'The body is a vCard 4 (RFC 6350), stored exactly as sent and indexed for the policy. Its UID property, if any, must equal the UID in the path. A malformed card is rejected with 400 naming the line.',
      params: z.strictObject({ uid: z.string().min(1).max(255).regex(/^[^\s/]+$/, 'Expected a UID without spaces or slashes') }),
      body: { kind: 'vcard', schema: z.string().min(1) },
      response: { status: 200, description: 'The stored card', schema: contactView },
      async handler({ user, params, body }) {
        const own = cardUid(body);
        if (own !== undefined && own !== params.uid) throw invalid(`The card's UID "${own}" differs from the UID in the path "${params.uid}"`);
        return contacts.put(user.id, DEFAULT_BOOK, body, params.uid);
      },
    }),
  ];
}
