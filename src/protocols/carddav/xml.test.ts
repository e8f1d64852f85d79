import { test } from 'node:test';
import assert from 'node:assert/strict';
import { children, el, escapeXml, NS, parseXml, qnameOf, XmlError } from './xml.ts';

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
