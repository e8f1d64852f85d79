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
import { authenticate, type DNSResolver } from 'mailauth';
import { domainToASCII } from 'node:url';
import { domainOf, normalisedAddress, organizationalDomain } from '../core/address.ts';
import { toResolveFunction } from '../dns/resolver.ts';
import type { DnsResolver } from '../dns/types.ts';

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

export type Authenticator = (input: AuthInput) => Promise<AuthOutcome>;

export function createAuthenticator(resolver: DnsResolver): Authenticator {
  // mailauth types its resolver as returning string[] | string[][], too narrow for MX/SRV objects it also asks for.
  const resolve = toResolveFunction(resolver) as DNSResolver;
  return async (input) => {
    const result = await authenticate(input.raw, {
      ip: input.ip,
      helo: input.helo,
      // SPF asks DNS for the MAIL FROM domain: an IDN must be asked as its A-label (RFC 5890).
      sender: input.envelopeFrom === null ? '' : asciiDomain(input.envelopeFrom),
      mta: input.mta,
      resolver: resolve,
      disableArc: true,
      disableBimi: true,
    });
    const theirs = headerFromOf(result.dkim.headerFrom);
    const agree = input.from !== null && theirs.length === 1 && normalisedAddress(theirs[0]!) === input.from;
    const identity = agree ? input.from : null;
    const fromProblem =
      input.from === null || agree ? null : `mailauth reads the From: field as ${JSON.stringify(theirs.slice(0, 3))}, not ${JSON.stringify(input.from)}`;
    const fromDomain = identity === null ? null : domainOf(identity);
    const dkimDomains = (result.dkim.results ?? [])
      .filter((r) => r.status?.result === 'pass' && typeof r.signingDomain === 'string')
      .map((r) => (r.signingDomain as string).toLowerCase());
    const spfResult = result.spf ? String(result.spf.status?.result ?? 'none') : 'none';
    const spfDomain = result.spf && spfResult === 'pass' ? String(result.spf.domain ?? '').toLowerCase() || null : null;
    const authenticatedDomains = [...new Set([...dkimDomains, ...(spfDomain ? [spfDomain] : [])])];
    const alignedDomain =
      fromDomain === null ? null : (authenticatedDomains.find((d) => organizationalDomain(d) === organizationalDomain(fromDomain)) ?? null);
    return {
      headers: result.headers,
      spf: { result: spfResult, domain: spfDomain },
      dkimDomains,
      dmarc: result.dmarc
        ? { result: String(result.dmarc.status?.result ?? 'none'), policy: (result.dmarc.policy as string | undefined) ?? null }
        : { result: 'none', policy: null },
      identity,
      fromProblem,
      fromDomain,
      fromAuthenticated: alignedDomain !== null,
      alignedDomain,
      authenticatedDomains,
    };
  };
}

function headerFromOf(headerFrom: unknown): string[] {
  if (typeof headerFrom === 'string') return [headerFrom];
  return Array.isArray(headerFrom) ? headerFrom.filter((a): a is string => typeof a === 'string') : [];
}


/** `local@domain` with the domain as an A-label; unchanged when it is not an address or not convertible. */
export function asciiDomain(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const domain = address.slice(at + 1);
  if (/^[\x00-\x7f]*$/.test(domain)) return address;
  const ascii = domainToASCII(domain);
  return ascii === '' ? address : `${address.slice(0, at)}@${ascii}`;
}
