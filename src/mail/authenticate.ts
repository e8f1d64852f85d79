/**
 * SPF, DKIM and DMARC through mailauth, with every lookup going through the
 * project's resolver. Returns the Authentication-Results header to prepend
 * and the one fact the policy needs: is the From: domain authenticated?
 *
 * "Authenticated" is DMARC alignment (RFC 7489 section 3.1), computed here
 * rather than taken from the DMARC result, because a domain without a DMARC
 * record still proves itself with an aligned DKIM signature or SPF pass; the
 * DMARC record only says what to do on failure.
 */
import { authenticate, type DNSResolver } from 'mailauth';
import { organizationalDomain } from '../core/address.ts';
import { toResolveFunction } from '../dns/resolver.ts';
import type { DnsResolver } from '../dns/types.ts';

export interface AuthInput {
  raw: Buffer;
  ip: string;
  helo: string;
  /** MAIL FROM, null for the null reverse-path. */
  envelopeFrom: string | null;
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
  /** The From: domain, if there was exactly one From: address. */
  fromDomain: string | null;
  /** An aligned SPF or DKIM pass for the From: domain. */
  fromAuthenticated: boolean;
  /** The authenticated domain that aligned with the From: domain (DKIM preferred), if any. */
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
      sender: input.envelopeFrom ?? '',
      mta: input.mta,
      resolver: resolve,
      disableArc: true,
      disableBimi: true,
    });
    const fromDomain = typeof result.dkim.headerFrom === 'string' || Array.isArray(result.dkim.headerFrom)
      ? singleDomain(result.dkim.headerFrom)
      : null;
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
      fromDomain,
      fromAuthenticated: alignedDomain !== null,
      alignedDomain,
      authenticatedDomains,
    };
  };
}

function singleDomain(headerFrom: string | string[]): string | null {
  const list = Array.isArray(headerFrom) ? headerFrom : [headerFrom];
  if (list.length !== 1) return null;
  const at = list[0]!.lastIndexOf('@');
  return at > 0 ? list[0]!.slice(at + 1).toLowerCase() : null;
}
