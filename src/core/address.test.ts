import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  domainOf,
  isSubdomainOf,
  normaliseDomain,
  organizationalDomain,
  parseAddress,
  parseAnyAddress,
  parseSenderSpec,
  senderKey,
  subaddressBase,
} from './address.ts';
import { ReplyError } from './errors.ts';

function assertBadSyntax(input: string, fragment?: RegExp): void {
  assert.throws(
    () => parseAddress(input),
    (err: unknown) => {
      assert.ok(err instanceof ReplyError, `expected ReplyError for ${JSON.stringify(input)}`);
      assert.equal(err.code, 501);
      assert.equal(err.enhanced, '5.1.3');
      assert.match(err.text, /^Bad address syntax: /);
      if (fragment) assert.match(err.text, fragment);
      return true;
    },
  );
}

test('parseAddress accepts common addresses and normalises case', () => {
  const valid: Array<[string, string, string, string]> = [
    ['alice@example.org', 'alice', 'example.org', 'alice@example.org'],
    ['Alice.Smith@Example.ORG', 'alice.smith', 'example.org', 'alice.smith@example.org'],
    ['a+tag@sub.example.co.uk', 'a+tag', 'sub.example.co.uk', 'a+tag@sub.example.co.uk'],
    ["o'brien!#$%&*/=?^_`{|}~-@x.org", "o'brien!#$%&*/=?^_`{|}~-", 'x.org', "o'brien!#$%&*/=?^_`{|}~-@x.org"],
    ['postmaster@localhost', 'postmaster', 'localhost', 'postmaster@localhost'],
    ['u@a-b.c0m', 'u', 'a-b.c0m', 'u@a-b.c0m'],
  ];
  for (const [input, local, domain, address] of valid) {
    assert.deepEqual(parseAddress(input), { local, domain, address }, input);
  }
});

test('parseAddress drops the trailing dot of the domain (x@blocked.test. is x@blocked.test)', () => {
  assert.deepEqual(parseAddress('X@Blocked.Test.'), { local: 'x', domain: 'blocked.test', address: 'x@blocked.test' });
  assert.equal(parseAddress('x@bücher.test.').domain, 'xn--bcher-kva.test');
});

test('parseAddress handles quoted local parts', () => {
  assert.equal(parseAddress('"John Doe"@Example.org').address, '"john doe"@example.org');
  // Unnecessary quotes are dropped so equal mailboxes have equal keys.
  assert.equal(parseAddress('"Alice"@example.org').address, 'alice@example.org');
  assert.equal(parseAddress('"a\\lice"@example.org').address, 'alice@example.org');
  // Needed escapes are kept, unneeded ones removed.
  assert.equal(parseAddress('"a\\"b"@x.org').address, '"a\\"b"@x.org');
  assert.equal(parseAddress('"a\\\\b"@x.org').address, '"a\\\\b"@x.org');
  assert.equal(parseAddress('"a@b"@x.org').address, '"a@b"@x.org');
  assert.equal(parseAddress('"a..b"@x.org').address, '"a..b"@x.org');
  assert.equal(parseAddress('"<a>"@x.org').address, '"<a>"@x.org');
});

test('parseAddress accepts SMTPUTF8 local parts and IDN domains', () => {
  assert.deepEqual(parseAddress('Jörg@Bücher.DE'), {
    local: 'jörg',
    domain: 'xn--bcher-kva.de',
    address: 'jörg@xn--bcher-kva.de',
  });
  assert.equal(parseAddress('用户@例子.广告').domain, 'xn--fsqu00a.xn--4rr70v');
  assert.equal(parseAddress('x@xn--bcher-kva.de').domain, 'xn--bcher-kva.de');
  // NFC: a decomposed ö equals the composed one.
  assert.equal(parseAddress('jo\u0308rg@x.org').local, 'j\u00f6rg');
  // Astral characters count as 4 octets each: 16 of them are exactly 64.
  assert.equal(parseAddress(`${'😀'.repeat(16)}@x.org`).local, '😀'.repeat(16));
  assertBadSyntax(`${'😀'.repeat(17)}@x.org`, /64 octets/);
});

test('parseAddress accepts address literals', () => {
  assert.equal(parseAddress('root@[192.0.2.1]').address, 'root@[192.0.2.1]');
  assert.equal(parseAddress('root@[IPv6:2001:DB8::1]').domain, '[ipv6:2001:db8::1]');
  assert.equal(parseAddress('root@[IPv6:::ffff:192.0.2.1]').domain, '[ipv6:::ffff:192.0.2.1]');
  assert.equal(parseAddress('root@[IPv6:1:2:3:4:5:6:7:8]').domain, '[ipv6:1:2:3:4:5:6:7:8]');
  for (const bad of [
    'root@[256.0.0.1]',
    'root@[1.2.3]',
    'root@[01.2.3.4]',
    'root@[IPv6:1:2:3:4:5:6:7:8:9]',
    'root@[IPv6:1::2::3]',
    'root@[IPv6:12345::1]',
    'root@[IPv6:1:2:3:4:5:6:7]',
    'root@[IPv6:1:2:3:4:5:6:7:1.2.3.4]',
    'root@[2001:db8::1]',
    'root@[1.2.3.4',
  ]) {
    assertBadSyntax(bad);
  }
});

test('parseAddress rejects illegal syntax with a reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['alice', /missing "@"/],
    ['@example.org', /empty local part/],
    ['alice@', /empty domain/],
    ['alice@@example.org', /local part/],
    ['a@b@example.org', /local part/],
    ['.alice@x.org', /dot/],
    ['alice.@x.org', /dot/],
    ['al..ice@x.org', /dot/],
    ['al ice@x.org', /space/],
    [' alice@x.org', /space/],
    ['alice@x.org ', /domain/],
    ['<alice@x.org>', /angle bracket/],
    ['alice@<x.org>', /domain/],
    ['alice\r\n@x.org', /control/],
    ['alice@x.org\r\nRCPT TO:<b@y>', /control/],
    ['ali\u0000ce@x.org', /control/],
    ['ali\u007fce@x.org', /control/],
    ['ali\u0085ce@x.org', /control/],
    ['"unterminated@x.org', /unterminated/],
    ['""@x.org', /empty quoted/],
    ['"a"b@x.org', /missing "@"/],
    ['a(comment)@x.org', /illegal character/],
    ['a,b@x.org', /illegal character/],
    ['a@-x.org', /label/],
    ['a@x-.org', /label/],
    ['a@x..org', /empty domain label/],
    ['a@x.org..', /empty domain label/],
    ['a@.', /empty domain/],
    ['a@.x.org', /empty domain label/],
    ['a@x_y.org', /illegal character/],
    ['a@x%41.org', /illegal character/],
    ['a@x/y.org', /illegal character/],
    ['a@x:25', /illegal character/],
    ['\ud800@x.org', /UTF-16/],
  ];
  for (const [input, why] of cases) assertBadSyntax(input, why);
});

test('parseAddress enforces the length limits', () => {
  const local64 = 'a'.repeat(64);
  assert.equal(parseAddress(`${local64}@x.org`).local, local64);
  assertBadSyntax(`${'a'.repeat(65)}@x.org`, /local part longer than 64/);

  const label63 = 'b'.repeat(63);
  assert.equal(parseAddress(`a@${label63}.org`).domain, `${label63}.org`);
  assertBadSyntax(`a@${'b'.repeat(64)}.org`, /label longer than 63/);

  // 64 + 1 + 189 = 254 octets: the longest address.
  const domain189 = [61, 61, 61, 3].map((n, i) => String.fromCharCode(99 + i).repeat(n)).join('.');
  assert.equal(domain189.length, 189);
  assert.equal(parseAddress(`${local64}@${domain189}`).address.length, 254);
  assertBadSyntax(`${local64}@d${domain189}`, /longer than 254/);
  assertBadSyntax(`a@${'x.'.repeat(127)}org`, /longer than 253/);
  assertBadSyntax('a'.repeat(5000), /too long/);
});

test('the error text never echoes raw control characters', () => {
  try {
    parseAddress('a\r\nb@x.org');
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ReplyError);
    assert.doesNotMatch(err.text, /[\r\n]/);
  }
});

test('normaliseDomain', () => {
  assert.equal(normaliseDomain('Example.ORG'), 'example.org');
  assert.equal(normaliseDomain('bücher.de'), 'xn--bcher-kva.de');
  assert.equal(normaliseDomain('ＥＸＡＭＰＬＥ.com'), 'example.com');
  assert.throws(() => normaliseDomain(''), /Bad domain syntax: empty domain/);
  assert.throws(() => normaliseDomain('[1.2.3.4]'), ReplyError);
  assert.throws(() => normaliseDomain('a b.org'), ReplyError);
  assert.throws(() => normaliseDomain('a@b.org'), ReplyError);
  // The root's dot names the same domain: dropped, once (one normal form everywhere).
  assert.equal(normaliseDomain('Example.ORG.'), 'example.org');
  assert.throws(() => normaliseDomain('example.org..'), /empty domain label/);
  assert.throws(() => normaliseDomain('.'), /empty domain/);
});

test('senderKey: the normal form without the +tag (the account a sent message is from); null when it does not parse', () => {
  assert.equal(senderKey('alice@x.test'), 'alice@x.test');
  assert.equal(senderKey('Alice+Lists@X.TEST'), 'alice@x.test');
  assert.equal(senderKey('alice+a+b@x.test'), 'alice@x.test', 'the tag starts at the first +');
  assert.equal(senderKey('"alice+q"@x.test'), 'alice@x.test', 'a quoted dot-atom is the plain one');
  assert.equal(senderKey('+tag@x.test'), '+tag@x.test', 'no base to strip a tag from');
  assert.equal(senderKey('ÄLICE+x@Bücher.DE'), 'älice@xn--bcher-kva.de');
  assert.equal(senderKey(''), null);
  assert.equal(senderKey('not an address'), null);
  assert.equal(subaddressBase('bob+x@y.test'), 'bob@y.test');
  assert.equal(subaddressBase('bob@y+z.test'), 'bob@y+z.test', 'a + after the @ is no tag');
});

test('domainOf', () => {
  assert.equal(domainOf('alice@example.org'), 'example.org');
  assert.equal(domainOf('"a@b"@Example.org'), 'example.org');
  assert.throws(() => domainOf('no-at-sign'), TypeError);
});

test('isSubdomainOf counts the domain itself and labels, not suffixes', () => {
  const cases: Array<[string, string, boolean]> = [
    ['example.org', 'example.org', true],
    ['a.example.org', 'example.org', true],
    ['a.b.example.org', 'example.org', true],
    ['A.Example.ORG', 'example.org', true],
    ['a.example.org.', 'example.org', true],
    ['badexample.org', 'example.org', false],
    ['example.org', 'a.example.org', false],
    ['example.org.evil', 'example.org', false],
    ['', 'example.org', false],
    ['example.org', '', false],
  ];
  for (const [child, parent, expected] of cases) {
    assert.equal(isSubdomainOf(child, parent), expected, `${child} under ${parent}`);
  }
});

test('organizationalDomain', () => {
  const cases: Array<[string, string]> = [
    ['example.org', 'example.org'],
    ['mail.example.org', 'example.org'],
    ['a.b.c.example.org', 'example.org'],
    ['Mail.Example.ORG.', 'example.org'],
    ['example.co.uk', 'example.co.uk'],
    ['mail.example.co.uk', 'example.co.uk'],
    ['shop.example.com.au', 'example.com.au'],
    ['alice.github.io', 'alice.github.io'],
    ['co.uk', 'co.uk'],
    ['localhost', 'localhost'],
    ['[192.0.2.1]', '[192.0.2.1]'],
    // The Public Suffix List (tldts): suffixes a short hand-made list missed.
    ['a.example.ac.at', 'example.ac.at'],
    ['evil.sch.uk', 'evil.sch.uk'],
    ['mail.school.sch.uk', 'mail.school.sch.uk'],
    ['x.eu.org', 'x.eu.org'],
    ['mail.x.eu.org', 'x.eu.org'],
    ['mail.example.test', 'example.test'],
    ['192.0.2.1', '192.0.2.1'],
  ];
  for (const [domain, expected] of cases) assert.equal(organizationalDomain(domain), expected, domain);
});

test('parseSenderSpec', () => {
  assert.deepEqual(parseSenderSpec('Alice@Example.org'), { kind: 'address', address: 'alice@example.org' });
  assert.deepEqual(parseSenderSpec('@Example.org'), { kind: 'domain', domain: 'example.org' });
  assert.deepEqual(parseSenderSpec('example.org'), { kind: 'domain', domain: 'example.org' });
  assert.deepEqual(parseSenderSpec('bücher.de'), { kind: 'domain', domain: 'xn--bcher-kva.de' });
  for (const bad of ['', '@', 'not a domain', 'a@', '@a@b.org', 'a@b c']) {
    assert.throws(() => parseSenderSpec(bad), ReplyError, bad);
  }
});

test('parseAddress answers exactly as the full parser for every input, including its plain-ASCII shortcut', () => {
  const outcome = (f: () => unknown) => {
    try {
      return { ok: f() };
    } catch (err) {
      return { error: err instanceof ReplyError ? `${err.code} ${err.enhanced} ${err.text}` : String(err) };
    }
  };
  // Deterministic pseudo-random inputs over the characters where the two paths could part ways.
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const pieces = ['a', 'B', 'z', '0', '9', '-', '.', '..', '_', '+', '@', '"', ' ', '\\', "'", '`', '{', '~', '/', '=', 'é', 'Ä', '[', ']', ':', '<', '\t', 'xn--bcher-kva', 'EXAMPLE', 'org.'];
  const inputs = [
    'Alice@Example.ORG',
    'a.b+c@d-e.f.g',
    `${'a'.repeat(64)}@x.org`,
    `${'a'.repeat(65)}@x.org`,
    `a@${'b'.repeat(63)}.org`,
    `a@${'b'.repeat(64)}.org`,
    `${'a'.repeat(64)}@${[61, 61, 61, 3].map((n, i) => String.fromCharCode(99 + i).repeat(n)).join('.')}`,
    `a@${'x.'.repeat(127)}org`,
  ];
  for (let i = 0; i < 20_000; i++) {
    const length = 1 + Math.floor(next() * 12);
    inputs.push(Array.from({ length }, () => pieces[Math.floor(next() * pieces.length)]).join(''));
    // Mostly well-formed ones too, so that the shortcut is taken often.
    inputs.push(`${pieces[Math.floor(next() * 6)]!.repeat(1 + Math.floor(next() * 70))}@${'d'.repeat(1 + Math.floor(next() * 70))}.${pieces[Math.floor(next() * 5)]}`);
  }
  for (const input of inputs) {
    for (const options of [{}, { underscore: true, longLocalPart: true }]) {
      assert.deepEqual(outcome(() => parseAddress(input, options)), outcome(() => parseAnyAddress(input, options)), JSON.stringify(input));
    }
  }
});
