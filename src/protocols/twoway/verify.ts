/**
 * Steps 3-12 of the verification procedure (docs/protocol.md 5.4), in that
 * order, for any of the three endpoints. Steps 1 and 2 run earlier, as
 * fastify hooks (server.ts, body.ts), because they must hold before the
 * content is read. Each step throws the refusal it answers with; nothing is
 * stored before step 12 except by the endpoint's own entitlement lookup
 * (which only reads).
 *
 * `@authority` and `@target-uri` come from this server's configured public
 * names (5.1), never from the request alone: the Host header only chooses
 * which configured authority to try first, so a request that reached us
 * through a proxy rewriting Host still verifies, and one signed for anyone
 * else's authority fails step 11 with `bad-signature`.
 */
import type { KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { decodeTwmJson } from '../../core/twm-schema.ts';
import {
  checkContentDigest,
  checkSignatureTime,
  CLOCK_SKEW,
  parseTwmSignature,
  verifySignature,
  type SignedRequestView,
  type TwmSignature,
} from '../../core/twm-signature.ts';
import { twmError } from '../../core/twm-types.ts';
import type { TwmNonce, TwmServerHooks, TwmSigner } from './types.ts';

export interface IncomingTwmRequest {
  method: string;
  /** Path and query exactly as received (the request-target). */
  target: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface VerifyContext {
  hooks: TwmServerHooks;
  /** Our own authorities, lower-case, port omitted for 443. */
  authorities: readonly string[];
  now: Date;
}

/** What one endpoint contributes to the procedure: T the document, E what entitlement found out. */
export interface EndpointRules<T, E> {
  mediaType: string;
  /** Step 8: the typed document, or `invalid-request`. */
  parse(json: unknown): T;
  /** Step 9: entitlement of the signer domain; reads state, never writes it, never queries DNS. */
  entitle(doc: T, signerDomain: string): Promise<E>;
  /**
   * Step 12 is the endpoint's (hooks.noticeWithNonce): the nonce comes back in
   * `nonce`, not yet remembered, and the endpoint remembers it before it answers.
   */
  deferNonce?: boolean;
}

export interface Verified<T, E> {
  doc: T;
  signer: TwmSigner;
  signature: TwmSignature;
  /** What step 9 looked up (the outbound notice for fetch and receipt), for the checks after verification. */
  entitlement: E;
  /** The content's SHA-256, as step 7 checked it (the notice path stores it: one hash per request). */
  contentSha256: Buffer;
  /** Step 12's nonce, remembered already unless the rules deferred it. */
  nonce: TwmNonce;
}

export async function verifyTwmRequest<T, E>(req: IncomingTwmRequest, ctx: VerifyContext, rules: EndpointRules<T, E>): Promise<Verified<T, E>> {
  // 3. Content-Type, parameters ignored.
  const contentType = headerOf(req.headers, 'content-type');
  const mediaType = contentType === rules.mediaType ? contentType : contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== rules.mediaType) throw twmError('unsupported-media-type', `Content-Type must be ${rules.mediaType}`);
  // 4, 5. A `twm` signature with the parameters and components of 5.1.
  const signature = parseTwmSignature(headerOf(req.headers, 'signature-input'), headerOf(req.headers, 'signature'));
  // 6. Clock window.
  checkSignatureTime(signature.params, ctx.now);
  // 7. Content-Digest over the octets received.
  const contentSha256 = checkContentDigest(headerOf(req.headers, 'content-digest'), req.body);
  // 8. JSON and schema.
  const doc = rules.parse(decodeTwmJson(req.body));
  // 9. Entitlement, before any DNS query.
  const entitlement = await rules.entitle(doc, signature.domain);
  // 10. The key (the only network traffic before verification: a TXT query).
  const keyid = signature.params.keyid;
  const key = await ctx.hooks.lookupKey(keyid);
  if (!key) throw twmError('unknown-key', `no usable key at ${keyid}`);
  // 11. Ed25519 over the signature base, for one of our authorities.
  if (!verifiesForUs(req, ctx.authorities, signature, key)) throw twmError('bad-signature', 'the signature does not verify for this server');
  // 12. The nonce, remembered until the signature can no longer pass step 6.
  const nonce: TwmNonce = { keyid, nonce: signature.params.nonce, until: new Date((signature.params.expires + CLOCK_SKEW) * 1000), created: new Date(signature.params.created * 1000) };
  if (!rules.deferNonce) await rememberNonce(ctx.hooks, nonce);
  return { doc, signer: { keyid, domain: signature.domain }, signature, entitlement, contentSha256, nonce };
}

/** Step 12: throws `replay` when the nonce was seen (or `stale-signature`, from the hook). */
export async function rememberNonce(hooks: Pick<TwmServerHooks, 'rememberNonce'>, n: TwmNonce): Promise<void> {
  if (!(await hooks.rememberNonce(n.keyid, n.nonce, n.until, n.created))) throw twmError('replay', 'this signature was used before');
}

/** A header as one string; repeated lines are joined with ", " as RFC 9110 5.3 combines them. */
export function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Host's authority in the form of 5.1: lower-case, no trailing dot, port 443 omitted. */
export function normaliseAuthority(host: string): string {
  const lower = host.trim().toLowerCase();
  const m = /^(.*?)\.?(?::(\d+))?$/.exec(lower);
  if (!m) return lower;
  const [, name = '', port] = m;
  return port === undefined || port === '443' ? name : `${name}:${port}`;
}

/**
 * Step 11 for our authorities, the one the Host header names first (the usual case: one
 * verification), then the others in their order.
 */
function verifiesForUs(req: IncomingTwmRequest, authorities: readonly string[], signature: TwmSignature, key: KeyObject): boolean {
  const host = req.headers.host === undefined ? undefined : hostAuthority(req.headers.host);
  const first = host !== undefined && authorities.includes(host) ? host : undefined;
  if (first !== undefined && verifySignature(signature, new RequestView(req, first), key)) return true;
  for (const authority of authorities) {
    if (authority !== first && verifySignature(signature, new RequestView(req, authority), key)) return true;
  }
  return false;
}

/** The last Host header normalised: a peer's requests all carry the same one. */
let lastHost = '';
let lastAuthority = '';
function hostAuthority(host: string): string {
  if (host !== lastHost) {
    lastAuthority = normaliseAuthority(host);
    lastHost = host;
  }
  return lastAuthority;
}

/** The request as the signature base sees it for one of our authorities (a class: no closures per request). */
class RequestView implements SignedRequestView {
  readonly method: string;
  readonly targetUri: string;
  constructor(
    private readonly req: IncomingTwmRequest,
    readonly authority: string,
  ) {
    this.method = req.method;
    // An absolute-form request-target (RFC 9112 3.2.2) carries its own scheme and host; only its path counts.
    const target = ABSOLUTE_FORM.test(req.target) ? pathAndQuery(req.target) : req.target;
    this.targetUri = `https://${authority}${target}`;
  }
  header(name: string): string | undefined {
    return headerOf(this.req.headers, name);
  }
}

const ABSOLUTE_FORM = /^https?:\/\//i;

function pathAndQuery(absolute: string): string {
  const url = new URL(absolute);
  return url.pathname + url.search;
}
