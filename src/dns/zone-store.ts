/**
 * The embedded server's data and its answer logic, free of sockets so the
 * DNS semantics can be read (and tested) on their own.
 *
 * - Names are keyed canonically (lower case, no trailing dot).
 * - A name "exists" if it owns records or has descendants that do (an empty
 *   non-terminal such as `_domainkey.example.test`): such names answer
 *   NOERROR with no data, never NXDOMAIN (RFC 8020).
 * - A zone apex is a configured zone origin or any name owning a SOA record.
 *   Negative answers below an apex carry its SOA in the authority section
 *   (RFC 2308); zones without a SOA record get a synthesized one.
 * - CNAMEs are chased within the served data (at most MAX_CHAIN links); the
 *   rcode describes the last name in the chain (RFC 6604).
 * - With zones configured, an unknown name outside all of them is REFUSED;
 *   with only loose records, it is NXDOMAIN.
 */
import type { DnsRecord, SoaData, Zone } from './types.ts';
import { ancestorsOf, canonicalName, isAtOrBelow } from './names.ts';
import { DEFAULT_RECORD_TTL, validateRecord } from './records.ts';

export type ResponseCode = 'NOERROR' | 'NXDOMAIN' | 'REFUSED';

export interface Resolution {
  rcode: ResponseCode;
  answers: DnsRecord[];
  authorities: DnsRecord[];
}

const MAX_CHAIN = 8;

export class ZoneStore {
  readonly #byName = new Map<string, DnsRecord[]>();
  /** Count of record-owning names strictly below each ancestor name. */
  readonly #descendants = new Map<string, number>();
  readonly #configuredApexes = new Set<string>();

  addZone(zone: Zone): void {
    const origin = canonicalName(zone.origin);
    for (const r of zone.records) {
      if (!isAtOrBelow(canonicalName(r.name), origin)) {
        throw new Error(`record '${r.name}' is outside zone '${zone.origin}'`);
      }
    }
    this.add(zone.records);
    this.#configuredApexes.add(origin);
  }

  /** Adds records; an identical record already present is not added twice (RRsets are sets). */
  add(records: readonly DnsRecord[]): void {
    for (const r of records) validateRecord(r);
    for (const r of records) {
      const key = canonicalName(r.name);
      let list = this.#byName.get(key);
      if (!list) {
        list = [];
        this.#byName.set(key, list);
        for (const a of ancestorsOf(key)) this.#descendants.set(a, (this.#descendants.get(a) ?? 0) + 1);
      }
      const identity = recordIdentity(r);
      if (!list.some((existing) => recordIdentity(existing) === identity)) list.push(r);
    }
  }

  /** Removes every record of `name`, or only those of `type`. */
  remove(name: string, type?: string): void {
    const key = canonicalName(name);
    const list = this.#byName.get(key);
    if (!list) return;
    const wanted = type?.toUpperCase();
    const kept = wanted === undefined ? [] : list.filter((r) => r.type !== wanted);
    if (kept.length > 0) {
      this.#byName.set(key, kept);
      return;
    }
    this.#byName.delete(key);
    for (const a of ancestorsOf(key)) {
      const n = (this.#descendants.get(a) ?? 0) - 1;
      if (n > 0) this.#descendants.set(a, n);
      else this.#descendants.delete(a);
    }
  }

  resolve(qname: string, qtype: string): Resolution {
    const type = qtype.toUpperCase();
    const answers: DnsRecord[] = [];
    const visited = new Set<string>();
    let name = canonicalName(qname);

    for (let link = 0; link <= MAX_CHAIN; link++) {
      visited.add(name);
      const records = this.#byName.get(name);
      if (!records) {
        if (this.#descendants.has(name) || this.#configuredApexes.has(name)) return this.#noData(name, answers);
        const apex = this.#apexOf(name);
        if (apex !== undefined) return { rcode: 'NXDOMAIN', answers, authorities: [this.#soa(apex)] };
        // A CNAME pointing out of our data: hand back the chain, the client goes on from there.
        if (answers.length > 0) return { rcode: 'NOERROR', answers, authorities: [] };
        return { rcode: this.#configuredApexes.size > 0 ? 'REFUSED' : 'NXDOMAIN', answers, authorities: [] };
      }
      const matching = type === 'ANY' ? records : records.filter((r) => r.type === type);
      if (matching.length > 0) return { rcode: 'NOERROR', answers: [...answers, ...matching], authorities: [] };
      const cname = records.find((r) => r.type === 'CNAME');
      if (!cname || type === 'CNAME') return this.#noData(name, answers);
      answers.push(cname);
      if (typeof cname.data !== 'string') break; // unreachable: CNAME data is a name
      name = canonicalName(cname.data);
      if (visited.has(name)) break; // a loop: answer with the chain so far
    }
    return { rcode: 'NOERROR', answers, authorities: [] };
  }

  #noData(name: string, answers: DnsRecord[]): Resolution {
    const apex = this.#apexOf(name);
    return { rcode: 'NOERROR', answers, authorities: apex === undefined ? [] : [this.#soa(apex)] };
  }

  /** The closest enclosing zone apex of `name`, if any. */
  #apexOf(name: string): string | undefined {
    for (const candidate of [name, ...ancestorsOf(name)]) {
      if (this.#configuredApexes.has(candidate)) return candidate;
      if (this.#byName.get(candidate)?.some((r) => r.type === 'SOA')) return candidate;
    }
    return undefined;
  }

  #soa(apex: string): DnsRecord {
    const existing = this.#byName.get(apex)?.find((r) => r.type === 'SOA');
    if (existing) return existing;
    const data: SoaData = {
      mname: `ns.${apex}`,
      rname: `hostmaster.${apex}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: DEFAULT_RECORD_TTL,
    };
    return { name: apex, type: 'SOA', ttl: DEFAULT_RECORD_TTL, data };
  }
}

/** Equality key for de-duplication; names in data compare case-insensitively, TXT text does not. */
function recordIdentity(r: DnsRecord): string {
  const data = typeof r.data === 'string' && r.type !== 'TXT' ? canonicalName(r.data) : r.data;
  return `${r.type} ${JSON.stringify(data)}`;
}
