/**
 * The TWM/1 profile of HTTP Message Signatures (RFC 9421) with Content-Digest
 * (RFC 9530): docs/protocol.md section 5. Pure functions over octets and
 * header strings, no I/O; the endpoint (protocols/twoway/server.ts) runs
 * them in the order of section 5.4 and the client signs with signRequest.
 *
 * Each verifier function owns one step of section 5.4 and throws the
 * `twmError` that step answers with, so the order lives in one place (the
 * server) and the refusal codes in this one.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { signEd25519, verifyEd25519 } from './ed25519.ts';
import { twmError } from './twm-types.ts';
import { timePrefix } from './time-ordered-id.ts';
import { splitKeyId } from './twm-key-record.ts';
import {
  isInnerList,
  parseDictionary,
  serializeBareItem,
  serializeInnerList,
  StructuredFieldError,
  type InnerList,
} from './structured-fields.ts';

export { splitKeyId } from './twm-key-record.ts';

export const TWM_LABEL = 'twm';
export const TWM_TAG = 'twm1';
/** The covered components every TWM signature lists, in this order (5.1). */
export const TWM_COMPONENTS = ['@method', '@target-uri', '@authority', 'content-digest', 'content-type'] as const;
export const MAX_SIGNATURE_LIFETIME = 600;
export const DEFAULT_SIGNATURE_LIFETIME = 300;
/** Allowed clock skew in both directions (5.4 step 6). */
export const CLOCK_SKEW = 300;
const NONCE = /^[A-Za-z0-9_-]{22,43}$/;

/** `sha-256=:<base64>:` over the content (RFC 9530). */
export function contentDigest(body: Buffer): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
}

export interface SignInput {
  method: string;
  /** `https://<authority><path>`, as sent. */
  targetUri: string;
  /** `<target>[:<port>]`, port omitted for 443. */
  authority: string;
  contentType: string;
  body: Buffer;
  /** `<selector>._twoway.<domain>`, lower-case. */
  keyid: string;
  privateKey: KeyObject;
  created: Date;
  expiresInSec?: number;
  nonce?: string;
}

/** Nonces drawn per refill of the pool. */
const NONCES_PER_POOL = 256;
let noncePool = Buffer.alloc(0);
let nonceAt = 0;

/**
 * A request's nonce: the time (core/time-ordered-id.ts: the verifier's
 * nonce record is keyed by it, and in time order its inserts and its expiry
 * sweep share B-tree pages), then 16 random octets, base64url (5.1: at least
 * 128 random bits). The octets come from a pool filled by one randomBytes
 * call per 256 nonces, as node:crypto's randomUUID does: a synchronous
 * randomBytes call of 16 octets cost more than the rest of the nonce's work
 * (a profile of bench/twm-delivery.ts). Each octet is used once.
 */
export function freshNonce(now = Date.now()): string {
  if (nonceAt >= noncePool.length) {
    noncePool = randomBytes(16 * NONCES_PER_POOL);
    nonceAt = 0;
  }
  const nonce = timePrefix(now) + noncePool.toString('base64url', nonceAt, nonceAt + 16);
  nonceAt += 16;
  return nonce;
}

/** The three header fields that sign a request; the caller also sends `Content-Type: contentType`. */
export function signRequest(input: SignInput): { 'content-digest': string; 'signature-input': string; signature: string } {
  const created = Math.floor(input.created.getTime() / 1000);
  const lifetime = input.expiresInSec ?? DEFAULT_SIGNATURE_LIFETIME;
  const nonce = input.nonce ?? freshNonce();
  const digest = contentDigest(input.body);
  const components = TWM_COMPONENTS.map((c) => serializeBareItem(c)).join(' ');
  const params =
    `(${components});created=${created};expires=${created + lifetime}` +
    `;nonce=${serializeBareItem(nonce)};keyid=${serializeBareItem(input.keyid)};alg="ed25519";tag="${TWM_TAG}"`;
  const values: Record<(typeof TWM_COMPONENTS)[number], string> = {
    '@method': input.method,
    '@target-uri': input.targetUri,
    '@authority': input.authority.toLowerCase(),
    'content-digest': digest,
    'content-type': input.contentType,
  };
  const base = baseOf(TWM_COMPONENTS.map((c) => [c, values[c]]), params);
  const signature = signEd25519(Buffer.from(base, 'utf8'), input.privateKey);
  return {
    'content-digest': digest,
    'signature-input': `${TWM_LABEL}=${params}`,
    signature: `${TWM_LABEL}=:${signature.toString('base64')}:`,
  };
}

/** RFC 9421 section 2.5: one line per component, then `@signature-params`, LF-separated, no final LF. */
function baseOf(lines: Array<[string, string]>, signatureParams: string): string {
  return [...lines.map(([name, value]) => `${serializeBareItem(name)}: ${value}`), `"@signature-params": ${signatureParams}`].join('\n');
}

export interface TwmSignatureParams {
  created: number;
  expires: number;
  nonce: string;
  keyid: string;
  alg: 'ed25519';
  tag: typeof TWM_TAG;
}

/** A `twm` signature that passed steps 4 and 5. */
export interface TwmSignature {
  /** Covered component identifiers, in the signer's order (the five, plus any extras). */
  components: string[];
  params: TwmSignatureParams;
  /** The signer's selector and domain (lower-case), from `keyid`. */
  selector: string;
  domain: string;
  /** The `@signature-params` value, re-serialised from the parsed Signature-Input (RFC 9421 2.3). */
  signatureParams: string;
  signature: Buffer;
}

/**
 * Steps 4 and 5: finds the `twm` signature and checks its parameters and
 * components (5.1). Throws `unsigned` when either field or the label is
 * missing, `bad-signature` for anything malformed.
 */
export function parseTwmSignature(signatureInput: string | undefined, signature: string | undefined): TwmSignature {
  if (signatureInput === undefined || signature === undefined) throw twmError('unsigned', 'no twm signature');
  const canonical = canonicalSignature(signatureInput, signature);
  if (canonical) return canonical;
  let input: ReturnType<typeof parseDictionary>;
  let sig: ReturnType<typeof parseDictionary>;
  try {
    input = parseDictionary(signatureInput);
    sig = parseDictionary(signature);
  } catch (err) {
    if (err instanceof StructuredFieldError) throw twmError('bad-signature', 'Signature-Input or Signature is not a valid structured field');
    throw err;
  }
  const inputMember = input.members.get(TWM_LABEL);
  const sigMember = sig.members.get(TWM_LABEL);
  if (inputMember === undefined || sigMember === undefined) throw twmError('unsigned', 'no twm signature');
  if (input.duplicates.has(TWM_LABEL) || sig.duplicates.has(TWM_LABEL)) throw twmError('bad-signature', 'more than one twm signature');
  if (!isInnerList(inputMember)) throw twmError('bad-signature', 'Signature-Input twm is not an inner list');
  if (isInnerList(sigMember) || !Buffer.isBuffer(sigMember.value)) throw twmError('bad-signature', 'Signature twm is not a byte sequence');

  const components = checkComponents(inputMember);
  const params = checkParams(inputMember);
  const keyid = splitKeyId(params.keyid);
  if (!keyid) throw twmError('bad-signature', 'keyid is not <selector>._twoway.<domain>');
  return {
    components,
    params,
    selector: keyid.selector,
    domain: keyid.domain,
    signatureParams: serializeInnerList(inputMember),
    signature: sigMember.value,
  };
}

/**
 * The fields as signRequest writes them (one `twm` member each, the five components, the six
 * parameters in its order, no escapes, no leading zeros): what nearly every request carries. The
 * general parser reads such fields into exactly what is read here, and serialises the inner
 * list back to the very text matched (so `signatureParams` is that text); twm-signature.test.ts
 * holds the two paths equal. Parsing them generically (a Map per parameter list, an object per
 * item, the inner list serialised again) was a visible share of a stranger's notice at the
 * recipient (bench/twm-stranger-cost.ts).
 */
const CANONICAL_INPUT =
  /^twm=(\("@method" "@target-uri" "@authority" "content-digest" "content-type"\);created=([1-9][0-9]{0,14});expires=([1-9][0-9]{0,14});nonce="([A-Za-z0-9_-]{22,43})";keyid="([a-z0-9_.-]{1,253})";alg="ed25519";tag="twm1")$/;
const CANONICAL_SIGNATURE = /^twm=:([A-Za-z0-9+/]*={0,2}):$/;
const CANONICAL_COMPONENTS: readonly string[] = TWM_COMPONENTS;

/** The canonical form's signature, or undefined for anything else (the general parser decides). */
function canonicalSignature(signatureInput: string, signature: string): TwmSignature | undefined {
  const input = CANONICAL_INPUT.exec(signatureInput);
  if (!input) return undefined;
  const sig = CANONICAL_SIGNATURE.exec(signature);
  if (!sig) return undefined;
  const created = Number(input[2]);
  const expires = Number(input[3]);
  // checkParams's lifetime rule, the one parameter check the pattern leaves.
  if (expires - created <= 0 || expires - created > MAX_SIGNATURE_LIFETIME) {
    throw twmError('bad-signature', `expires - created must be 1 to ${MAX_SIGNATURE_LIFETIME} s`);
  }
  const keyid = input[5]!;
  const split = splitKeyId(keyid);
  if (!split) throw twmError('bad-signature', 'keyid is not <selector>._twoway.<domain>');
  return {
    components: [...CANONICAL_COMPONENTS],
    params: { created, expires, nonce: input[4]!, keyid, alg: 'ed25519', tag: TWM_TAG },
    selector: split.selector,
    domain: split.domain,
    signatureParams: input[1]!,
    signature: Buffer.from(sig[1]!, 'base64'),
  };
}

/** Components we can rebuild: the five, the other request-derived ones, header fields by name. */
const DERIVED = new Set(['@method', '@target-uri', '@authority', '@scheme', '@request-target', '@path', '@query']);
const FIELD_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;

function checkComponents(list: InnerList): string[] {
  const names: string[] = [];
  for (const item of list.items) {
    if (typeof item.value !== 'string') throw twmError('bad-signature', 'a covered component is not a string');
    // Component parameters (;sf, ;key, ;req, ;bs, ;name) are not part of the profile.
    if (item.params.size > 0) throw twmError('bad-signature', `unsupported parameters on component ${item.value}`);
    const name = item.value;
    if (!(DERIVED.has(name) || FIELD_NAME.test(name))) throw twmError('bad-signature', `unsupported component ${name}`);
    if (names.includes(name)) throw twmError('bad-signature', `component ${name} listed twice`);
    names.push(name);
  }
  for (const required of TWM_COMPONENTS) {
    if (!names.includes(required)) throw twmError('bad-signature', `component ${required} not covered`);
  }
  // 5.1 fixes the order of the five ("in this order"); extras may go anywhere.
  const order = names.filter((n) => (TWM_COMPONENTS as readonly string[]).includes(n));
  if (order.some((n, i) => n !== TWM_COMPONENTS[i])) throw twmError('bad-signature', 'covered components out of order');
  return names;
}

function checkParams(list: InnerList): TwmSignatureParams {
  const p = list.params;
  const int = (name: string): number => {
    const v = p.get(name);
    if (typeof v !== 'number' || !Number.isInteger(v)) throw twmError('bad-signature', `parameter ${name} missing or not an integer`);
    return v;
  };
  const str = (name: string): string => {
    const v = p.get(name);
    if (typeof v !== 'string') throw twmError('bad-signature', `parameter ${name} missing or not a string`);
    return v;
  };
  const created = int('created');
  const expires = int('expires');
  const nonce = str('nonce');
  const keyid = str('keyid');
  const alg = str('alg');
  const tag = str('tag');
  if (alg !== 'ed25519') throw twmError('bad-signature', `unsupported alg ${alg}`);
  if (tag !== TWM_TAG) throw twmError('bad-signature', `tag is not ${TWM_TAG}`);
  if (created <= 0 || expires - created <= 0 || expires - created > MAX_SIGNATURE_LIFETIME) {
    throw twmError('bad-signature', `expires - created must be 1 to ${MAX_SIGNATURE_LIFETIME} s`);
  }
  if (!NONCE.test(nonce)) throw twmError('bad-signature', 'nonce is not base64url of 128 to 256 bits');
  return { created, expires, nonce, keyid, alg, tag };
}

/** Step 6: `created <= now + 300` and `expires >= now - 300`. */
export function checkSignatureTime(params: Pick<TwmSignatureParams, 'created' | 'expires'>, now: Date): void {
  const t = now.getTime() / 1000;
  if (params.created > t + CLOCK_SKEW || params.expires < t - CLOCK_SKEW) {
    throw twmError('stale-signature', 'signature created or expires outside the accepted clock window');
  }
}

/** `sha-256=:<base64>:` alone: parsed by parseDictionary into the same one byte-sequence member. */
const PLAIN_DIGEST = /^sha-256=:([A-Za-z0-9+/]*={0,2}):$/;

/**
 * Step 7: the `sha-256` member of Content-Digest matches the content.
 * Other algorithms are ignored (5.2); a field without `sha-256`, or one
 * that does not parse, is a mismatch. Returns the content's SHA-256 (the
 * digest just checked), so callers that store it do not hash the body again.
 */
export function checkContentDigest(header: string | undefined, body: Buffer): Buffer {
  let digest: Buffer | undefined;
  // The field as contentDigest writes it (one member) needs no dictionary parser; anything else does.
  const plain = header === undefined ? null : PLAIN_DIGEST.exec(header);
  if (plain) digest = Buffer.from(plain[1]!, 'base64');
  else if (header !== undefined) {
    try {
      const member = parseDictionary(header).members.get('sha-256');
      if (member && !isInnerList(member) && Buffer.isBuffer(member.value)) digest = member.value;
    } catch (err) {
      if (!(err instanceof StructuredFieldError)) throw err;
    }
  }
  if (!digest) throw twmError('digest-mismatch', 'no sha-256 Content-Digest');
  const actual = createHash('sha256').update(body).digest();
  if (!digest.equals(actual)) throw twmError('digest-mismatch', 'Content-Digest does not match the content');
  return actual;
}

/** What the signature base needs from a request, as the verifier reconstructs it (5.1). */
export interface SignedRequestView {
  method: string;
  /** `https://<authority><path and query as received>`. */
  targetUri: string;
  /** One of this server's own authorities, lower-case. */
  authority: string;
  /** A header field's value (multiple lines combined with ", "), undefined if absent; `name` is lower-case. */
  header(name: string): string | undefined;
}

/** RFC 9421 section 2.5; throws `bad-signature` when a covered header field is absent. */
export function signatureBase(sig: Pick<TwmSignature, 'components' | 'signatureParams'>, request: SignedRequestView): string {
  if (isProfileOnly(sig.components)) {
    // The five of the profile and nothing else (every request signRequest makes): the lines written out.
    const digest = request.header('content-digest');
    if (digest === undefined) throw twmError('bad-signature', 'covered header field content-digest is absent');
    const type = request.header('content-type');
    if (type === undefined) throw twmError('bad-signature', 'covered header field content-type is absent');
    return (
      `"@method": ${request.method}\n"@target-uri": ${request.targetUri}\n"@authority": ${request.authority}\n` +
      `"content-digest": ${digest.trim()}\n"content-type": ${type.trim()}\n"@signature-params": ${sig.signatureParams}`
    );
  }
  // Parsed only for the derived components that need it: the profile's five do not.
  let parsed: URL | undefined;
  const url = (): URL => (parsed ??= new URL(request.targetUri));
  const lines = sig.components.map((name): [string, string] => {
    switch (name) {
      case '@method':
        return [name, request.method];
      case '@target-uri':
        return [name, request.targetUri];
      case '@authority':
        return [name, request.authority];
      case '@scheme':
        return [name, url().protocol.slice(0, -1)];
      case '@request-target':
        return [name, url().pathname + url().search];
      case '@path':
        return [name, url().pathname];
      case '@query':
        return [name, url().search === '' ? '?' : url().search];
      default: {
        const value = request.header(name);
        if (value === undefined) throw twmError('bad-signature', `covered header field ${name} is absent`);
        // RFC 9421 2.1: leading and trailing whitespace removed.
        return [name, value.trim()];
      }
    }
  });
  return baseOf(lines, sig.signatureParams);
}

/** The covered components are TWM_COMPONENTS exactly, in their order. */
function isProfileOnly(components: readonly string[]): boolean {
  if (components.length !== TWM_COMPONENTS.length) return false;
  for (let i = 0; i < components.length; i++) if (components[i] !== TWM_COMPONENTS[i]) return false;
  return true;
}

/** Step 11: Ed25519 over the signature base. */
export function verifySignature(sig: TwmSignature, request: SignedRequestView, publicKey: KeyObject): boolean {
  if (sig.signature.length !== 64) return false;
  return verifyEd25519(Buffer.from(signatureBase(sig, request), 'utf8'), sig.signature, publicKey);
}
