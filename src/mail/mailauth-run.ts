/**
 * The one call into mailauth's `authenticate()`, reduced to the plain facts
 * the server uses. It runs in an authentication worker thread
 * (auth-pool.ts, auth-worker.ts), and in the main thread only where no pool
 * exists (createAuthenticator: tests, tools); the reduction is the same
 * code in both, so both paths give the same outcome.
 *
 * The summary is plain data (strings, arrays, null) on purpose: it crosses a
 * worker boundary by structured clone, and mailauth's own result holds
 * objects that need not survive that.
 */
import type { DNSResolver } from 'mailauth';
import { domainToASCII } from 'node:url';
import { headerEnd } from '../core/mime-structure.ts';
import type { ResolveFunction } from '../dns/types.ts';
import { mailauthWithKeyCache } from './dkim-key-cache.ts';

// mailauth with its DKIM key lookup replaced by one that parses each key record once (dkim-key-cache.ts).
const { authenticate } = mailauthWithKeyCache();

/** What mailauth needs besides the message bytes. */
export interface MailauthParams {
  ip: string;
  helo: string;
  /** MAIL FROM, null for the null reverse-path. */
  envelopeFrom: string | null;
  /** Our hostname, the authserv-id of the Authentication-Results header. */
  mta: string;
}

export interface MailauthSummary {
  /** Authentication-Results (and Received-SPF) header lines, CRLF-terminated. */
  headers: string;
  /** The addresses mailauth read in the From: field. */
  headerFrom: string[];
  /** Domains with a passing DKIM signature, lower case, in signature order. */
  dkimDomains: string[];
  spf: { result: string; domain: string | null };
  dmarc: { result: string; policy: string | null } | null;
}

export async function runMailauth(raw: Buffer, params: MailauthParams, resolve: ResolveFunction): Promise<MailauthSummary> {
  const result = await authenticate(withoutUnsignedBody(raw), {
    ip: params.ip,
    helo: params.helo,
    // SPF asks DNS for the MAIL FROM domain: an IDN must be asked as its A-label (RFC 5890).
    sender: params.envelopeFrom === null ? '' : asciiDomain(params.envelopeFrom),
    mta: params.mta,
    // mailauth types its resolver as returning string[] | string[][], too narrow for MX/SRV objects it also asks for.
    resolver: resolve as DNSResolver,
    disableArc: true,
    disableBimi: true,
  });
  const dkimDomains = (result.dkim.results ?? [])
    .filter((r) => r.status?.result === 'pass' && typeof r.signingDomain === 'string')
    .map((r) => (r.signingDomain as string).toLowerCase());
  const spfResult = result.spf ? String(result.spf.status?.result ?? 'none') : 'none';
  const spfDomain = result.spf && spfResult === 'pass' ? String(result.spf.domain ?? '').toLowerCase() || null : null;
  return {
    headers: result.headers,
    headerFrom: headerFromOf(result.dkim.headerFrom),
    dkimDomains,
    spf: { result: spfResult, domain: spfDomain },
    dmarc: result.dmarc
      ? { result: String(result.dmarc.status?.result ?? 'none'), policy: (result.dmarc.policy as string | undefined) ?? null }
      : null,
  };
}

/**
 * The message as mailauth needs it: a message with no DKIM-Signature field gets its header block
 * alone. mailauth's DKIM pass streams the whole body through its line-break and header-end scans
 * (a quarter of its CPU for a 10 KB message) even when no signature will hash it, and nothing
 * else it does reads the body (ARC and BIMI are off). The cut is where mailauth itself ends the
 * header block: the first line feed followed by an empty line. The test is deliberately coarse:
 * "dkim-signature" anywhere in the header block, in any case, keeps the whole message.
 */
export function withoutUnsignedBody(raw: Buffer): Buffer {
  const { bodyStart } = headerEnd(raw, 0, raw.length);
  // No body, or a message that starts with its empty line (mailauth does not end its headers there).
  if (bodyStart >= raw.length || bodyStart <= 2) return raw;
  const head = raw.subarray(0, bodyStart);
  return head.toString('latin1').toLowerCase().includes('dkim-signature') ? raw : head;
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
