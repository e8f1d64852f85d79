/**
 * Reading a vCard's text: framing (one BEGIN/END:VCARD pair), unfolding,
 * content lines with their physical line numbers, the VERSION, parameters,
 * text values and UTC timestamps, each checked through ical.js. What the
 * lines mean to the policy is index-entries.ts.
 */
import ICAL from 'ical.js';

/** A malformed vCard. `line` is the 1-based physical line where the problem starts, if there is one. */
export class VCardError extends Error {
  readonly line: number | null;
  readonly problem: string;

  constructor(line: number | null, problem: string) {
    super(line === null ? `Malformed vCard: ${problem}` : `Malformed vCard, line ${line}: ${problem}`);
    this.name = 'VCardError';
    this.line = line;
    this.problem = problem;
  }
}

export interface VCardWarning {
  line: number;
  message: string;
}

/**
 * Instances of one property in a card. An address book query compares every
 * instance with every test of its filter (protocols/carddav/filter.ts), so a
 * card with 30,000 EMAIL lines made one REPORT cost seconds; no real contact
 * comes near this, and a KIND:group card with a thousand MEMBERs still fits.
 */
export const MAX_PROPERTY_INSTANCES = 1000;

/** One unfolded content line and where it started. */
export interface ContentLine {
  line: number;
  text: string;
  /** Lower-case property name without its group. */
  name: string;
  /** The value exactly as written (after unfolding), i.e. still escaped. */
  rawValue: string;
}

export const NAME = /^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)/;
export const excerpt = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** Splits into logical lines, undoing folding, keeping the physical line number of each start. */
export function unfold(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r\n|\n|\r/)
    .forEach((raw, i) => {
      if (raw === '') return; // blank lines carry nothing; tolerated (trailing ones are common)
      const first = raw[0];
      if (first === ' ' || first === '\t') {
        const prev = out[out.length - 1];
        if (!prev) throw new VCardError(i + 1, 'continuation line (starting with a space) before any property');
        prev.text += raw.slice(1);
        return;
      }
      out.push({ line: i + 1, text: raw });
    });
  return out;
}

/** Index of the ":" that separates name and parameters from the value (colons in quoted parameter values don't count). */
export function valueColon(text: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === ':' && !quoted) return i;
  }
  return -1;
}

export function contentLine(l: { line: number; text: string }): ContentLine {
  const colon = valueColon(l.text);
  if (colon < 0) throw new VCardError(l.line, `line without a ":" between name and value: ${excerpt(l.text)}`);
  const m = NAME.exec(l.text);
  const after = m ? l.text[m[0].length] : undefined;
  if (!m || (after !== ':' && after !== ';')) {
    throw new VCardError(l.line, `invalid property name: ${excerpt(l.text)}`);
  }
  return { line: l.line, text: l.text, name: (m[1] as string).toLowerCase(), rawValue: l.text.slice(colon + 1) };
}

/** Checks the framing (exactly one BEGIN/END:VCARD pair, nothing nested or after) and returns the properties inside. */
export function frame(text: string): { beginLine: number; props: ContentLine[] } {
  const lines = unfold(text);
  const first = lines[0];
  if (!first) throw new VCardError(null, 'empty input, expected BEGIN:VCARD');
  if (!/^BEGIN:VCARD[ \t]*$/i.test(first.text)) {
    throw new VCardError(first.line, `expected BEGIN:VCARD, found ${excerpt(first.text)}`);
  }
  const props: ContentLine[] = [];
  const counts = new Map<string, number>();
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i] as { line: number; text: string };
    if (/^END:VCARD[ \t]*$/i.test(l.text)) {
      const extra = lines[i + 1];
      if (extra) throw new VCardError(extra.line, 'content after END:VCARD (one vCard per resource)');
      return { beginLine: first.line, props };
    }
    const prop = contentLine(l);
    if (prop.name === 'begin' || prop.name === 'end') {
      throw new VCardError(l.line, `unexpected ${excerpt(l.text)} (nested or mismatched components are not supported)`);
    }
    const n = (counts.get(prop.name) ?? 0) + 1;
    if (n > MAX_PROPERTY_INSTANCES) {
      throw new VCardError(l.line, `more than ${MAX_PROPERTY_INSTANCES} ${prop.name.toUpperCase()} properties in one card`);
    }
    counts.set(prop.name, n);
    props.push(prop);
  }
  const last = lines[lines.length - 1] as { line: number };
  throw new VCardError(last.line, 'missing END:VCARD at the end of the card');
}

export function versionOf(props: ContentLine[], beginLine: number): '3.0' | '4.0' {
  const versions = props.filter((p) => p.name === 'version');
  const v = versions[0];
  if (!v) throw new VCardError(beginLine, 'missing VERSION property (3.0 or 4.0)');
  const second = versions[1];
  if (second) throw new VCardError(second.line, 'more than one VERSION property');
  const value = v.rawValue.trim();
  if (value !== '3.0' && value !== '4.0') {
    throw new VCardError(v.line, `unsupported VERSION ${excerpt(value)} (3.0 and 4.0 are accepted)`);
  }
  return value;
}

/**
 * Runs one property line through ical.js, which checks its parameters
 * (quoting, RFC 6868 escapes) and value syntax for the card's version.
 * @throws VCardError with the line number when ical.js rejects it.
 */
export function validate(prop: ContentLine, version: '3.0' | '4.0'): void {
  const designSet = version === '4.0' ? ICAL.design.vcard : ICAL.design.vcard3;
  try {
    ICAL.parse.property(prop.text, designSet);
  } catch (err) {
    throw new VCardError(prop.line, err instanceof Error ? err.message : String(err));
  }
}

/**
 * The value of a single-valued text property (UID, FN, EMAIL), unescaped in
 * one left-to-right pass. Not ical.js's value: it leaves `\;` escaped outside
 * compound values (RFC 6350 does not define it there), but vCard 3.0 requires
 * escaping `;` in all text and many vCard 4 writers keep doing it.
 */
export function textValue(prop: ContentLine, version: '3.0' | '4.0'): string {
  validate(prop, version);
  return unescapeText(prop.rawValue);
}

/** Inverse of escapeText; an unknown escape keeps its backslash. */
export function unescapeText(value: string): string {
  return value.replace(/\\([\\,;nN])/g, (_, c: string) => (c === 'n' || c === 'N' ? '\n' : c));
}

/** The parameters of a content line, names lower-cased, values without surrounding quotes. */
export function parameters(prop: ContentLine): Array<{ name: string; value: string }> {
  const head = prop.text.slice(0, valueColon(prop.text));
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of head) {
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts.slice(1).map((p) => {
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : p.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    return { name, value };
  });
}

const UNTIL_TS = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** Parses an RFC 6350 UTC timestamp `YYYYMMDDThhmmssZ`; null when invalid (including impossible dates). */
export function parseUtcTimestamp(value: string): Date | null {
  const m = utcParts(value);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m;
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (
    date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d ||
    date.getUTCHours() !== h || date.getUTCMinutes() !== mi || date.getUTCSeconds() !== s
  ) {
    return null;
  }
  return date;
}

function utcParts(value: string): [number, number, number, number, number, number] | null {
  const m = UNTIL_TS.exec(value);
  if (!m) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
}
