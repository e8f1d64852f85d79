/**
 * The Screener: contact requests from senders not in the address book, and
 * the bulk actions on them. Every action answers per sender what it did.
 */
import { z } from 'zod';
import type { Services } from '../../services/index.ts';
import { requestView as toRequestView } from '../../services/screener.ts';
import { defineRoute, type ApiRoute } from './route.ts';
import { actionResult, items, requestView, senderList } from './schemas.ts';

const status = z.enum(['pending', 'approved', 'denied']);
const results = items(actionResult);
const unknownSender = 'A sender has no contact request (nothing is changed then)';

export function requestRoutes(services: Services): ApiRoute[] {
  return [
    ...approvalRoutes(services),
    ...refusalRoutes(services),
  ];
}

/** The Screener: list, approve, approve a domain. */
function approvalRoutes(services: Services): ApiRoute[] {
  const { screener } = services;
  return [
    defineRoute({
      method: 'GET',
      url: '/api/requests',
      tag: 'screener',
      auth: true,
      summary: 'List contact requests',
      query: z.strictObject({ status: status.optional(), likelySpam: z.enum(['true', 'false']).optional() }),
      response: { status: 200, description: 'The requests, optionally of one status', schema: items(requestView) },
      async handler({ user, query }) {
        return { items: (await screener.list(user.id, query.status, { likelySpam: query.likelySpam === 'true' })).map(toRequestView) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/requests/approve',
      tag: 'screener',
      auth: true,
      summary: 'Approve senders',
      description: 'Adds each sender to the address book and moves their held messages to INBOX.',
      body: { kind: 'json', schema: z.strictObject({ senders: senderList }) },
      response: { status: 200, description: 'Per sender, how many messages were released', schema: results },
      notFound: unknownSender,
      async handler({ user, body }) {
        return { items: await screener.approve(user.id, body.senders) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/requests/approve-domain',
      tag: 'screener',
      auth: true,
      summary: 'Approve a whole domain',
      description: 'Allows @domain and releases the held messages of every sender of that domain.',
      body: {
        kind: 'json',
        schema: z.strictObject({ domain: z.string().min(1).max(255).meta({ examples: ['example.net', '@example.net'] }) }),
      },
      response: { status: 200, description: 'Per sender of the domain, how many messages were released', schema: results },
      async handler({ user, body }) {
        return { items: await screener.approveDomain(user.id, body.domain) };
      },
    }),
  ];
}

/** The Screener: deny, mark as spam, clear. */
function refusalRoutes(services: Services): ApiRoute[] {
  const { screener } = services;
  return [
    defineRoute({
      method: 'POST',
      url: '/api/requests/deny',
      tag: 'screener',
      auth: true,
      summary: 'Deny senders',
      description: 'Blocks each sender and deletes their held messages.',
      body: { kind: 'json', schema: z.strictObject({ senders: senderList }) },
      response: { status: 200, description: 'Per sender, how many messages were dropped', schema: results },
      notFound: unknownSender,
      async handler({ user, body }) {
        return { items: await screener.deny(user.id, body.senders) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/requests/spam',
      tag: 'screener',
      auth: true,
      summary: 'Mark senders as spam',
      description:
        'Moves each sender\'s held messages to Junk and denies the request (without blocking the address). With [spam] learning on, each message teaches the spam filter spam, once.',
      body: { kind: 'json', schema: z.strictObject({ senders: senderList }) },
      response: { status: 200, description: 'Per sender, how many messages went to Junk', schema: results },
      notFound: unknownSender,
      async handler({ user, body }) {
        return { items: await screener.spam(user.id, body.senders) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/requests/clear',
      tag: 'screener',
      auth: true,
      summary: 'Clear requests without deciding',
      description: 'Forgets the requests and deletes the held messages; the senders are neither allowed nor blocked.',
      body: { kind: 'json', schema: z.strictObject({ senders: senderList }) },
      response: { status: 200, description: 'Per sender, how many messages were dropped', schema: results },
      notFound: unknownSender,
      async handler({ user, body }) {
        return { items: await screener.clear(user.id, body.senders) };
      },
    }),
  ];
}
