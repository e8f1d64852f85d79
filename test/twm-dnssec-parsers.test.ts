/**
 * The parsers of validated discovery (docs/protocol.md 3.5, 3.6): TLSA
 * rdata, the `_twoway-policy` TXT record and the policy file, and DANE's
 * chain check. Table cases for the grammar, then seeded fuzzing: whatever
 * the input, a parser returns a value of its documented shape or "invalid",
 * never throws, and anything it accepts obeys the grammar's limits.
 *
 * Seeded: repeat with FUZZ_SEED; FUZZ_ITERATIONS makes it longer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createPrivateCa, issueCertificate } from '../src/config/private-ca.ts';
import { daneVerify, parseTlsa, usableTlsa } from '../src/core/dane.ts';
import { keyPin, keyPinned, parsePolicyFile, parsePolicyTxt, targetAllowed } from '../src/core/twm-policy.ts';
import { oncePerDomainPerHour } from '../src/twm-dnssec-wiring.ts';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText } from './helpers/fuzz.ts';

const GOOD_POLICY = 'version: TWMPOLv1\nmode: enforce\ntarget: twm.example.com\ntarget: *.mx.example.com\nkey: twm1 sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nmax_age: 86400\n';

describe('TWM policy TXT record (3.6)', () => {
  it('accepts exactly one v=TWMPOL1 record with an id', () => {
    assert.equal(parsePolicyTxt([['v=TWMPOL1; id=20261204']]), '20261204');
    assert.equal(parsePolicyTxt([['v=TWMPOL1;id=abc;']]), 'abc');
    assert.equal(parsePolicyTxt([['v=TWMPOL1; ', 'id=x1'], ['v=spf1 -all']]), 'x1');
  });
  it('refuses anything else', () => {
    for (const txt of [[], [['v=TWMPOL1']], [['v=TWMPOL1; id=']], [['v=TWMPOL1; id=a-b']], [['v=TWMPOL10; id=1']], [['v=TWMPOL1; id=1'], ['v=TWMPOL1; id=2']], [['v=TWMPOL1; id=1; x=2']], [[`v=TWMPOL1; id=${'a'.repeat(33)}`]], [['V=TWMPOL1; id=1']]]) {
      assert.equal(parsePolicyTxt(txt), null, JSON.stringify(txt));
    }
  });
});

describe('TWM policy file (3.6)', () => {
  it('parses the fields; unknown fields are ignored', () => {
    const r = parsePolicyFile(GOOD_POLICY.replace('max_age', 'future_field: 1\nmax_age').replace(/\n/g, '\r\n'));
    assert.ok(r.ok);
    assert.equal(r.policy.mode, 'enforce');
    assert.deepEqual(r.policy.targets, ['twm.example.com', '*.mx.example.com']);
    assert.equal(r.policy.maxAge, 86400);
    assert.ok(targetAllowed(r.policy, 'TWM.example.com.'));
    assert.ok(targetAllowed(r.policy, 'a.mx.example.com'));
    assert.ok(!targetAllowed(r.policy, 'a.b.mx.example.com'), 'a wildcard covers one label');
    assert.ok(!targetAllowed(r.policy, 'mx.example.com'));
    assert.equal(keyPinned(r.policy, 'twm1', Buffer.alloc(0)), 'pinned');
    assert.equal(keyPinned(r.policy, 'twm1', Buffer.alloc(32)), 'not-pinned');
    assert.equal(keyPin(Buffer.alloc(0)), 'sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });
  it('refuses what is outside the grammar', () => {
    const bad = [
      GOOD_POLICY.replace('version: TWMPOLv1\n', ''),
      `mode: enforce\n${GOOD_POLICY.replace('mode: enforce\n', '')}`,
      GOOD_POLICY.replace('mode: enforce', 'mode: strict'),
      GOOD_POLICY.replace('mode: enforce', 'mode: enforce\nmode: testing'),
      GOOD_POLICY.replace('max_age: 86400', 'max_age: 31557601'),
      GOOD_POLICY.replace('max_age: 86400', 'max_age: -1'),
      GOOD_POLICY.replace('max_age: 86400\n', ''),
      GOOD_POLICY.replace('target: twm.example.com', 'target: *.*.example.com'),
      GOOD_POLICY.replace('target: twm.example.com', 'target: localhost'),
      GOOD_POLICY.replace(/target: .*\n/g, ''),
      GOOD_POLICY.replace('sha256/', 'sha1/'),
      GOOD_POLICY.replace('key: twm1 ', 'key: '),
      GOOD_POLICY.replace('mode: enforce', 'mode enforce'),
      `${GOOD_POLICY}${'x'.repeat(70_000)}`,
    ];
    for (const text of bad) assert.equal(parsePolicyFile(text).ok, false, text.slice(0, 200));
  });
  it('mode none needs no target', () => {
    assert.ok(parsePolicyFile('version: TWMPOLv1\nmode: none\nmax_age: 60\n').ok);
  });
});

describe('TLSA and DANE (3.5)', () => {
  const ca = createPrivateCa('dane test CA');
  const pair = issueCertificate(ca, ['twm.example.com']);
  const leaf = new X509Certificate(pair.cert);
  const root = new X509Certificate(ca.cert);
  const spki = (c: X509Certificate) => c.publicKey.export({ type: 'spki', format: 'der' });
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();
  const tlsa = (usage: number, selector: number, matchingType: number, certificate: Buffer) => ({ usage, selector, matchingType, certificate });
  const now = new Date();

  it('parses strictly and keeps only DANE-TA(2) and DANE-EE(3)', () => {
    assert.ok(parseTlsa(tlsa(3, 1, 1, Buffer.alloc(32))));
    assert.equal(parseTlsa(tlsa(3, 1, 1, Buffer.alloc(31))), null, 'SHA-256 is 32 octets');
    assert.equal(parseTlsa(tlsa(3, 1, 2, Buffer.alloc(32))), null, 'SHA-512 is 64 octets');
    assert.equal(parseTlsa(tlsa(4, 1, 1, Buffer.alloc(32))), null);
    assert.equal(parseTlsa(tlsa(3, 2, 1, Buffer.alloc(32))), null);
    assert.equal(parseTlsa(tlsa(3, 0, 0, Buffer.alloc(0))), null);
    assert.equal(parseTlsa({ usage: '3', selector: 1, matchingType: 1, certificate: Buffer.alloc(32) }), null);
    assert.deepEqual(usableTlsa([tlsa(1, 1, 1, Buffer.alloc(32)), tlsa(0, 0, 1, Buffer.alloc(32))]), []);
    assert.equal(usableTlsa([tlsa(2, 0, 1, Buffer.alloc(32)), null, 'x']).length, 1);
  });

  it('DANE-EE: the leaf key or certificate matches, whatever the name', () => {
    assert.deepEqual(daneVerify([leaf.raw], [parseTlsa(tlsa(3, 1, 1, sha256(spki(leaf))))!], 'other.example', now), { ok: true, usage: 3 });
    assert.deepEqual(daneVerify([leaf.raw], [parseTlsa(tlsa(3, 0, 0, leaf.raw))!], 'other.example', now), { ok: true, usage: 3 });
    assert.equal(daneVerify([leaf.raw], [parseTlsa(tlsa(3, 1, 1, Buffer.alloc(32, 1)))!], 'twm.example.com', now).ok, false);
  });

  it('DANE-TA: the anchor is in the chain, the chain verifies and the leaf names the target', () => {
    const ta = [parseTlsa(tlsa(2, 1, 1, sha256(spki(root))))!];
    assert.deepEqual(daneVerify([leaf.raw, root.raw], ta, 'twm.example.com', now), { ok: true, usage: 2 });
    assert.equal(daneVerify([leaf.raw, root.raw], ta, 'evil.example.com', now).ok, false, 'name checked');
    assert.equal(daneVerify([leaf.raw], ta, 'twm.example.com', now).ok, false, 'anchor not presented');
    const other = new X509Certificate(createPrivateCa('another CA').cert);
    assert.equal(daneVerify([leaf.raw, other.raw], [parseTlsa(tlsa(2, 0, 1, sha256(other.raw)))!], 'twm.example.com', now).ok, false, 'chain must verify');
  });

  it('problems are logged once per domain per hour', () => {
    const said: string[] = [];
    let t = 0;
    const log = oncePerDomainPerHour((d, p) => said.push(`${d}: ${p}`), () => t);
    log('a.example', 'one');
    log('a.example', 'two');
    log('b.example', 'three');
    t = 3_599_999;
    log('a.example', 'four');
    t = 3_600_000;
    log('a.example', 'five');
    assert.deepEqual(said, ['a.example: one', 'b.example: three', 'a.example: five']);
  });
});

describe('fuzzing the discovery parsers', () => {
  const seed = fuzzSeed();

  it('policy files: never throws; what it accepts is within the grammar', async (t) => {
    t.diagnostic(`FUZZ_SEED=${seed}`);
    await forEachCase(seed, fuzzIterations(2000), (rng) => {
      const text = mutateText(rng, GOOD_POLICY, 6);
      const r = parsePolicyFile(text);
      if (!r.ok) return;
      assert.ok(['enforce', 'testing', 'none'].includes(r.policy.mode));
      assert.ok(Number.isInteger(r.policy.maxAge) && r.policy.maxAge >= 0 && r.policy.maxAge <= 31_557_600);
      for (const target of r.policy.targets) assert.match(target, /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+$/);
      for (const pins of r.policy.keys.values()) for (const p of pins) assert.equal(Buffer.from(p, 'base64').length, 32);
    });
  });

  it('policy TXT records: never throws; an accepted id is 1-32 alphanumerics', async (t) => {
    t.diagnostic(`FUZZ_SEED=${seed}`);
    await forEachCase(seed + 1, fuzzIterations(2000), (rng) => {
      const records = Array.from({ length: rng.int(3) + 1 }, () => [mutateText(rng, 'v=TWMPOL1; id=20261204', 4)]);
      const id = parsePolicyTxt(records);
      if (id !== null) assert.match(id, /^[A-Za-z0-9]{1,32}$/);
    });
  });

  it('TLSA rdata: never throws; an accepted record has a consistent digest length', async (t) => {
    t.diagnostic(`FUZZ_SEED=${seed}`);
    await forEachCase(seed + 2, fuzzIterations(2000), (rng) => {
      const pick = () => (rng.int(4) === 0 ? [-1, 256, 1.5, '1', null][rng.int(5)] : rng.int(5));
      const data = rng.int(10) === 0 ? 'not bytes' : Buffer.alloc([0, 1, 31, 32, 33, 64, 65, 300][rng.int(8)] ?? 0, rng.int(256));
      const r = parseTlsa({ usage: pick(), selector: pick(), matchingType: pick(), certificate: data });
      if (!r) return;
      assert.ok(r.usage <= 3 && r.selector <= 1 && r.matchingType <= 2 && r.data.length > 0);
      if (r.matchingType === 1) assert.equal(r.data.length, 32);
      if (r.matchingType === 2) assert.equal(r.data.length, 64);
    });
  });
});
