/**
 * CARDDAV:filter of an addressbook-query REPORT (RFC 6352 section 10.5):
 * parsed from the request into a plain structure, then evaluated against
 * each card's text. Supported: prop-filter on any property (EMAIL and FN are
 * what clients use) with `test` anyof/allof, is-not-defined, text-match with
 * match-type equals / contains / starts-with / ends-with, negate-condition,
 * and the collations i;unicode-casemap (default), i;ascii-casemap and
 * i;octet; param-filter with is-not-defined or a text-match on the
 * parameter's values.
 */
import type { Element } from '@xmldom/xmldom';
import { children, is, NS, textOf } from './xml.ts';

export type MatchType = 'equals' | 'contains' | 'starts-with' | 'ends-with';
export type Collation = 'i;unicode-casemap' | 'i;ascii-casemap' | 'i;octet';

export interface TextMatch {
  text: string;
  matchType: MatchType;
  collation: Collation;
  negate: boolean;
}

export interface ParamFilter {
  name: string;
  isNotDefined: boolean;
  textMatch: TextMatch | null;
}

export interface PropFilter {
  /** Upper-case property name without group. */
  name: string;
  test: 'anyof' | 'allof';
  isNotDefined: boolean;
  textMatches: TextMatch[];
  paramFilters: ParamFilter[];
}

export interface CardFilter {
  test: 'anyof' | 'allof';
  props: PropFilter[];
}

/** A filter this server cannot evaluate: the precondition element RFC 6352 names for it. */
export class FilterError extends Error {
  constructor(
    readonly precondition: 'supported-filter' | 'supported-collation',
    message: string,
  ) {
    super(message);
  }
}

const MATCH_TYPES: readonly string[] = ['equals', 'contains', 'starts-with', 'ends-with'];
const COLLATIONS: readonly string[] = ['i;unicode-casemap', 'i;ascii-casemap', 'i;octet'];

function testAttr(e: Element): 'anyof' | 'allof' {
  const t = e.getAttribute('test') ?? 'anyof';
  if (t !== 'anyof' && t !== 'allof') throw new FilterError('supported-filter', `unknown test "${t}"`);
  return t;
}

function textMatch(e: Element): TextMatch {
  const matchType = e.getAttribute('match-type') || 'contains';
  if (!MATCH_TYPES.includes(matchType)) throw new FilterError('supported-filter', `unsupported match-type "${matchType}"`);
  const collation = e.getAttribute('collation') || 'i;unicode-casemap';
  if (!COLLATIONS.includes(collation)) throw new FilterError('supported-collation', `unsupported collation "${collation}"`);
  const negate = e.getAttribute('negate-condition') ?? 'no';
  if (negate !== 'yes' && negate !== 'no') throw new FilterError('supported-filter', `negate-condition must be yes or no`);
  return { text: textOf(e), matchType: matchType as MatchType, collation: collation as Collation, negate: negate === 'yes' };
}

/** Parses a CARDDAV:filter element. @throws FilterError */
export function parseFilter(filter: Element): CardFilter {
  const props: PropFilter[] = [];
  for (const pf of children(filter)) {
    if (!is(pf, NS.card, 'prop-filter')) throw new FilterError('supported-filter', `unexpected element ${pf.localName} in filter`);
    const name = (pf.getAttribute('name') ?? '').trim().toUpperCase();
    if (!/^[A-Z0-9-]+$/.test(name)) throw new FilterError('supported-filter', 'prop-filter without a property name');
    const p: PropFilter = { name, test: testAttr(pf), isNotDefined: false, textMatches: [], paramFilters: [] };
    for (const c of children(pf)) {
      if (is(c, NS.card, 'is-not-defined')) p.isNotDefined = true;
      else if (is(c, NS.card, 'text-match')) p.textMatches.push(textMatch(c));
      else if (is(c, NS.card, 'param-filter')) {
        const pname = (c.getAttribute('name') ?? '').trim().toUpperCase();
        if (!/^[A-Z0-9-]+$/.test(pname)) throw new FilterError('supported-filter', 'param-filter without a parameter name');
        const inner = children(c);
        const tm = inner.find((x) => is(x, NS.card, 'text-match'));
        p.paramFilters.push({ name: pname, isNotDefined: inner.some((x) => is(x, NS.card, 'is-not-defined')), textMatch: tm ? textMatch(tm) : null });
      } else throw new FilterError('supported-filter', `unexpected element ${c.localName} in prop-filter`);
    }
    props.push(p);
  }
  return { test: testAttr(filter), props };
}

// ---------------------------------------------------------------- evaluation

interface CardProp {
  name: string;
  params: Map<string, string[]>;
  value: string;
}

/** The card's properties: unfolded, group removed, parameters split, value unescaped (enough for matching). */
export function cardProperties(vcard: string): CardProp[] {
  const lines: string[] = [];
  for (const raw of vcard.split(/\r\n|\n|\r/)) {
    if ((raw.startsWith(' ') || raw.startsWith('\t')) && lines.length > 0) lines[lines.length - 1] += raw.slice(1);
    else if (raw !== '') lines.push(raw);
  }
  const out: CardProp[] = [];
  for (const line of lines) {
    let quoted = false;
    let colon = -1;
    for (let i = 0; i < line.length; i++) {
      if (line[i] === '"') quoted = !quoted;
      else if (line[i] === ':' && !quoted) {
        colon = i;
        break;
      }
    }
    if (colon < 0) continue;
    const [nameWithGroup = '', ...paramTexts] = splitUnquoted(line.slice(0, colon), ';');
    const name = nameWithGroup.replace(/^.*\./, '').toUpperCase();
    if (name === 'BEGIN' || name === 'END') continue;
    const params = new Map<string, string[]>();
    for (const pt of paramTexts) {
      const eq = pt.indexOf('=');
      const pname = (eq < 0 ? 'TYPE' : pt.slice(0, eq)).toUpperCase(); // vCard 2.1-style bare values are types
      const values = splitUnquoted(eq < 0 ? pt : pt.slice(eq + 1), ',').map((v) => v.replace(/^"(.*)"$/, '$1'));
      params.set(pname, [...(params.get(pname) ?? []), ...values]);
    }
    const value = line.slice(colon + 1).replace(/\\([\\,;nN:])/g, (_, c: string) => (c === 'n' || c === 'N' ? '\n' : c));
    out.push({ name, params, value });
  }
  return out;
}

function splitUnquoted(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of s) {
    if (c === '"') quoted = !quoted;
    if (c === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function fold(s: string, collation: Collation): string {
  if (collation === 'i;octet') return s;
  if (collation === 'i;ascii-casemap') return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  // RFC 5051 i;unicode-casemap: compatibility decomposition and case folding, approximated with upper-then-lower.
  return s.normalize('NFKD').toUpperCase().toLowerCase();
}

export function textMatches(value: string, m: TextMatch): boolean {
  const v = fold(value, m.collation);
  const t = fold(m.text, m.collation);
  let hit: boolean;
  switch (m.matchType) {
    case 'equals':
      hit = v === t;
      break;
    case 'contains':
      hit = v.includes(t);
      break;
    case 'starts-with':
      hit = v.startsWith(t);
      break;
    case 'ends-with':
      hit = v.endsWith(t);
      break;
  }
  return m.negate ? !hit : hit;
}

function paramMatches(prop: CardProp, pf: ParamFilter): boolean {
  const values = prop.params.get(pf.name);
  if (pf.isNotDefined) return values === undefined;
  if (values === undefined) return false;
  const tm = pf.textMatch;
  return tm === null || values.some((v) => textMatches(v, tm));
}

function propFilterMatches(props: CardProp[], pf: PropFilter): boolean {
  const named = props.filter((p) => p.name === pf.name);
  if (pf.isNotDefined) return named.length === 0;
  if (named.length === 0) return false;
  const tests: Array<(p: CardProp) => boolean> = [
    ...pf.textMatches.map((tm) => (p: CardProp) => textMatches(p.value, tm)),
    ...pf.paramFilters.map((f) => (p: CardProp) => paramMatches(p, f)),
  ];
  if (tests.length === 0) return true;
  // Each test holds if any instance of the property passes it; `test` combines the tests.
  const results = tests.map((t) => named.some(t));
  return pf.test === 'allof' ? results.every(Boolean) : results.some(Boolean);
}

/** Whether a card passes the filter. An empty filter matches every card. */
export function cardMatches(vcard: string, filter: CardFilter): boolean {
  if (filter.props.length === 0) return true;
  const props = cardProperties(vcard);
  const results = filter.props.map((pf) => propFilterMatches(props, pf));
  return filter.test === 'allof' ? results.every(Boolean) : results.some(Boolean);
}
