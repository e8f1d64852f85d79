/**
 * The project's resolver contract. Every DNS lookup (SPF/DKIM/DMARC via
 * mailauth, MX for delivery, SRV/TXT for Two-Way Mail) goes through one
 * instance configured with the servers from the config file, so tests and the
 * demo can point the whole server at the embedded DNS server on loopback.
 *
 * The result shapes are node:dns's `resolve(name, rrtype)` shapes, which is
 * what mailauth's `resolver` option expects.
 */
import type { MxRecord, SrvRecord } from 'node:dns';

export type RrType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'SRV' | 'CNAME' | 'NS' | 'PTR';

export interface DnsResolver {
  resolve(name: string, rrtype: 'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR'): Promise<string[]>;
  resolve(name: string, rrtype: 'MX'): Promise<MxRecord[]>;
  resolve(name: string, rrtype: 'TXT'): Promise<string[][]>;
  resolve(name: string, rrtype: 'SRV'): Promise<SrvRecord[]>;
  resolve(name: string, rrtype: RrType): Promise<unknown[]>;
  /**
   * TXT records as the cache holds them, deeply frozen and shared between
   * callers (no copy per call, unlike `resolve`): for hot read-only callers
   * such as the TWM key lookup. Optional: other resolvers need not have it.
   */
  resolveShared?(name: string, rrtype: 'TXT'): Promise<ReadonlyArray<readonly string[]>>;
  /**
   * An answer without a throw and without a copy: the records as the cache
   * holds them (deeply frozen, shared), or the code of a negative answer
   * (ENOTFOUND, ENODATA). Other failures (SERVFAIL, timeouts) still throw.
   * For hot read-only callers (the TWM client's SRV and address lookups,
   * several per request, mostly NODATA for AAAA and CNAME): no Error with
   * its stack per negative answer and no structuredClone per positive one.
   * Optional: other resolvers need not have it.
   */
  answer?(name: string, rrtype: 'A' | 'AAAA' | 'CNAME'): Promise<DnsAnswer<string>>;
  answer?(name: string, rrtype: 'SRV'): Promise<DnsAnswer<SrvRecord>>;
}

/** A lookup's outcome as `DnsResolver.answer` gives it. */
export type DnsAnswer<T> = { records: ReadonlyArray<Readonly<T>> } | { negative: string };

/** Outcomes of a query that reports DNSSEC validation (secure-resolver.ts). */
export type SecureRcode = 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL';

export interface SecureAnswer {
  rcode: SecureRcode;
  /** The resolver set AD: every record in the answer (or the denial) was validated. */
  authenticated: boolean;
  /** Answer records of the type asked for (dns-packet's decoded `data`), at the name or along its CNAME chain. */
  records: Array<{ name: string; type: string; ttl: number; data: unknown }>;
}

export interface SecureResolver {
  /** Throws (code ETIMEOUT) only when no resolver gave any answer. */
  query(name: string, type: 'SRV' | 'TXT' | 'TLSA' | 'A' | 'AAAA'): Promise<SecureAnswer>;
  clearCache(): void;
}

/**
 * The signature mailauth accepts as its `resolver` option (and what
 * node:dns/promises `resolve` looks like when called loosely). Unknown
 * rrtypes are passed through to node:dns.
 */
export type ResolveFunction = (name: string, rrtype: string) => Promise<unknown>;

/** Record types the embedded server and the zone-file parser understand. */
export type DnsRecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'SRV' | 'CNAME' | 'NS' | 'SOA' | 'PTR';

export interface MxData {
  preference: number;
  exchange: string;
}

export interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface SoaData {
  mname: string;
  rname: string;
  serial?: number;
  refresh?: number;
  retry?: number;
  expire?: number;
  minimum?: number;
}

interface RecordOf<T extends DnsRecordType, D> {
  /** Fully qualified, without the trailing dot (`mail.example.test`); compared case-insensitively. */
  name: string;
  type: T;
  /** Seconds; the embedded server uses its default (60) when absent. */
  ttl?: number;
  data: D;
}

/**
 * One resource record, its `data` shaped like dns-packet's answer data.
 * TXT data may be one string of any length (split into 255-byte
 * character-strings on the wire, as DKIM keys need) or several strings,
 * each sent as its own character-string(s).
 */
export type DnsRecord =
  | RecordOf<'A' | 'AAAA' | 'CNAME' | 'NS' | 'PTR', string>
  | RecordOf<'MX', MxData>
  | RecordOf<'TXT', string | string[]>
  | RecordOf<'SRV', SrvData>
  | RecordOf<'SOA', SoaData>;

/** A zone: its apex (`example.test`, no trailing dot) and its records. */
export interface Zone {
  origin: string;
  records: DnsRecord[];
}
