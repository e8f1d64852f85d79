/**
 * Zone files (RFC 1035 master format, the subset a mail domain needs):
 * `$ORIGIN`, `$TTL`, `@`, relative and absolute names, a blank owner meaning
 * "the previous owner", optional TTL and class IN in either order, and the
 * types A AAAA MX TXT SRV CNAME NS SOA PTR. Lexical rules (comments,
 * parentheses, quotes, escapes) are in zone-lexer.ts.
 *
 * A record without a TTL takes `$TTL`, else the last explicit TTL (RFC 1035's
 * rule), else none (the server's default applies). Errors are
 * ZoneFileErrors naming the line and what was expected there.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import type { DnsRecord, DnsRecordType, Zone } from './types.ts';
import { RECORD_TYPES } from './records.ts';
import { canonicalName, isAtOrBelow } from './names.ts';
import { lexZone, ZoneFileError, type ZoneToken } from './zone-lexer.ts';

export { ZoneFileError } from './zone-lexer.ts';

export interface ZoneFileOptions {
  /** The initial origin, for relative names before any `$ORIGIN` (and the zone's apex). */
  origin?: string;
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const MAX_TTL = 0x7fffffff;

export async function loadZoneFile(path: string, options: ZoneFileOptions = {}): Promise<Zone> {
  const text = await readFile(path, 'utf8');
  try {
    return parseZoneFile(text, options);
  } catch (err) {
    if (err instanceof ZoneFileError) throw new ZoneFileError(err.line, `${path}: ${err.message}`);
    throw err;
  }
}

export function parseZoneFile(text: string, options: ZoneFileOptions = {}): Zone {
  let origin = options.origin === undefined ? undefined : bareName(options.origin);
  let zoneOrigin = origin;
  let defaultTtl: number | undefined;
  let lastTtl: number | undefined;
  let previousOwner: string | undefined;
  const records: Array<{ record: DnsRecord; line: number }> = [];

  for (const entry of lexZone(text)) {
    const tokens = new TokenReader(entry.tokens, entry.line);
    const first = entry.tokens[0] as ZoneToken;

    if (!entry.blankOwner && !first.quoted && first.text.startsWith('$')) {
      const directive = tokens.next('a directive').text.toUpperCase();
      if (directive === '$ORIGIN') {
        origin = resolveName(tokens.next('a domain name after $ORIGIN'), origin);
        zoneOrigin ??= origin;
      } else if (directive === '$TTL') {
        defaultTtl = parseTtl(tokens.next('a TTL after $TTL'));
      } else {
        throw new ZoneFileError(first.line, `unsupported directive '${first.text}' (expected $ORIGIN or $TTL)`);
      }
      tokens.end();
      continue;
    }

    let owner: string;
    if (entry.blankOwner) {
      if (previousOwner === undefined) throw new ZoneFileError(entry.line, 'expected an owner name (no previous record to inherit it from)');
      owner = previousOwner;
    } else {
      owner = resolveName(tokens.next('an owner name'), origin);
    }
    previousOwner = owner;

    // TTL and class may come in either order, each at most once.
    let ttl: number | undefined;
    let sawClass = false;
    let typeToken = tokens.next('a record type');
    for (;;) {
      if (ttl === undefined && /^\d/.test(typeToken.text)) {
        ttl = parseTtl(typeToken);
      } else if (!sawClass && /^(IN|CH|HS|CS)$/i.test(typeToken.text)) {
        if (typeToken.text.toUpperCase() !== 'IN') throw new ZoneFileError(typeToken.line, `only class IN is supported, got '${typeToken.text}'`);
        sawClass = true;
      } else {
        break;
      }
      typeToken = tokens.next('a record type');
    }
    const type = typeToken.text.toUpperCase();
    if (typeToken.quoted || !RECORD_TYPES.has(type)) {
      throw new ZoneFileError(typeToken.line, `expected a record type (${[...RECORD_TYPES].join(' ')}), got '${typeToken.text}'`);
    }
    if (ttl !== undefined) lastTtl = ttl;
    const effectiveTtl = ttl ?? defaultTtl ?? lastTtl;

    const record = parseRdata(owner, type as DnsRecordType, tokens, origin);
    if (effectiveTtl !== undefined) record.ttl = effectiveTtl;
    if (type === 'SOA') zoneOrigin ??= owner;
    records.push({ record, line: entry.line });
  }

  if (zoneOrigin === undefined) {
    throw new ZoneFileError(1, 'expected $ORIGIN, a SOA record or the origin option (the zone has no origin)');
  }
  const apex = canonicalName(zoneOrigin);
  for (const { record, line } of records) {
    if (!isAtOrBelow(canonicalName(record.name), apex)) {
      throw new ZoneFileError(line, `expected a name inside '${zoneOrigin}', got '${record.name}'`);
    }
  }
  return { origin: zoneOrigin, records: records.map((r) => r.record) };
}

function parseRdata(name: string, type: DnsRecordType, tokens: TokenReader, origin: string | undefined): DnsRecord {
  const domain = (what: string): string => resolveName(tokens.next(what), origin);
  let record: DnsRecord;
  switch (type) {
    case 'A': {
      const t = tokens.next('an IPv4 address');
      if (!isIPv4(t.text)) throw new ZoneFileError(t.line, `expected an IPv4 address, got '${t.text}'`);
      record = { name, type, data: t.text };
      break;
    }
    case 'AAAA': {
      const t = tokens.next('an IPv6 address');
      if (!isIPv6(t.text)) throw new ZoneFileError(t.line, `expected an IPv6 address, got '${t.text}'`);
      record = { name, type, data: t.text };
      break;
    }
    case 'CNAME':
    case 'NS':
    case 'PTR':
      record = { name, type, data: domain('a domain name') };
      break;
    case 'MX':
      record = { name, type, data: { preference: uint16(tokens.next('an MX preference')), exchange: domain('an MX exchange name') } };
      break;
    case 'SRV':
      record = {
        name,
        type,
        data: {
          priority: uint16(tokens.next('an SRV priority')),
          weight: uint16(tokens.next('an SRV weight')),
          port: uint16(tokens.next('an SRV port')),
          target: domain('an SRV target name'),
        },
      };
      break;
    case 'SOA':
      record = {
        name,
        type,
        data: {
          mname: domain('the SOA primary server name'),
          rname: domain('the SOA mailbox name'),
          serial: uint32(tokens.next('the SOA serial')),
          refresh: parseTtl(tokens.next('the SOA refresh time')),
          retry: parseTtl(tokens.next('the SOA retry time')),
          expire: parseTtl(tokens.next('the SOA expire time')),
          minimum: parseTtl(tokens.next('the SOA minimum TTL')),
        },
      };
      break;
    case 'TXT': {
      const strings = [tokens.next('a TXT string').text];
      while (tokens.hasMore()) strings.push(tokens.next('a TXT string').text);
      record = { name, type, data: strings };
      break;
    }
  }
  tokens.end();
  return record;
}

/** Hands out an entry's tokens, with errors that say what was expected. */
class TokenReader {
  #index = 0;
  readonly #tokens: ZoneToken[];
  readonly #line: number;

  constructor(tokens: ZoneToken[], line: number) {
    this.#tokens = tokens;
    this.#line = line;
  }

  hasMore(): boolean {
    return this.#index < this.#tokens.length;
  }

  next(what: string): ZoneToken {
    const token = this.#tokens[this.#index++];
    if (!token) {
      const last = this.#tokens[this.#tokens.length - 1];
      throw new ZoneFileError(last?.line ?? this.#line, `expected ${what}, got end of record`);
    }
    return token;
  }

  end(): void {
    const extra = this.#tokens[this.#index];
    if (extra) throw new ZoneFileError(extra.line, `expected end of record, got '${extra.text}'`);
  }
}

/** A name as written, resolved against the origin; the result has no trailing dot. */
function resolveName(token: ZoneToken, origin: string | undefined): string {
  if (token.quoted) throw new ZoneFileError(token.line, `expected a domain name, got the quoted string "${token.text}"`);
  const text = token.text;
  if (text === '@') {
    if (origin === undefined) throw new ZoneFileError(token.line, "expected $ORIGIN before '@'");
    return origin;
  }
  if (text.endsWith('.')) return bareName(text);
  if (origin === undefined) throw new ZoneFileError(token.line, `expected $ORIGIN before the relative name '${text}'`);
  return origin === '' ? text : `${text}.${origin}`;
}

function bareName(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Seconds, or BIND's unit form (`1h30m`, `2d`). */
function parseTtl(token: ZoneToken): number {
  const text = token.text.toLowerCase();
  let seconds: number;
  if (/^\d+$/.test(text)) {
    seconds = Number(text);
  } else if (/^(\d+[smhdw])+$/.test(text)) {
    seconds = 0;
    for (const [, n, unit] of text.matchAll(/(\d+)([smhdw])/g)) seconds += Number(n) * (TTL_UNITS[unit as string] as number);
  } else {
    throw new ZoneFileError(token.line, `expected a TTL (seconds, or units like 1h30m), got '${token.text}'`);
  }
  if (token.quoted || seconds > MAX_TTL) throw new ZoneFileError(token.line, `expected a TTL up to ${MAX_TTL}, got '${token.text}'`);
  return seconds;
}

function uint16(token: ZoneToken): number {
  return integer(token, 0xffff);
}

function uint32(token: ZoneToken): number {
  return integer(token, 0xffffffff);
}

function integer(token: ZoneToken, max: number): number {
  const value = /^\d+$/.test(token.text) && !token.quoted ? Number(token.text) : Number.NaN;
  if (!(value <= max)) throw new ZoneFileError(token.line, `expected an integer from 0 to ${max}, got '${token.text}'`);
  return value;
}
