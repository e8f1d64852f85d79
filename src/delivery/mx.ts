/**
 * Where to deliver mail for a domain (RFC 5321 section 5.1, RFC 7505).
 *
 * The answer is a union so the transport never has to interpret DNS errors:
 * - `hosts`: mail exchangers in the order to try them, each with its
 *   addresses (A first, then AAAA);
 * - `permanent`: the domain cannot receive mail (null MX, NXDOMAIN, no MX and
 *   no address records): every recipient fails now, retrying will not help;
 * - `temporary`: DNS trouble (SERVFAIL, timeout, refused) or MX hosts without
 *   addresses: every recipient is deferred and the queue tries again later.
 *
 * `reason` names the domain and the problem in words; `enhanced` is the
 * RFC 3463 code a DSN reports for it.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { MxRecord } from 'node:dns';
import type { DnsResolver } from '../dns/types.ts';

export interface MailHost {
  /** The exchange name, lower-case, no trailing dot (the TLS server name to present). */
  name: string;
  preference: number;
  /** IPv4 addresses first, then IPv6, as the resolver returned them. */
  addresses: string[];
}

export type Destinations =
  | { kind: 'hosts'; hosts: MailHost[] }
  | { kind: 'permanent'; reason: string; enhanced: string }
  | { kind: 'temporary'; reason: string; enhanced: string };

/** node:dns codes that are an answer ("no such name", "no such record"), not a failure to get one. */
const ANSWERED = new Set(['ENOTFOUND', 'ENODATA']);

export async function resolveDestinations(resolver: DnsResolver, domain: string): Promise<Destinations> {
  const name = canonical(domain);
  const literal = addressLiteral(name);
  if (literal !== null) return { kind: 'hosts', hosts: [{ name, preference: 0, addresses: [literal] }] };

  let records: MxRecord[];
  try {
    records = await resolver.resolve(name, 'MX');
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENODATA') return implicitMx(resolver, name);
    if (code === 'ENOTFOUND') return permanent('5.1.2', `${name}: domain does not exist (NXDOMAIN)`);
    return temporary('4.4.3', `${name}: MX lookup failed (${code})`);
  }
  if (records.length === 0) return implicitMx(resolver, name);
  // RFC 7505: a single MX whose exchange is the root (node:dns reports "") says "no mail here".
  if (records.length === 1 && isNullExchange(records[0]!.exchange)) {
    return permanent('5.1.10', `${name}: domain does not accept mail (null MX)`);
  }

  // Lookups run concurrently: a domain with several MX hosts should cost one round trip, not N.
  const ordered = orderByPreference(records.filter((r) => !isNullExchange(r.exchange)));
  const resolved = await Promise.all(ordered.map(async (r) => ({ ...r, ...(await addressesOf(resolver, r.name)) })));
  const hosts = resolved
    .filter((h) => h.addresses.length > 0)
    .map((h): MailHost => ({ name: h.name, preference: h.preference, addresses: h.addresses }));
  if (hosts.length > 0) return { kind: 'hosts', hosts };
  // Likely a transient misconfiguration of the receiving side (or DNS trouble): defer, do not bounce.
  const problems = resolved.map((h) => `${h.name}: ${h.problem}`).join('; ');
  return temporary('4.4.3', `${name}: no MX host has an address (${problems})`);
}

/** RFC 5321 5.1: without MX records the domain itself is the one, preference 0, mail exchanger. */
async function implicitMx(resolver: DnsResolver, name: string): Promise<Destinations> {
  const { addresses, problem, answered } = await addressesOf(resolver, name);
  if (addresses.length > 0) return { kind: 'hosts', hosts: [{ name, preference: 0, addresses }] };
  if (answered) return permanent('5.1.2', `${name}: no MX or address records`);
  return temporary('4.4.3', `${name}: address lookup failed (${problem})`);
}

/**
 * A then AAAA. `answered` is true when both lookups got a definite "none"
 * (NXDOMAIN/NODATA), as opposed to an error worth retrying.
 */
async function addressesOf(resolver: DnsResolver, host: string): Promise<{ addresses: string[]; problem: string; answered: boolean }> {
  const [a, aaaa] = await Promise.allSettled([resolver.resolve(host, 'A'), resolver.resolve(host, 'AAAA')]);
  const addresses = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
  const codes = [a, aaaa].flatMap((r) => (r.status === 'rejected' ? [errorCode(r.reason)] : []));
  return {
    addresses,
    problem: codes.length > 0 ? [...new Set(codes)].join('/') : 'no addresses',
    answered: codes.every((c) => ANSWERED.has(c)),
  };
}

/** Lowest preference first; equal preferences in random order (RFC 5321 5.1) to spread load. */
function orderByPreference(records: MxRecord[]): Array<{ name: string; preference: number }> {
  const byName = new Map<string, number>();
  for (const r of records) {
    const name = canonical(r.exchange);
    // The same exchange listed twice is one host, tried at its best preference.
    byName.set(name, Math.min(byName.get(name) ?? Infinity, r.priority));
  }
  return [...byName]
    .map(([name, preference]) => ({ name, preference, key: Math.random() }))
    .sort((x, y) => x.preference - y.preference || x.key - y.key)
    .map(({ name, preference }) => ({ name, preference }));
}

/** `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 4.1.3) are delivered to that address, no DNS. */
function addressLiteral(name: string): string | null {
  const m = /^\[(?:ipv6:(.+)|(.+))\]$/i.exec(name);
  if (!m) return null;
  if (m[1] !== undefined) return isIPv6(m[1]) ? m[1] : null;
  return m[2] !== undefined && isIPv4(m[2]) ? m[2] : null;
}

function isNullExchange(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

function canonical(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}

function permanent(enhanced: string, reason: string): Destinations {
  return { kind: 'permanent', reason, enhanced };
}

function temporary(enhanced: string, reason: string): Destinations {
  return { kind: 'temporary', reason, enhanced };
}
