import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cardMatches, cardProperties, FilterError, parseFilter, textMatches, type CardFilter } from './filter.ts';
import { parseXml } from './xml.ts';

const CARD = [
  'BEGIN:VCARD',
  'VERSION:3.0',
  'UID:1',
  'FN:Cyrus Daboo',
  'item1.EMAIL;TYPE=INTERNET,WORK:cyrus@Example.COM',
  'EMAIL;TYPE=HOME:daboo@home.example',
  'NOTE:line one\\nline two\\, with comma',
  ' folded',
  'END:VCARD',
  '',
].join('\r\n');

const filter = (inner: string, test = 'anyof'): CardFilter =>
  parseFilter(parseXml(`<C:filter xmlns:C="urn:ietf:params:xml:ns:carddav" test="${test}">${inner}</C:filter>`).documentElement!);

test('cardProperties unfolds, drops groups, splits parameters and unescapes', () => {
  const props = cardProperties(CARD);
  const email = props.find((p) => p.name === 'EMAIL');
  assert.equal(email?.value, 'cyrus@Example.COM');
  assert.deepEqual(email?.params.get('TYPE'), ['INTERNET', 'WORK']);
  assert.equal(props.find((p) => p.name === 'NOTE')?.value, 'line one\nline two, with commafolded');
});

test('text-match: the four match types, collations and negation', () => {
  const m = (text: string, matchType: 'equals' | 'contains' | 'starts-with' | 'ends-with', collation: 'i;unicode-casemap' | 'i;ascii-casemap' | 'i;octet' = 'i;unicode-casemap', negate = false) =>
    textMatches('Cyrus Daboo', { text, matchType, collation, negate });
  assert.equal(m('daboo', 'contains'), true);
  assert.equal(m('cyrus daboo', 'equals'), true);
  assert.equal(m('cyrus', 'starts-with'), true);
  assert.equal(m('boo', 'ends-with'), true);
  assert.equal(m('boo', 'starts-with'), false);
  assert.equal(m('daboo', 'contains', 'i;octet'), false);
  assert.equal(m('Daboo', 'contains', 'i;octet'), true);
  assert.equal(m('DABOO', 'contains', 'i;ascii-casemap'), true);
  assert.equal(m('daboo', 'contains', 'i;unicode-casemap', true), false);
  assert.equal(textMatches('Jürgen', { text: 'JÜRGEN', matchType: 'equals', collation: 'i;unicode-casemap', negate: false }), true);
});

test('prop-filters on EMAIL and FN, anyof and allof, is-not-defined, param-filter', () => {
  const tm = (text: string, type = 'contains', negate = 'no') => `<C:text-match match-type="${type}" negate-condition="${negate}">${text}</C:text-match>`;
  assert.equal(cardMatches(CARD, filter(`<C:prop-filter name="EMAIL">${tm('example.com', 'ends-with')}</C:prop-filter>`)), true);
  assert.equal(cardMatches(CARD, filter(`<C:prop-filter name="email">${tm('nobody@')}</C:prop-filter>`)), false);
  assert.equal(cardMatches(CARD, filter(`<C:prop-filter name="FN">${tm('Cyrus Daboo', 'equals')}</C:prop-filter>`)), true);
  assert.equal(cardMatches(CARD, filter(`<C:prop-filter name="FN">${tm('daboo', 'contains', 'yes')}</C:prop-filter>`)), false);
  // Negation is per property instance: the home address does not contain "example.com".
  assert.equal(cardMatches(CARD, filter(`<C:prop-filter name="EMAIL">${tm('example.com', 'contains', 'yes')}</C:prop-filter>`)), true);
  const both = `<C:prop-filter name="FN">${tm('cyrus')}</C:prop-filter><C:prop-filter name="EMAIL">${tm('nobody')}</C:prop-filter>`;
  assert.equal(cardMatches(CARD, filter(both, 'anyof')), true);
  assert.equal(cardMatches(CARD, filter(both, 'allof')), false);
  assert.equal(cardMatches(CARD, filter('<C:prop-filter name="TEL"><C:is-not-defined/></C:prop-filter>')), true);
  assert.equal(cardMatches(CARD, filter('<C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>')), false);
  assert.equal(cardMatches(CARD, filter('<C:prop-filter name="EMAIL"><C:param-filter name="TYPE"><C:text-match match-type="equals">home</C:text-match></C:param-filter></C:prop-filter>')), true);
  assert.equal(cardMatches(CARD, filter('<C:prop-filter name="FN"><C:param-filter name="TYPE"><C:is-not-defined/></C:param-filter></C:prop-filter>')), true);
  assert.equal(cardMatches(CARD, filter('')), true, 'an empty filter matches all');
});

test('unsupported collations and match types are refused with the precondition to report', () => {
  assert.throws(() => filter('<C:prop-filter name="FN"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>'), (e: unknown) => e instanceof FilterError && e.precondition === 'supported-collation');
  assert.throws(() => filter('<C:prop-filter name="FN"><C:text-match match-type="regex">x</C:text-match></C:prop-filter>'), (e: unknown) => e instanceof FilterError && e.precondition === 'supported-filter');
  assert.throws(() => filter('<C:comp-filter name="VCARD"/>'), FilterError);
});
