/**
 * SPF, DKIM and DMARC through mailauth, with every lookup going through the
 * project's resolver. Returns the Authentication-Results header to prepend
 * and the one fact the policy needs: is the From: domain authenticated?
 *
 * "Authenticated" is DMARC alignment (RFC 7489 section 3.1), computed here
 * rather than taken from the DMARC result, because a domain without a DMARC
 * record still proves itself with an aligned DKIM signature or SPF pass; the
 * DMARC record only says what to do on failure.
 *
 * Alignment is checked for one identity only: the From: address the caller
 * parsed (mail/from.ts), which is the very value the policy then matches
 * against the address book. mailauth reads the From: field with its own,
 * lenient parser; when its reading is not exactly that one address, the
 * parsers disagree about the author and nothing is aligned
 * (`identity: null`), so the message cannot be "allowed".
 */
import { domainOf, normalisedAddress, organizationalDomain } from '../core/address.ts';
import { toResolveFunction } from '../dns/resolver.ts';
import type { DnsResolver } from '../dns/types.ts';
import { runMailauth, type MailauthSummary } from './mailauth-run.ts';
import type { PreparedBody } from '../core/prepared-body.ts';

export interface AuthInput {
  raw: Buffer;
  ip: string;
  helo: string;
  /** MAIL FROM, null for the null reverse-path. */
  envelopeFrom: string | null;
  /**
   * The author identity the policy will match (MessageFacts.from, parsed
   * once by the caller), or null when the message has none.
   */
  from: string | null;
  /** Our hostname, the authserv-id of the Authentication-Results header. */
  mta: string;
  /**
   * The header lines the caller will prepend before the authentication headers (Received:).
   * With it an authenticator that runs elsewhere (the worker pool) also answers `stored`.
   */
  prefix?: string;
}

export interface AuthOutcome {
  /** Authentication-Results (and Received-SPF) header lines, CRLF-terminated. */
  headers: string;
  spf: { result: string; domain: string | null };
  /** Domains with a passing DKIM signature. */
  dkimDomains: string[];
  dmarc: { result: string; policy: string | null };
  /**
   * The identity alignment was checked for: `input.from` itself when
   * mailauth read the same single address, else null. Callers hand it to
   * ingest, which refuses to treat a message as authenticated unless it is
   * the policy's From: address.
   */
  identity: string | null;
  /** Why `identity` is null although `input.from` was not (the parsers disagree). */
  fromProblem: string | null;
  /** The domain of `identity`. */
  fromDomain: string | null;
  /** An aligned SPF or DKIM pass for the From: domain. */
  fromAuthenticated: boolean;
  /** The authenticated domain that aligned with the domain of `identity` (DKIM preferred), if any. */
  alignedDomain: string | null;
  /** Every domain that authenticated this message (DKIM d=, SPF MAIL FROM domain). */
  authenticatedDomains: string[];
}

/**
 * The message bytes, when the authenticator moved `input.raw` elsewhere (a
 * worker thread) and back: `input.raw` is then empty and these are the
 * bytes to keep. Absent when `input.raw` was left alone.
 */
/** `stored` and `mimeDepth` (mail/mime-depth.ts, of the message itself): work done off the event loop, with `prefix`. */
export type AuthResult = AuthOutcome & { raw?: Buffer; stored?: StoredForm; mimeDepth?: number };

/**
 * The bytes to store when ingest prepends exactly `prepend` (AuthInput.prefix and the
 * authentication headers) to the message, with their SHA-256 and structure columns, computed
 * by the authentication worker off the event loop (core/prepared-body.ts). Ingest uses them
 * only for that very prepend (IngestMessage.stored), and computes them itself otherwise.
 */
export interface StoredForm extends PreparedBody {
  prepend: string;
}

export type Authenticator = (input: AuthInput) => Promise<AuthResult>;

/**
 * Authentication in the calling thread. The server runs it in a worker pool
 * instead (auth-pool.ts), with a time budget; this is for tests and tools.
 */
export function createAuthenticator(resolver: DnsResolver): Authenticator {
  const resolve = toResolveFunction(resolver);
  return async (input) => outcomeOf(await runMailauth(input.raw, input, resolve), input);
}

/**
 * mailauth's findings judged for the one identity the policy will match:
 * pure, and the same whichever thread ran mailauth.
 */
export function outcomeOf(result: MailauthSummary, input: Pick<AuthInput, 'from'>): AuthOutcome {
  const theirs = result.headerFrom;
  const agree = input.from !== null && theirs.length === 1 && normalisedAddress(theirs[0]!) === input.from;
  const identity = agree ? input.from : null;
  const fromProblem =
    input.from === null || agree ? null : `mailauth reads the From: field as ${JSON.stringify(theirs.slice(0, 3))}, not ${JSON.stringify(input.from)}`;
  const fromDomain = identity === null ? null : domainOf(identity);
  const dkimDomains = result.dkimDomains;
  const spfDomain = result.spf.domain;
  const authenticatedDomains = [...new Set([...dkimDomains, ...(spfDomain ? [spfDomain] : [])])];
  const alignedDomain =
    fromDomain === null ? null : (authenticatedDomains.find((d) => organizationalDomain(d) === organizationalDomain(fromDomain)) ?? null);
  return {
    headers: result.headers,
    spf: result.spf,
    dkimDomains,
    dmarc: result.dmarc ?? { result: 'none', policy: null },
    identity,
    fromProblem,
    fromDomain,
    fromAuthenticated: alignedDomain !== null,
    alignedDomain,
    authenticatedDomains,
  };
}
