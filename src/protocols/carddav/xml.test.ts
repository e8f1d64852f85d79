import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkXmlShape, children, el, escapeXml, MAX_XML_DEPTH, MAX_XML_ELEMENTS, NS, parseXml, qnameOf, XmlError } from './xml.ts';

test('parseXml is namespace-aware', () => {
  const doc = parseXml('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><x:y xmlns:x="urn:x"/></D:prop></D:propfind>');
  const root = doc.documentElement!;
  assert.deepEqual(qnameOf(root), { ns: NS.dav, name: 'propfind' });
  assert.deepEqual(qnameOf(children(children(root)[0]!)[0]!), { ns: 'urn:x', name: 'y' });
});

test('parseXml refuses DTDs (XXE, entity expansion), malformed and empty input', () => {
  const xxe = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d:propfind xmlns:d="DAV:">&x;</d:propfind>';
  assert.throws(() => parseXml(xxe), XmlError);
  const laughs = '<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>';
  assert.throws(() => parseXml(laughs), XmlError);
  assert.throws(() => parseXml('<d:propfind xmlns:d="DAV:"><d:prop></d:propfind>'), XmlError);
  assert.throws(() => parseXml('<a>&undefined;</a>'), XmlError);
  assert.throws(() => parseXml('   '), XmlError);
  assert.throws(() => parseXml('not xml at all'), XmlError);
});

test('the writer escapes text and attributes and keeps CRs through an XML parser', () => {
  assert.equal(escapeXml(`<a href="x">&'\u0001`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
  const out = el({ ns: NS.card, name: 'address-data' }, escapeXml('BEGIN:VCARD\r\nEND:VCARD\r\n'));
  const doc = parseXml(`<r xmlns:card="${NS.card}">${out}</r>`);
  assert.equal(doc.documentElement!.textContent, 'BEGIN:VCARD\r\nEND:VCARD\r\n');
  assert.equal(el({ ns: 'urn:other', name: 'p' }), '<x:p xmlns:x="urn:other"/>');
});

test('parseXml refuses deep nesting and too many elements before parsing, in linear time', () => {
  const nested = (n: number) => `<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop>${'<x>'.repeat(n)}${'</x>'.repeat(n)}</d:prop></d:set></d:propertyupdate>`;
  assert.doesNotThrow(() => parseXml(nested(MAX_XML_DEPTH - 3)));
  assert.throws(() => parseXml(nested(MAX_XML_DEPTH)), /nested too deeply/);
  const t0 = performance.now();
  assert.throws(() => parseXml(nested(70_000)), /nested too deeply/);
  assert.ok(performance.now() - t0 < 200);
  // Self-closing elements, comments, CDATA and quoted '>' do not nest.
  const flat = `<r a="x>y" b='<'>${'<e/>'.repeat(1000)}<!-- <a><a><a> --><![CDATA[<a><a>]]></r>`;
  assert.doesNotThrow(() => checkXmlShape(flat, 2, 2000));
  assert.throws(() => checkXmlShape(`<r>${'<e/>'.repeat(MAX_XML_ELEMENTS)}</r>`), /too many elements/);
});
