/**
 * CARDDAV:filter of an addressbook-query REPORT (RFC 6352 section 10.5):
 * parsed from the request into a plain structure, then evaluated against
 * each card's text. Supported: prop-filter on any property (EMAIL and FN are
 * what clients use) with `test` anyof/allof, is-not-defined, text-match with
 * match-type equals / contains / starts-with / ends-with, negate-condition,
 * and the collations i;unicode-casemap (default), i;ascii-casemap and
 * i;octet; param-filter with is-not-defined or a text-match on the
 * parameter's values.
 *
 * Cost: a query is bounded by its size (at most MAX_PROP_FILTERS
 * prop-filters and MAX_FILTER_TESTS tests in all, checked while parsing) and
 * by the cards (at most MAX_PROPERTY_INSTANCES of one property, checked at
 * PUT in core/vcard/parse.ts). Each card is read once, its properties grouped
 * by name and each value folded once per collation, so a card costs
 * O(tests × instances of the named properties) string comparisons; the
 * REPORT runs the cards in slices and stops at a time budget (report.ts).
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

/** prop-filters in one query: real clients send one to a handful (EMAIL, FN, TEL…). */
export const MAX_PROP_FILTERS = 50;
/** text-match and param-filter elements of a query, all prop-filters together. */
export const MAX_FILTER_TESTS = 100;

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
  let tests = 0;
  for (const pf of children(filter)) {
    if (props.length >= MAX_PROP_FILTERS) throw new FilterError('supported-filter', `too many prop-filters: at most ${MAX_PROP_FILTERS} in one query`);
    if (!is(pf, NS.card, 'prop-filter')) throw new FilterError('supported-filter', `unexpected element ${pf.localName} in filter`);
    const name = (pf.getAttribute('name') ?? '').trim().toUpperCase();
    if (!/^[A-Z0-9-]+$/.test(name)) throw new FilterError('supported-filter', 'prop-filter without a property name');
    const p: PropFilter = { name, test: testAttr(pf), isNotDefined: false, textMatches: [], paramFilters: [] };
    for (const c of children(pf)) {
      if ((is(c, NS.card, 'text-match') || is(c, NS.card, 'param-filter')) && ++tests > MAX_FILTER_TESTS) {
        throw new FilterError('supported-filter', `too many text-match and param-filter elements: at most ${MAX_FILTER_TESTS} in one query`);
      }
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
  // ASCII is its own decomposition, and its upper-then-lower is its lower case: the common case, cheaply.
  if (ASCII.test(s)) return s.toLowerCase();
  // RFC 5051 i;unicode-casemap: compatibility decomposition and case folding, approximated with upper-then-lower.
  return s.normalize('NFKD').toUpperCase().toLowerCase();
}

const ASCII = /^[\x00-\x7f]*$/;

function compare(v: string, t: string, m: TextMatch): boolean {
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

export function textMatches(value: string, m: TextMatch): boolean {
  return compare(fold(value, m.collation), fold(m.text, m.collation), m);
}

/** A card's instances of one property: values folded at most once per collation, however many tests read them. */
class Instances {
  readonly values: string[] = [];
  readonly params: Array<Map<string, string[]>> = [];
  private readonly folded = new Map<Collation, string[]>();
  as(collation: Collation): string[] {
    let v = this.folded.get(collation);
    if (v === undefined) {
      v = this.values.map((x) => fold(x, collation));
      this.folded.set(collation, v);
    }
    return v;
  }
}

/** A test on one property's instances: does any instance pass it? */
type InstanceTest = (p: Instances) => boolean;

function textTest(m: TextMatch): InstanceTest {
  const t = fold(m.text, m.collation);
  return (p) => p.as(m.collation).some((v) => compare(v, t, m));
}

function paramTest(f: ParamFilter): InstanceTest {
  const tm = f.textMatch;
  const t = tm ? fold(tm.text, tm.collation) : '';
  return (p) =>
    p.params.some((params) => {
      const values = params.get(f.name);
      if (f.isNotDefined) return values === undefined;
      if (values === undefined) return false;
      return tm === null || values.some((v) => compare(fold(v, tm.collation), t, tm));
    });
}

/** A filter ready to run on many cards: texts folded once, tests built once. */
export interface CompiledFilter {
  matches(vcard: string): boolean;
}

export function compileFilter(filter: CardFilter): CompiledFilter {
  const props = filter.props.map((pf) => ({
    name: pf.name,
    test: pf.test,
    isNotDefined: pf.isNotDefined,
    tests: [...pf.textMatches.map(textTest), ...pf.paramFilters.map(paramTest)],
  }));
  // Only the properties the filter names are kept from each card.
  const names = new Set(props.map((p) => p.name));
  return {
    matches(vcard) {
      if (props.length === 0) return true;
      const byName = new Map<string, Instances>();
      for (const p of cardProperties(vcard)) {
        if (!names.has(p.name)) continue;
        let list = byName.get(p.name);
        if (!list) {
          list = new Instances();
          byName.set(p.name, list);
        }
        list.values.push(p.value);
        list.params.push(p.params);
      }
      const one = (pf: (typeof props)[number]): boolean => {
        const named = byName.get(pf.name);
        if (pf.isNotDefined) return named === undefined;
        if (named === undefined) return false;
        if (pf.tests.length === 0) return true;
        // Each test holds if any instance of the property passes it; `test` combines the tests.
        return pf.test === 'allof' ? pf.tests.every((t) => t(named)) : pf.tests.some((t) => t(named));
      };
      return filter.test === 'allof' ? props.every(one) : props.some(one);
    },
  };
}

/** Whether a card passes the filter. An empty filter matches every card. */
export function cardMatches(vcard: string, filter: CardFilter): boolean {
  return compileFilter(filter).matches(vcard);
}
