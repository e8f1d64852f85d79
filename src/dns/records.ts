/**
 * The record model's two edges: checking records when they are added (so a
 * bad record fails loudly at `add` instead of as a SERVFAIL at query time),
 * and turning records into dns-packet answers.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Answer } from 'dns-packet';
import type { DnsRecord, DnsRecordType } from './types.ts';

export const DEFAULT_RECORD_TTL = 60;

export const RECORD_TYPES: ReadonlySet<string> = new Set<DnsRecordType>([
  'A', 'AAAA', 'MX', 'TXT', 'SRV', 'CNAME', 'NS', 'SOA', 'PTR',
]);

/** Largest character-string in a TXT record (its length is one octet). */
const TXT_CHUNK_BYTES = 255;

/** Throws a descriptive Error if the record could not be served. */
export function validateRecord(record: DnsRecord): void {
  const where = `${record.type} record for '${record.name}'`;
  if (!RECORD_TYPES.has(record.type)) throw new Error(`unsupported record type '${String(record.type)}'`);
  checkName(record.name, where);
  if (record.ttl !== undefined && !isUint(record.ttl, 0x7fffffff)) throw new Error(`${where}: bad ttl ${record.ttl}`);
  switch (record.type) {
    case 'A':
      if (!isIPv4(record.data)) throw new Error(`${where}: '${record.data}' is not an IPv4 address`);
      return;
    case 'AAAA':
      if (!isIPv6(record.data)) throw new Error(`${where}: '${record.data}' is not an IPv6 address`);
      return;
    case 'CNAME':
    case 'NS':
    case 'PTR':
      checkName(record.data, where);
      return;
    case 'MX':
      if (!isUint(record.data.preference, 0xffff)) throw new Error(`${where}: bad preference`);
      checkName(record.data.exchange, where);
      return;
    case 'SRV':
      for (const field of ['priority', 'weight', 'port'] as const) {
        if (!isUint(record.data[field], 0xffff)) throw new Error(`${where}: bad ${field}`);
      }
      checkName(record.data.target, where);
      return;
    case 'SOA':
      checkName(record.data.mname, where);
      checkName(record.data.rname, where);
      return;
    case 'TXT': {
      const parts = typeof record.data === 'string' ? [record.data] : record.data;
      if (!Array.isArray(parts) || parts.some((p) => typeof p !== 'string')) {
        throw new Error(`${where}: data must be a string or an array of strings`);
      }
      return;
    }
  }
}

/** A record as a dns-packet answer, owned by `owner` (the query's spelling of the name). */
export function toAnswer(record: DnsRecord, owner: string = record.name): Answer {
  const base = { name: owner, ttl: record.ttl ?? DEFAULT_RECORD_TTL, class: 'IN' as const };
  switch (record.type) {
    case 'A':
    case 'AAAA':
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return { ...base, type: record.type, data: record.data };
    case 'MX':
      return { ...base, type: 'MX', data: { ...record.data } };
    case 'SRV':
      return { ...base, type: 'SRV', data: { ...record.data } };
    case 'SOA':
      return { ...base, type: 'SOA', data: { ...record.data } };
    case 'TXT':
      // A fresh array every time: dns-packet's TXT encoder rewrites the array it is given.
      return { ...base, type: 'TXT', data: txtChunks(record.data) };
  }
}

/**
 * TXT data as wire character-strings: each string is cut into 255-byte
 * pieces (a 2048-bit DKIM key is ~400 bytes). Cuts are by bytes, as the
 * receiving side (mailauth, node:dns) concatenates the pieces as bytes.
 */
export function txtChunks(data: string | string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const text of typeof data === 'string' ? [data] : data) {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length === 0) out.push(bytes);
    for (let i = 0; i < bytes.length; i += TXT_CHUNK_BYTES) out.push(bytes.subarray(i, i + TXT_CHUNK_BYTES));
  }
  return out;
}

function checkName(name: unknown, where: string): void {
  if (typeof name !== 'string') throw new Error(`${where}: expected a domain name`);
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare === '') return; // the root
  if (Buffer.byteLength(bare) > 253) throw new Error(`${where}: name '${name}' is longer than 253 bytes`);
  for (const label of bare.split('.')) {
    const len = Buffer.byteLength(label);
    if (len === 0 || len > 63) throw new Error(`${where}: name '${name}' has an empty or over-long label`);
  }
}

function isUint(value: unknown, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}
