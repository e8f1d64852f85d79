/**
 * Finds and caches a domain's TWM policy (docs/protocol.md 3.6), RFC 8461's
 * procedure: look up `_twoway-policy.<domain>` TXT; if its id names the
 * cached policy and the cache is fresh, use the cache; otherwise fetch
 * `https://twoway-policy.<domain>/.well-known/twoway-policy.txt` (WebPKI
 * with the configured trust anchors, no redirects, 64 KiB, text/plain) and
 * cache it for its `max_age`.
 *
 * Downgrade resistance is the cache's: a fresh cached policy is used when
 * the TXT record disappears or the fetch fails (an attacker who can spoof
 * DNS can hide the TXT record, not the policy already learned). The cache is
 * in memory: a restart forgets it, and a policy is then learned again on the
 * next delivery (docs/protocol.md 3.6 says so).
 *
 * Problems (a malformed record or file, a failed fetch) go to `onProblem`,
 * which the composition root rate-limits per domain.
 */
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { DnsResolver, SecureResolver } from '../dns/types.ts';
import { isPublicAddress } from '../core/ip-ranges.ts';
import { MAX_POLICY_BYTES, parsePolicyFile, parsePolicyTxt, POLICY_PATH, type TwmPolicy } from '../core/twm-policy.ts';

export interface PolicySourceOptions {
  resolver: DnsResolver;
  /** For the TXT lookup when present: it keeps answers only for their TTL (node:dns's cache keeps TXT a minute). */
  secure?: SecureResolver;
  trustAnchors?: string[];
  lab?: boolean;
  /** Port of the policy host (443; tests use another). */
  port?: number;
  timeoutMs?: number;
  onProblem?: (domain: string, problem: string) => void;
  now?: () => number;
}

export interface PolicySource {
  /** The policy in effect for `domain` (mode `none` and no policy: null). */
  get(domain: string): Promise<TwmPolicy | null>;
}

interface Cached {
  id: string;
  policy: TwmPolicy;
  expiresAt: number;
}

const MAX_CACHED = 10_000;

export function createPolicySource(options: PolicySourceOptions): PolicySource {
  const cache = new Map<string, Cached>();
  const now = options.now ?? Date.now;
  const problem = (domain: string, text: string) => options.onProblem?.(domain, text);

  async function txtId(domain: string): Promise<string | null> {
    try {
      const owner = `_twoway-policy.${domain}`;
      const txt = options.secure ? txtOf(await options.secure.query(owner, 'TXT')) : await options.resolver.resolve(owner, 'TXT');
      const id = parsePolicyTxt(txt);
      if (id === null && txt.some((parts) => parts.join('').startsWith('v=TWMPOL1'))) problem(domain, 'malformed _twoway-policy TXT record (ignored)');
      return id;
    } catch {
      return null;
    }
  }

  return {
    async get(domain) {
      const name = domain.toLowerCase().replace(/\.$/, '');
      const cached = cache.get(name);
      const fresh = cached && cached.expiresAt > now() ? cached : undefined;
      const id = await txtId(name);
      if (id === null || (fresh && fresh.id === id)) return active(fresh);
      let text: string;
      try {
        text = await fetchPolicy(name, options);
      } catch (err) {
        problem(name, `policy fetch failed: ${err instanceof Error ? err.message : String(err)}`);
        return active(fresh);
      }
      const parsed = parsePolicyFile(text);
      if (!parsed.ok) {
        problem(name, `malformed policy file: ${parsed.problem}`);
        return active(fresh);
      }
      if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value ?? '');
      const entry = { id, policy: parsed.policy, expiresAt: now() + parsed.policy.maxAge * 1000 };
      cache.set(name, entry);
      return active(entry);
    },
  };
}

/** TXT data as node:dns gives it (strings per record); a failed lookup is no record. */
function txtOf(answer: Awaited<ReturnType<SecureResolver['query']>>): string[][] {
  return answer.records.map((r) => (Array.isArray(r.data) ? r.data.map((b: unknown) => (b instanceof Uint8Array ? Buffer.from(b).toString('utf8') : String(b))) : []));
}

function active(entry: Cached | undefined): TwmPolicy | null {
  return entry && entry.policy.mode !== 'none' ? entry.policy : null;
}

async function fetchPolicy(domain: string, o: PolicySourceOptions): Promise<string> {
  const host = `twoway-policy.${domain}`;
  const found = await Promise.allSettled([o.resolver.resolve(host, 'AAAA'), o.resolver.resolve(host, 'A')]);
  const addresses = found.flatMap((r) => (r.status === 'fulfilled' ? r.value : [])).filter((a) => isIP(a) !== 0);
  const address = addresses.find((a) => o.lab || isPublicAddress(a));
  if (!address) throw new Error(addresses.length > 0 ? `${host} has only non-public addresses` : `${host} has no address`);
  return new Promise((resolve, reject) => {
    const req = request({
      host: address,
      port: o.port ?? 443,
      servername: host,
      path: POLICY_PATH,
      method: 'GET',
      headers: { host },
      ca: o.trustAnchors && o.trustAnchors.length > 0 ? o.trustAnchors : undefined,
      agent: false,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      timeout: o.timeoutMs ?? 10_000,
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => reject(err));
    req.on('response', (res) => {
      const type = String(res.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      // Section 3.6 as RFC 8461 3.3: 200 and text/plain only; redirects are not followed.
      if (res.statusCode !== 200 || type !== 'text/plain') {
        res.resume();
        reject(new Error(`HTTP ${res.statusCode ?? 0} ${type ?? ''}`.trim()));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_POLICY_BYTES) req.destroy(new Error('policy larger than 64 KiB'));
        else chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.end();
  });
}
