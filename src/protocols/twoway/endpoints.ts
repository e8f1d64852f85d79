/**
 * The three TWM/1 endpoints (docs/protocol.md 4.1): for each, the step-9
 * entitlement rules of 5.4 and what happens once a request has verified
 * (6.1's clock checks and 8.1's size limit for notices, 7.4's expiry for
 * fetches, 6.4's receipt grace), before the hook that holds the state.
 */
import { parseFetchRequest, parseNotice, parseReceipt, recipientDomain } from '../../core/twm-schema.ts';
import { listIdUnder } from '../../core/screener-keys.ts';
import { CLOCK_SKEW } from '../../core/twm-signature.ts';
import {
  TWM_MEDIA_TYPES,
  TWM_RECEIPT_GRACE_MS,
  twmError,
  type FetchRequest,
  type Notice,
  type NoticeResult,
  type Receipt,
} from '../../core/twm-types.ts';
import type { OutboundNoticeFacts, TwmNonce, TwmServerHooks, TwmServerOptions, TwmSigner } from './types.ts';
import { rememberNonce, type EndpointRules } from './verify.ts';

const ID = /^[A-Za-z0-9_-]{22,43}$/;
const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

export interface EndpointContext {
  hooks: TwmServerHooks;
  options: TwmServerOptions;
  now: Date;
}

export function noticeRules(ctx: EndpointContext): EndpointRules<Notice, void> {
  return {
    mediaType: TWM_MEDIA_TYPES.notice,
    parse: parseNotice,
    // The notice hook remembers the nonce with the notice, in one write (acceptNotice).
    deferNonce: ctx.hooks.noticeWithNonce !== undefined,
    async entitle(notice, signerDomain) {
      if (domainOf(notice.from) !== signerDomain) throw twmError('wrong-domain', 'the signer domain is not the domain of from');
      // A list signs as itself (7.6): its List-Id is its own domain's, or the signature vouches for nothing.
      if (notice.listId !== undefined && !listIdUnder(notice.listId.toLowerCase(), signerDomain)) {
        throw twmError('wrong-domain', 'list_id is not the signer domain or under it');
      }
      const domain = recipientDomain(notice.to);
      if (domain === undefined) throw twmError('invalid-request', 'the to addresses are not all at one domain');
      if (!ctx.hooks.servesDomain(domain)) throw twmError('not-served', 'this server does not serve the recipient domain');
    },
  };
}

/**
 * After verification (8.1): the clock checks of 6.1, the size limit, then the hook.
 * `contentSha256`: the content's SHA-256 as verification step 7 computed it (not hashed again).
 */
export async function acceptNotice(ctx: EndpointContext, notice: Notice, signer: TwmSigner, contentSha256: Buffer, nonce: TwmNonce): Promise<NoticeResult> {
  const withNonce = ctx.hooks.noticeWithNonce;
  if (!withNonce) {
    noticeChecks(ctx, notice);
    return ctx.hooks.notice(notice, signer, contentSha256.toString('hex'));
  }
  try {
    noticeChecks(ctx, notice);
  } catch (err) {
    // Step 12 (deferred) comes first: a replayed request is `replay`, whatever else is wrong with it.
    await rememberNonce(ctx.hooks, nonce);
    throw err;
  }
  return withNonce.call(ctx.hooks, notice, signer, contentSha256.toString('hex'), nonce);
}

function noticeChecks(ctx: EndpointContext, notice: Notice): void {
  const now = ctx.now.getTime();
  if (notice.created.getTime() > now + CLOCK_SKEW * 1000) throw twmError('invalid-request', 'created is in the future');
  if (notice.expires.getTime() <= now) throw twmError('expired', 'the notice has expired');
  if (notice.size > ctx.options.maxMessageSize) {
    throw twmError('message-too-large', `the message is larger than this server accepts`, { maxSize: ctx.options.maxMessageSize });
  }
}

/**
 * Fetch and receipt share step 9: the notice is ours, the signer is its
 * recipient domain, every address is one of its recipients. The facts go on
 * to the checks after verification.
 */
async function outboundEntitlement(ctx: EndpointContext, id: string, rcpts: string[], signerDomain: string): Promise<OutboundNoticeFacts> {
  const facts = await ctx.hooks.outboundNotice(id);
  if (!facts) throw twmError('unknown-id', 'no such notice');
  if (facts.domain !== signerDomain) throw twmError('wrong-domain', 'the signer domain is not the recipient domain of this notice');
  const listed = new Set(facts.to);
  if (!rcpts.every((r) => listed.has(r.toLowerCase()))) throw twmError('not-listed', 'a recipient is not among the notice recipients');
  return facts;
}

export function fetchRules(ctx: EndpointContext, id: string): EndpointRules<FetchRequest, OutboundNoticeFacts> {
  return {
    mediaType: TWM_MEDIA_TYPES.fetch,
    parse(json) {
      // The id in the path is part of the request to validate (step 8).
      if (!ID.test(id)) throw twmError('invalid-request', 'the notice id in the path is not valid');
      return parseFetchRequest(json);
    },
    entitle: (request, signerDomain) => outboundEntitlement(ctx, id, request.rcpt, signerDomain),
  };
}

/** After verification (7.4): no body after `expires`. */
export async function serveFetch(ctx: EndpointContext, id: string, facts: OutboundNoticeFacts, request: FetchRequest, signer: TwmSigner): Promise<Buffer> {
  if (ctx.now.getTime() > facts.expires.getTime()) throw twmError('expired', 'the notice has expired');
  return ctx.hooks.fetch(id, request, signer);
}

export function receiptRules(ctx: EndpointContext): EndpointRules<Receipt, OutboundNoticeFacts> {
  return {
    mediaType: TWM_MEDIA_TYPES.receipt,
    parse: parseReceipt,
    entitle: (receipt, signerDomain) =>
      outboundEntitlement(
        ctx,
        receipt.id,
        [...receipt.results.map((r) => r.rcpt), ...(receipt.ignored ?? [])],
        signerDomain,
      ),
  };
}

/** After verification (6.4): receipts are taken until `expires` + 24 h, then the notice is as good as forgotten. */
export async function recordReceipt(ctx: EndpointContext, facts: OutboundNoticeFacts, receipt: Receipt, signer: TwmSigner): Promise<void> {
  if (ctx.now.getTime() > facts.expires.getTime() + TWM_RECEIPT_GRACE_MS) throw twmError('unknown-id', 'no such notice');
  await ctx.hooks.receipt(receipt, signer);
}
