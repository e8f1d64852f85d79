/**
 * What rate limits count by (docs/protocol.md 12.2 and 12.7). Before
 * verification, a client address: IPv4 addresses one by one, IPv6 by /64
 * (one host or customer typically holds a whole /64, so counting single
 * IPv6 addresses would hand it 2^64 buckets). After verification, a signer
 * domain by its organizational domain (the Public Suffix List, through
 * tldts, as DMARC alignment does), so that a wildcard of subdomains shares
 * one bucket.
 */
import { organizationalDomain } from './address.ts';

/** The bucket of a client address: IPv4 itself (also when IPv4-mapped), IPv6 its /64 as `xxxx:xxxx:xxxx:xxxx::/64`. */
export function clientRateKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  // Not IPv6 (an IPv4 address, or something unexpected): counted as it is.
  if (!ip.includes(':')) return ip;
  return `${expandIPv6(ip).slice(0, 4).join(':')}::/64`;
}

/**
 * Signer domains seen lately and their organizational domains: the Public Suffix List lookup
 * (tldts) ran for every notice, and a busy sender's notices all name the same domain. Only
 * verified signers get here, so the map holds domains that own a published key; it is cleared
 * when full.
 */
const ORG_DOMAINS = new Map<string, string>();
const MAX_ORG_DOMAINS = 10_000;

/** The bucket of a verified signer domain: its organizational domain. */
export function signerRateKey(domain: string): string {
  let org = ORG_DOMAINS.get(domain);
  if (org === undefined) {
    org = organizationalDomain(domain);
    if (ORG_DOMAINS.size >= MAX_ORG_DOMAINS) ORG_DOMAINS.clear();
    ORG_DOMAINS.set(domain, org);
  }
  return org;
}

/** The eight groups of an IPv6 address, without leading zeros (a zone id dropped). */
function expandIPv6(ip: string): string[] {
  const bare = ip.split('%')[0]!.toLowerCase();
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms other than the mapped one) counts as two groups.
  const groups = (parts: string[]) =>
    parts.flatMap((p) => (p.includes('.') ? ipv4Groups(p) : [p]));
  const l = groups(left);
  const r = groups(right);
  const middle = tail === undefined ? [] : Array.from({ length: 8 - l.length - r.length }, () => '0');
  return [...l, ...middle, ...r].map((g) => (Number.parseInt(g, 16) || 0).toString(16));
}

function ipv4Groups(v4: string): string[] {
  const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}
