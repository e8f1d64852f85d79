/**
 * The project's DNS resolver: node:dns/promises `Resolver` pointed at the
 * configured servers, plus a small cache.
 *
 * Why a cache: one inbound message costs SPF (TXT, then A/AAAA/MX per
 * mechanism), DKIM (TXT per signature) and DMARC (TXT, maybe twice) lookups,
 * and the next message from the same sender repeats most of them. c-ares
 * answers from the network every time, so without a cache a burst of mail
 * from one domain becomes a burst of identical queries.
 *
 * Cache rules:
 * - Positive answers live for the record TTL where node:dns reports it
 *   (A/AAAA via `{ ttl: true }`), otherwise DEFAULT_TTL_SECONDS; always
 *   capped by `cacheTtlCapSeconds` (0 disables caching).
 * - ENOTFOUND/ENODATA are cached for NEGATIVE_TTL_SECONDS (also capped) and
 *   rethrown as fresh errors with the same `code`, because mailauth decides
 *   "void lookup" vs "temperror" from `err.code`.
 * - Anything else (SERVFAIL, timeouts, refused) is never cached: those are
 *   temporary by nature and a retry should go to the network.
 * - Concurrent identical lookups share one network query.
 */
import { Resolver } from 'node:dns/promises';
import type { MxRecord, SrvRecord } from 'node:dns';
import type { DnsAnswer, DnsResolver, ResolveFunction, RrType } from './types.ts';
import { TtlCache } from './ttl-cache.ts';
import { canonicalName } from './names.ts';

export interface ResolverOptions {
  /** `host`, `host:port`, `[v6]` or `[v6]:port`; empty or absent means the system resolvers. */
  servers?: string[];
  /** Per-try timeout in milliseconds (default 5000, as in the config schema). */
  timeoutMs?: number;
  /** Attempts per server before giving up (default 2). */
  tries?: number;
  /** Upper bound on how long any answer is cached (default 300 s; 0 disables the cache). */
  cacheTtlCapSeconds?: number;
  /** Maximum cached answers (default 10,000). */
  cacheMaxEntries?: number;
}

export interface ResolverStats {
  /** Answers (positive or negative) served from the cache. */
  hits: number;
  /** Lookups that went to the network (shared in-flight lookups count once). */
  misses: number;
}

export interface CachingDnsResolver extends DnsResolver {
  /** `resolve`, bound and loosely typed: pass it as mailauth's `resolver` option. */
  readonly resolveFunction: ResolveFunction;
  /** The longest an answer is cached, in seconds (0: no caching); copies of answers kept elsewhere live no longer. */
  readonly cacheTtlCapSeconds: number;
  stats(): ResolverStats;
  clearCache(): void;
  resolveShared(name: string, rrtype: 'TXT'): Promise<ReadonlyArray<readonly string[]>>;
  answer(name: string, rrtype: 'A' | 'AAAA' | 'CNAME'): Promise<DnsAnswer<string>>;
  answer(name: string, rrtype: 'SRV'): Promise<DnsAnswer<SrvRecord>>;
}

const DEFAULT_TTL_SECONDS = 60;
const NEGATIVE_TTL_SECONDS = 30;
const DEFAULT_TTL_CAP_SECONDS = 300;
const NEGATIVE_CODES = new Set(['ENOTFOUND', 'ENODATA']);

/** What the cache holds: records, or the identity of a negative answer. */
type CacheEntry =
  | { kind: 'records'; records: unknown }
  | { kind: 'negative'; code: string; syscall: string | undefined; hostname: string; message: string };

interface DnsError extends Error {
  code?: string;
  syscall?: string;
  hostname?: string;
}

export function createResolver(options: ResolverOptions = {}): CachingDnsResolver {
  return new CachingResolver(options);
}

/** Adapts any DnsResolver to the loose `(name, rrtype)` signature mailauth calls. */
export function toResolveFunction(resolver: DnsResolver): ResolveFunction {
  // The overloads only narrow the rrtype; unknown types are node:dns's to reject.
  return (name, rrtype) => resolver.resolve(name, rrtype as RrType);
}

class CachingResolver implements CachingDnsResolver {
  readonly #resolver: Resolver;
  readonly #cache: TtlCache<CacheEntry>;
  readonly #inFlight = new Map<string, Promise<CacheEntry>>();
  readonly #ttlCap: number;
  readonly #stats: ResolverStats = { hits: 0, misses: 0 };

  readonly resolveFunction: ResolveFunction = (name, rrtype) => this.#lookup(name, rrtype);

  get cacheTtlCapSeconds(): number {
    return this.#ttlCap;
  }

  constructor(options: ResolverOptions) {
    this.#resolver = new Resolver({ timeout: options.timeoutMs ?? 5000, tries: options.tries ?? 2 });
    const servers = (options.servers ?? []).map((s) => s.trim()).filter((s) => s !== '');
    // setServers validates and throws ERR_INVALID_IP_ADDRESS on a bad entry,
    // which is the early failure we want for a bad config.
    if (servers.length > 0) this.#resolver.setServers(servers);
    this.#ttlCap = Math.max(0, options.cacheTtlCapSeconds ?? DEFAULT_TTL_CAP_SECONDS);
    this.#cache = new TtlCache(options.cacheMaxEntries ?? 10_000);
  }

  resolve(name: string, rrtype: 'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR'): Promise<string[]>;
  resolve(name: string, rrtype: 'MX'): Promise<MxRecord[]>;
  resolve(name: string, rrtype: 'TXT'): Promise<string[][]>;
  resolve(name: string, rrtype: 'SRV'): Promise<SrvRecord[]>;
  resolve(name: string, rrtype: RrType): Promise<unknown[]>;
  resolve(name: string, rrtype: string): Promise<unknown[]> {
    // Every RrType resolves to an array in node:dns (only SOA, not an RrType, does not).
    return this.#lookup(name, rrtype) as Promise<unknown[]>;
  }

  async resolveShared(name: string, rrtype: 'TXT'): Promise<ReadonlyArray<readonly string[]>> {
    // The cached records are deeply frozen (#query): handing them out cannot change the cache.
    return (await this.#entry(name, rrtype)) as ReadonlyArray<readonly string[]>;
  }

  answer(name: string, rrtype: 'A' | 'AAAA' | 'CNAME'): Promise<DnsAnswer<string>>;
  answer(name: string, rrtype: 'SRV'): Promise<DnsAnswer<SrvRecord>>;
  async answer(name: string, rrtype: 'A' | 'AAAA' | 'CNAME' | 'SRV'): Promise<DnsAnswer<string | SrvRecord>> {
    const entry = await this.#cached(name, rrtype);
    // Frozen by #query: handing the records out cannot change the cache. node:dns answers these types with arrays.
    return entry.kind === 'negative' ? { negative: entry.code } : { records: entry.records as ReadonlyArray<string | SrvRecord> };
  }

  stats(): ResolverStats {
    return { ...this.#stats };
  }

  clearCache(): void {
    this.#cache.clear();
  }

  async #lookup(name: string, rrtype: string): Promise<unknown> {
    // Callers may sort or mutate what they get (MX lists, TXT chunks); the cache must not see that.
    return structuredClone(await this.#entry(name, rrtype));
  }

  /** The cached (frozen) records for a question, from the network on a miss; throws a negative answer. */
  async #entry(name: string, rrtype: string): Promise<unknown> {
    const entry = await this.#cached(name, rrtype);
    if (entry.kind === 'negative') throw negativeError(entry);
    return entry.records;
  }

  /** The cache entry for a question (records or a negative answer), from the network on a miss. */
  async #cached(name: string, rrtype: string): Promise<CacheEntry> {
    const type = rrtype.toUpperCase();
    const key = `${type} ${canonicalName(name)}`;
    let entry = this.#cache.get(key);
    if (entry) {
      this.#stats.hits++;
    } else {
      let pending = this.#inFlight.get(key);
      if (!pending) {
        this.#stats.misses++;
        pending = this.#query(name, type, key).finally(() => this.#inFlight.delete(key));
        this.#inFlight.set(key, pending);
      }
      entry = await pending;
    }
    return entry;
  }

  /** One network query; caches the outcome when it is cacheable. Rejects only on uncacheable errors. */
  async #query(name: string, type: string, key: string): Promise<CacheEntry> {
    try {
      const { records, ttl } = await this.#fromNetwork(name, type);
      const entry: CacheEntry = { kind: 'records', records: deepFreeze(records) };
      this.#cache.set(key, entry, Math.min(ttl, this.#ttlCap));
      return entry;
    } catch (err) {
      const e = err as DnsError;
      if (typeof e.code !== 'string' || !NEGATIVE_CODES.has(e.code)) throw err;
      const entry: CacheEntry = {
        kind: 'negative',
        code: e.code,
        syscall: e.syscall,
        hostname: e.hostname ?? name,
        message: e.message,
      };
      this.#cache.set(key, entry, Math.min(NEGATIVE_TTL_SECONDS, this.#ttlCap));
      return entry;
    }
  }

  async #fromNetwork(name: string, type: string): Promise<{ records: unknown; ttl: number }> {
    if (type === 'A' || type === 'AAAA') {
      const answers =
        type === 'A'
          ? await this.#resolver.resolve4(name, { ttl: true })
          : await this.#resolver.resolve6(name, { ttl: true });
      const ttl = answers.reduce((min, a) => Math.min(min, a.ttl), Number.POSITIVE_INFINITY);
      return { records: answers.map((a) => a.address), ttl: Number.isFinite(ttl) ? ttl : DEFAULT_TTL_SECONDS };
    }
    return { records: await this.#resolver.resolve(name, type), ttl: DEFAULT_TTL_SECONDS };
  }
}

/** Freezes node:dns's answer (arrays and plain objects of strings and numbers) all the way down. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A fresh error per throw (own stack, safe to annotate) carrying node:dns's identity fields. */
function negativeError(entry: Extract<CacheEntry, { kind: 'negative' }>): DnsError {
  const err: DnsError = new Error(entry.message);
  err.code = entry.code;
  err.hostname = entry.hostname;
  if (entry.syscall !== undefined) err.syscall = entry.syscall;
  return err;
}
