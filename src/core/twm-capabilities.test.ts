import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capabilitiesToJson, chooseVersion, parseCapabilities } from './twm-capabilities.ts';

const parse = (text: string | Buffer) => parseCapabilities(Buffer.isBuffer(text) ? text : Buffer.from(text));

test('the printed document parses; unknown members and unknown versions are kept apart', () => {
  assert.deepEqual(parse('{ "versions": ["TWM1"], "max_size": 52428800 }'), { versions: ['TWM1'], maxSize: 52428800 });
  assert.deepEqual(parse('{"versions":["TWM2","TWM1"],"x-future":{"a":1}}'), { versions: ['TWM2', 'TWM1'] });
  assert.equal(capabilitiesToJson({ versions: ['TWM1'], maxSize: 10 }).toString(), '{"versions":["TWM1"],"max_size":10}');
});

// Malformed documents: each is treated as absent (null).
const MALFORMED: Array<[string, string | Buffer]> = [
  ['empty', ''],
  ['not JSON', 'versions: TWM1'],
  ['an array', '["TWM1"]'],
  ['null', 'null'],
  ['no versions', '{"max_size":1}'],
  ['versions empty', '{"versions":[]}'],
  ['versions a string', '{"versions":"TWM1"}'],
  ['a version in lower case', '{"versions":["twm1"]}'],
  ['a version 0', '{"versions":["TWM0"]}'],
  ['a version with a suffix', '{"versions":["TWM1-draft"]}'],
  ['a version a number', '{"versions":[1]}'],
  ['a duplicate version', '{"versions":["TWM1","TWM1"]}'],
  ['17 versions', JSON.stringify({ versions: Array.from({ length: 17 }, (_, i) => `TWM${i + 1}`) })],
  ['max_size 0', '{"versions":["TWM1"],"max_size":0}'],
  ['max_size fractional', '{"versions":["TWM1"],"max_size":1.5}'],
  ['max_size a string', '{"versions":["TWM1"],"max_size":"50M"}'],
  ['max_size above 2^53', '{"versions":["TWM1"],"max_size":9007199254740993}'],
  ['a duplicate member', '{"versions":["TWM1"],"versions":["TWM2"]}'],
  ['a byte-order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"versions":["TWM1"]}')])],
  ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
  ['larger than 4096 octets', `{"versions":["TWM1"],"pad":"${'x'.repeat(4100)}"}`],
];
for (const [what, text] of MALFORMED) test(`capability document treated as absent: ${what}`, () => assert.equal(parse(text), null));

test('version choice: the first listed that we speak; TWM1 when absent or none', () => {
  assert.equal(chooseVersion(null), 'TWM1');
  assert.equal(chooseVersion({ versions: ['TWM3', 'TWM1'] }), 'TWM1');
  assert.equal(chooseVersion({ versions: ['TWM3'] }), 'TWM1');
});

test('fuzz: random mutations of a valid document never throw, and whatever parses is well-formed', () => {
  let seed = 0x51ab7;
  const rnd = (n: number) => {
    seed = (Math.imul(seed ^ (seed >>> 13), 0x5bd1e995) + 0x3c6ef372) >>> 0;
    return seed % n;
  };
  const base = Buffer.from('{"versions":["TWM2","TWM1"],"max_size":52428800,"note":"x"}');
  const pieces = ['"', ',', '[', ']', '{', '}', ':', '0', '-', 'e9', 'null', '"TWM1"', '\\u0000', '\u00ff'];
  let parsed = 0;
  for (let i = 0; i < 5000; i++) {
    let s = base.toString('latin1');
    for (let k = 1 + rnd(4); k > 0; k--) {
      const at = rnd(s.length + 1);
      const op = rnd(3);
      if (op === 0) s = s.slice(0, at) + s.slice(at + 1);
      else if (op === 1) s = s.slice(0, at) + pieces[rnd(pieces.length)] + s.slice(at);
      else s = s.slice(0, at) + String.fromCharCode(rnd(256)) + s.slice(at + 1);
    }
    const doc = parseCapabilities(Buffer.from(s, 'latin1'));
    if (doc === null) continue;
    parsed++;
    assert.ok(doc.versions.length > 0 && doc.versions.every((v) => /^TWM[1-9][0-9]{0,3}$/.test(v)));
    assert.ok(doc.maxSize === undefined || (Number.isSafeInteger(doc.maxSize) && doc.maxSize > 0));
  }
  assert.ok(parsed > 0, 'some mutations stay valid (the fuzz reaches the success path)');
});
