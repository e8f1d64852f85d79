/**
 * What `twoway dns` says to publish against what the configured resolvers
 * answer: one result per record. MX, SRV and the key records must match
 * (the DKIM and TWM `p=` against the public half of the private key on disk);
 * exactly one SPF record (another policy than the suggested one is a warning); DMARC must exist with a policy (which one
 * is the operator's choice); the CardDAV discovery records are optional.
 */
import type { DnsRecordLine } from '../config/published-records/dns-records.ts';
import { zoneLine } from '../config/published-records/dns-records.ts';
import type { DnsResolver } from '../dns/types.ts';
import { fail, ok, warn, type CheckResult } from './types.ts';
import { pTag } from './keys.ts';

/** The public keys the private keys on disk imply, by the record name that should carry them (with trailing dot). */
export type ExpectedKeys = Map<string, { key: string; file: string }>;

type Answer<T> = { found: T[] } | { error: string };

async function lookup<T>(run: () => Promise<T[]>): Promise<Answer<T>> {
  try {
    return { found: await run() };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return { found: [] };
    return { error: code ?? (err as Error).message };
  }
}

const bare = (name: string) => name.replace(/\.$/, '').toLowerCase();
const norm = (s: string) => s.trim().replace(/\s+/g, ' ');

function kindOf(r: DnsRecordLine): string {
  if (r.type === 'TXT') {
    if (r.value.startsWith('v=spf1')) return 'SPF';
    if (r.value.startsWith('v=DKIM1')) return 'DKIM';
    if (r.value.startsWith('v=DMARC1')) return 'DMARC';
    if (r.value.startsWith('v=TWM1')) return 'TWM key';
    if (r.name.startsWith('_carddavs.')) return 'CardDAV TXT';
    return 'TXT';
  }
  if (r.type === 'SRV' && r.name.startsWith('_carddavs.')) return 'CardDAV SRV';
  if (r.type === 'SRV') return 'TWM SRV';
  return r.type;
}

export async function checkDns(expected: DnsRecordLine[], resolver: DnsResolver, keys: ExpectedKeys): Promise<CheckResult[]> {
  return Promise.all(expected.map((r) => checkRecord(r, resolver, keys)));
}

async function checkRecord(r: DnsRecordLine, resolver: DnsResolver, keys: ExpectedKeys): Promise<CheckResult> {
  const kind = kindOf(r);
  const name = bare(r.name);
  const label = `dns ${kind} ${name}`;
  const publish = `publish: ${zoneLine(r)}`;
  const unresolved = (error: string) => fail(label, `the resolvers did not answer (${error})`, 'check [dns] servers in the configuration and that the zone is served');

  if (r.type === 'A/AAAA') {
    const [a, aaaa] = await Promise.all([lookup(() => resolver.resolve(name, 'A')), lookup(() => resolver.resolve(name, 'AAAA'))]);
    if ('error' in a && 'error' in aaaa) return unresolved(a.error);
    const addresses = [...('found' in a ? a.found : []), ...('found' in aaaa ? aaaa.found : [])];
    return addresses.length > 0 ? ok(label, addresses.join(', ')) : fail(label, 'no A or AAAA record', `publish an A (and AAAA) record for ${name} with this server's public address`);
  }

  if (r.type === 'MX') {
    const answer = await lookup(() => resolver.resolve(name, 'MX'));
    if ('error' in answer) return unresolved(answer.error);
    const target = bare(r.value.split(/\s+/)[1] ?? '');
    const found = answer.found.map((mx) => `${mx.priority} ${bare(mx.exchange)}`);
    if (answer.found.some((mx) => bare(mx.exchange) === target)) return ok(label, found.join(', '));
    return fail(label, found.length ? `points to ${found.join(', ')}, not ${target}` : 'missing', publish);
  }

  if (r.type === 'SRV') {
    const answer = await lookup(() => resolver.resolve(name, 'SRV'));
    if ('error' in answer) return unresolved(answer.error);
    const [, , port, target] = r.value.split(/\s+/);
    const found = answer.found.map((s) => `${s.priority} ${s.weight} ${s.port} ${bare(s.name)}`);
    if (answer.found.some((s) => String(s.port) === port && bare(s.name) === bare(target ?? ''))) return ok(label, found.join(', '));
    const detail = found.length ? `${found.join(', ')}, not port ${port} on ${bare(target ?? '')}` : 'missing';
    // CardDAV discovery is a convenience for clients; mail flows without it.
    return kind === 'CardDAV SRV' ? warn(label, detail, publish) : fail(label, detail, publish);
  }

  const answer = await lookup(() => resolver.resolve(name, 'TXT'));
  if ('error' in answer) return unresolved(answer.error);
  const texts = answer.found.map((strings) => strings.join(''));
  switch (kind) {
    case 'SPF': {
      const spf = texts.filter((t) => /^v=spf1(\s|$)/i.test(t));
      if (spf.length === 0) return fail(label, 'no SPF record', publish);
      if (spf.length > 1) return fail(label, `${spf.length} SPF records (receivers treat that as a permanent error)`, `keep one: ${zoneLine(r)}`);
      // Another SPF policy can be right (ip4: instead of mx, an include for a relay): a warning, not a failure.
      return norm(spf[0]!) === norm(r.value) ? ok(label, spf[0]!) : warn(label, `"${spf[0]}", not the suggested "${r.value}"`, 'make sure it authorizes this server, or ' + publish);
    }
    case 'DMARC': {
      const dmarc = texts.filter((t) => /^v=DMARC1\s*(;|$)/.test(t));
      if (dmarc.length !== 1) return fail(label, dmarc.length ? `${dmarc.length} DMARC records` : 'no DMARC record', publish);
      return /(^|;)\s*p\s*=\s*(none|quarantine|reject)\s*(;|$)/.test(dmarc[0]!) ? ok(label, dmarc[0]!) : fail(label, `"${dmarc[0]}" has no valid p= policy`, publish);
    }
    case 'DKIM':
    case 'TWM key': {
      const tag = kind === 'DKIM' ? 'v=DKIM1' : 'v=TWM1';
      const records = texts.filter((t) => t.startsWith(tag));
      const expected = keys.get(r.name);
      const wanted = expected?.key ?? pTag(r.value);
      if (records.length === 0) return fail(label, 'missing', publish);
      if (records.length > 1) return fail(label, `${records.length} key records at one name`, `keep one: ${zoneLine(r)}`);
      const published = pTag(records[0]!);
      if (published === wanted) return ok(label, `published key matches ${expected?.file ?? 'the private key'}`);
      return fail(label, `published key (p=${(published ?? '').slice(0, 16)}…) does not match ${expected?.file ?? 'the private key'}`, publish);
    }
    default: {
      if (texts.some((t) => norm(t) === norm(r.value))) return ok(label, r.value);
      const detail = texts.length ? `"${texts.join('", "')}", not "${r.value}"` : 'missing';
      return r.name.startsWith('_carddavs.') ? warn(label, detail, publish) : fail(label, detail, publish);
    }
  }
}
