/**
 * RFC 8941 structured field values, just enough for HTTP Message Signatures
 * (RFC 9421): dictionaries whose members are items or inner lists, with
 * parameters; bare items of every RFC 8941 type. Parsing follows RFC 8941
 * section 4.2 (any syntax error fails the whole field, which the caller
 * reports); serialisation follows section 4.1, which is what RFC 9421 uses
 * to rebuild the `@signature-params` line from a parsed Signature-Input.
 */

export type BareItem = number | string | boolean | Buffer | Token;
export class Token {
  constructor(readonly value: string) {}
}
/** Parameters in their order of appearance (a repeated key keeps its first position, last value). */
export type Parameters = Map<string, BareItem>;
export interface Item {
  value: BareItem;
  params: Parameters;
}
export interface InnerList {
  items: Item[];
  params: Parameters;
}
export type Member = Item | InnerList;
export const isInnerList = (m: Member): m is InnerList => 'items' in m;

export class StructuredFieldError extends Error {}

/** Parses a dictionary field value. Duplicate keys are reported in `duplicates` (RFC 8941 would silently keep the last). */
export function parseDictionary(input: string): { members: Map<string, Member>; duplicates: Set<string> } {
  const p = new Parser(input);
  const members = new Map<string, Member>();
  const duplicates = new Set<string>();
  p.skipSp();
  while (!p.done()) {
    const key = p.key();
    let member: Member;
    if (p.peek() === '=') {
      p.pos++;
      member = p.peek() === '(' ? p.innerList() : p.item();
    } else {
      member = { value: true, params: p.parameters() };
    }
    if (members.has(key)) duplicates.add(key);
    members.set(key, member);
    p.skipOws();
    if (p.done()) break;
    p.expect(',');
    p.skipOws();
    if (p.done()) throw new StructuredFieldError('trailing comma');
  }
  return { members, duplicates };
}

/**
 * The token patterns, sticky: matched at the parser's position in place, where a copy of the
 * rest of the field per token (slice, then an anchored match) was a measurable share of
 * verifying a TWM request (bench/twm-stranger-cost.ts).
 */
const KEY = /[a-z*][a-z0-9_\-.*]*/y;
const NUMBER = /-?(?:\d{1,12}\.\d{1,3}|\d{1,15})/y;
const BYTES = /:([A-Za-z0-9+/]*={0,2}):/y;
const BOOLEAN = /\?([01])/y;
const TOKEN = /[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*/y;

class Parser {
  pos = 0;
  constructor(private readonly s: string) {}

  done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  expect(c: string): void {
    if (this.s[this.pos] !== c) throw new StructuredFieldError(`expected "${c}" at ${this.pos}`);
    this.pos++;
  }
  skipSp(): void {
    while (this.s[this.pos] === ' ') this.pos++;
  }
  skipOws(): void {
    while (this.s[this.pos] === ' ' || this.s[this.pos] === '\t') this.pos++;
  }

  /** `re` (sticky) matched at the current position, or null. */
  sticky(re: RegExp): RegExpExecArray | null {
    re.lastIndex = this.pos;
    return re.exec(this.s);
  }

  key(): string {
    const m = this.sticky(KEY);
    if (!m) throw new StructuredFieldError(`expected a key at ${this.pos}`);
    this.pos += m[0].length;
    return m[0];
  }

  parameters(): Parameters {
    const params: Parameters = new Map();
    while (this.peek() === ';') {
      this.pos++;
      this.skipSp();
      const key = this.key();
      let value: BareItem = true;
      if (this.peek() === '=') {
        this.pos++;
        value = this.bareItem();
      }
      params.set(key, value);
    }
    return params;
  }

  item(): Item {
    const value = this.bareItem();
    return { value, params: this.parameters() };
  }

  innerList(): InnerList {
    this.expect('(');
    const items: Item[] = [];
    for (;;) {
      this.skipSp();
      if (this.peek() === ')') {
        this.pos++;
        return { items, params: this.parameters() };
      }
      items.push(this.item());
      const c = this.peek();
      if (c !== ' ' && c !== ')') throw new StructuredFieldError(`bad inner list at ${this.pos}`);
    }
  }

  bareItem(): BareItem {
    const c = this.peek();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    if (c === '"') return this.string();
    if (c === ':') return this.bytes();
    if (c === '?') return this.boolean();
    if (c === '*' || /[A-Za-z]/.test(c)) return this.token();
    throw new StructuredFieldError(`expected an item at ${this.pos}`);
  }

  number(): number {
    const m = this.sticky(NUMBER);
    if (!m) throw new StructuredFieldError(`bad number at ${this.pos}`);
    this.pos += m[0].length;
    return Number(m[0]);
  }

  string(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      const c = this.s[this.pos++];
      if (c === undefined) throw new StructuredFieldError('unterminated string');
      if (c === '"') return out;
      if (c === '\\') {
        const next = this.s[this.pos++];
        if (next !== '"' && next !== '\\') throw new StructuredFieldError('bad escape in string');
        out += next;
      } else if (c < ' ' || c > '~') {
        throw new StructuredFieldError('bad character in string');
      } else {
        out += c;
      }
    }
  }

  bytes(): Buffer {
    const m = this.sticky(BYTES);
    if (!m) throw new StructuredFieldError(`bad byte sequence at ${this.pos}`);
    this.pos += m[0].length;
    return Buffer.from(m[1] ?? '', 'base64');
  }

  boolean(): boolean {
    const m = this.sticky(BOOLEAN);
    if (!m) throw new StructuredFieldError(`bad boolean at ${this.pos}`);
    this.pos += 2;
    return m[1] === '1';
  }

  token(): Token {
    const m = this.sticky(TOKEN);
    if (!m) throw new StructuredFieldError(`bad token at ${this.pos}`);
    this.pos += m[0].length;
    return new Token(m[0]);
  }
}

export function serializeBareItem(v: BareItem): string {
  if (v instanceof Token) return v.value;
  if (Buffer.isBuffer(v)) return `:${v.toString('base64')}:`;
  if (typeof v === 'boolean') return v ? '?1' : '?0';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    // RFC 8941 4.1.5: at most three fractional digits, at least one.
    const fixed = (Math.round(v * 1000) / 1000).toString();
    return fixed.includes('.') ? fixed : `${fixed}.0`;
  }
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export function serializeParameters(params: Parameters): string {
  let out = '';
  for (const [key, value] of params) out += value === true ? `;${key}` : `;${key}=${serializeBareItem(value)}`;
  return out;
}

export function serializeInnerList(list: InnerList): string {
  const items = list.items.map((i) => serializeBareItem(i.value) + serializeParameters(i.params)).join(' ');
  return `(${items})${serializeParameters(list.params)}`;
}
