import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TwmError } from './twm-types.ts';
import {
  decodeTwmJson,
  fetchRequestToJson,
  formatTwmTime,
  noticeResultToJson,
  noticeToJson,
  parseFetchRequest,
  parseNotice,
  parseNoticeResult,
  parseReceipt,
  receiptToJson,
  readValidNotice,
  recipientDomain,
  validateNotice,
} from './twm-schema.ts';
import { A3, A3_NOTICE_JSON, A4, A5 } from '../../test/helpers/twm-vectors.ts';

function invalid(fn: () => unknown, member?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TwmError, String(err));
    assert.equal(err.problemCode, 'invalid-request');
    assert.equal(err.status, 400);
    if (member) assert.match(err.text, member);
    return true;
  });
}

test('the A.3 notice parses to the typed form', () => {
  const n = parseNotice(decodeTwmJson(A3.body));
  assert.deepEqual(n, {
    id: 'vAPuxOSStt1_cK3UHxrs8Q',
    from: 'alice@a.example',
    to: ['bob@b.example', 'carol@b.example'],
    size: 277,
    sha256: A3_NOTICE_JSON.sha256,
    created: new Date('2026-12-01T10:00:00Z'),
    expires: new Date('2026-12-08T10:00:00Z'),
    intro: A3_NOTICE_JSON.intro,
  });
  assert.equal(noticeToJson(n).toString(), JSON.stringify(A3_NOTICE_JSON));
});

test('the A.4 fetch request and A.5 receipt parse and serialise', () => {
  assert.deepEqual(parseFetchRequest(decodeTwmJson(A4.body)), { rcpt: ['bob@b.example'] });
  const r = parseReceipt(decodeTwmJson(A5.body));
  assert.deepEqual(r, { id: 'vAPuxOSStt1_cK3UHxrs8Q', results: [{ rcpt: 'bob@b.example', status: 'delivered' }] });
  assert.equal(receiptToJson(r).toString(), JSON.stringify(JSON.parse(A5.body.toString())));
  assert.equal(fetchRequestToJson({ rcpt: ['bob@b.example'] }).toString(), '{"rcpt":["bob@b.example"]}');
});

test('the A.3 notice result serialises as printed', () => {
  const printed = '{"id":"vAPuxOSStt1_cK3UHxrs8Q","results":[{"rcpt":"bob@b.example","status":"accepted"},{"rcpt":"carol@b.example","status":"pending"}]}';
  const r = parseNoticeResult(JSON.parse(printed));
  assert.equal(noticeResultToJson(r).toString(), printed);
  const deferred = { id: r.id, results: [{ rcpt: 'bob@b.example', status: 'deferred' as const, retryAfter: 60 }] };
  assert.equal(noticeResultToJson(deferred).toString(), '{"id":"vAPuxOSStt1_cK3UHxrs8Q","results":[{"rcpt":"bob@b.example","status":"deferred","retry_after":60}]}');
  assert.deepEqual(parseNoticeResult(JSON.parse(noticeResultToJson(deferred).toString())), deferred);
});

test('optional members: snake_case list_id, registered purpose; times without fractions', () => {
  const n = {
    ...parseNotice(A3_NOTICE_JSON),
    created: new Date('2026-12-01T10:00:00.789Z'),
    purpose: 'ownership-confirmation',
    listId: 'dev.lists.a.example',
  };
  const wire = JSON.parse(noticeToJson(n).toString());
  assert.equal(wire.created, '2026-12-01T10:00:00Z');
  assert.equal(wire.list_id, 'dev.lists.a.example');
  assert.equal(wire.purpose, 'ownership-confirmation');
  assert.equal(wire.listId, undefined);
  assert.deepEqual(parseNotice(wire), { ...n, created: new Date('2026-12-01T10:00:00Z') });
  assert.equal(formatTwmTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 999))), '2026-01-02T03:04:05Z');
});

test('unknown members are ignored; an unregistered purpose is absent; a stamp of an unknown alg is ignored', () => {
  const n = parseNotice({ ...A3_NOTICE_JSON, url: 'https://evil.example/', purpose: 'newsletter', stamp: { alg: 'hashcash-x', bits: 20 } });
  assert.equal('purpose' in n, false);
  assert.equal('url' in n, false);
  assert.equal('stamp' in n, false);
  parseFetchRequest({ rcpt: ['bob@b.example'], extra: 1 });
  parseReceipt({ id: A3_NOTICE_JSON.id, results: [{ rcpt: 'bob@b.example', status: 'declined', why: 'x' }], more: [] });
});

// Schema violations of a notice: [what, replacement members, member named in the detail].
const BAD_NOTICES: Array<[string, Record<string, unknown>, RegExp]> = [
  ['id too short', { id: 'abc' }, /member id/],
  ['id with +', { id: 'vAPuxOSStt1+cK3UHxrs8Q' }, /member id/],
  ['id of 44 characters', { id: 'a'.repeat(44) }, /member id/],
  ['from without @', { from: 'alice' }, /member from/],
  ['from with a quoted local part', { from: '"a b"@a.example' }, /member from/],
  ['from with a one-label domain', { from: 'alice@localhost' }, /member from/],
  ['from with a 65-character local part', { from: `${'a'.repeat(65)}@a.example` }, /member from/],
  ['to empty', { to: [] }, /member to/],
  ['to not an array', { to: 'bob@b.example' }, /member to/],
  ['to with 101 addresses', { to: Array.from({ length: 101 }, (_, i) => `u${i}@b.example`) }, /member to/],
  ['to with a duplicate', { to: ['bob@b.example', 'bob@b.example'] }, /member to/],
  ['to with a duplicate in another case', { to: ['bob@b.example', 'Bob@B.example'] }, /member to/],
  ['to with a bad address', { to: ['bob@b.example', 'carol'] }, /member to\[1\]/],
  ['size 0', { size: 0 }, /member size/],
  ['size fractional', { size: 27.5 }, /member size/],
  ['size as string', { size: '277' }, /member size/],
  ['size above 2^53-1', { size: 2 ** 53 }, /member size/],
  ['sha256 upper-case', { sha256: A3_NOTICE_JSON.sha256.toUpperCase() }, /member sha256/],
  ['sha256 short', { sha256: 'c6c9' }, /member sha256/],
  ['created with a fraction', { created: '2026-12-01T10:00:00.000Z' }, /member created/],
  ['created with an offset', { created: '2026-12-01T10:00:00+00:00' }, /member created/],
  ['created not a real date', { created: '2026-02-30T10:00:00Z' }, /member created/],
  ['expires at 24:00', { expires: '2026-12-08T24:00:00Z' }, /member expires/],
  ['expires more than 30 days after created', { expires: '2026-12-31T10:00:01Z' }, /member expires/],
  ['intro empty', { intro: '' }, /member intro/],
  ['intro of 1001 characters', { intro: 'x'.repeat(1001) }, /member intro/],
  ['intro with CR', { intro: 'a\r\nb' }, /member intro/],
  ['intro with TAB', { intro: 'a\tb' }, /member intro/],
  ['intro with a C1 control', { intro: 'a\u0085b' }, /member intro/],
  ['intro with a bidi override', { intro: 'a\u202Eb' }, /member intro/],
  ['intro with a bidi isolate', { intro: 'a\u2067b' }, /member intro/],
  ['purpose not a token', { purpose: 'Ownership Confirmation' }, /member purpose/],
  ['list_id without a dot', { list_id: 'devlist' }, /member list_id/],
  ['list_id with angle brackets', { list_id: '<dev.lists.a.example>' }, /member list_id/],
  ['list_id of 256 characters', { list_id: `${'a'.repeat(250)}.b.com` }, /member list_id/],
  ['stamp without alg', { stamp: { bits: 1 } }, /member stamp/],
  ['stamp larger than 1024 octets', { stamp: { alg: 'x', data: 'y'.repeat(1010) } }, /member stamp/],
  ['stamp not an object', { stamp: 'abc' }, /member stamp/],
];

for (const [what, members, member] of BAD_NOTICES) {
  test(`notice refused as invalid-request: ${what}`, () => invalid(() => parseNotice({ ...A3_NOTICE_JSON, ...members }), member));
}

for (const required of ['id', 'from', 'to', 'size', 'sha256', 'created', 'expires']) {
  test(`notice refused as invalid-request: missing ${required}`, () => {
    const copy: Record<string, unknown> = { ...A3_NOTICE_JSON };
    delete copy[required];
    invalid(() => parseNotice(copy), new RegExp(`member ${required}`));
  });
}

test('lengths count code points, not UTF-16 units', () => {
  parseNotice({ ...A3_NOTICE_JSON, intro: '😀'.repeat(1000) });
  invalid(() => parseNotice({ ...A3_NOTICE_JSON, intro: '😀'.repeat(1001) }), /member intro/);
  parseNotice({ ...A3_NOTICE_JSON, intro: 'Grüße\nvon Ålice' });
  parseNotice({ ...A3_NOTICE_JSON, from: 'jöran@a.example' });
  parseNotice({ ...A3_NOTICE_JSON, expires: '2026-12-31T10:00:00Z' }); // exactly 30 days
  parseNotice({ ...A3_NOTICE_JSON, stamp: { alg: 'x', data: 'y'.repeat(1000) } });
});

/**
 * Section 6.6's rule table for the extensible fields of the notice result
 * and the receipt: [what, wire entry, parsed entry (or null: ignored)]. A
 * value the registry does not know is mapped, never refused.
 */
const RESULT_RULES: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
  ['accepted', { status: 'accepted' }, { status: 'accepted' }],
  ['pending', { status: 'pending' }, { status: 'pending' }],
  ['unknown', { status: 'unknown' }, { status: 'unknown' }],
  ['deferred with its wait', { status: 'deferred', retry_after: 86400 }, { status: 'deferred', retryAfter: 86400 }],
  ['an unknown status: deferred 3600', { status: 'quarantined' }, { status: 'deferred', retryAfter: 3600 }],
  ['an unknown status with a retry_after: still 3600', { status: 'held-for-review', retry_after: 5 }, { status: 'deferred', retryAfter: 3600 }],
  ['a status that was a receipt status: deferred 3600', { status: 'delivered' }, { status: 'deferred', retryAfter: 3600 }],
  ['unknown members of the entry ignored', { status: 'accepted', hint: { x: 1 } }, { status: 'accepted' }],
];
for (const [what, wire, parsed] of RESULT_RULES) {
  test(`notice result rule (6.6): ${what}`, () => {
    const r = parseNoticeResult({ id: A3_NOTICE_JSON.id, results: [{ rcpt: 'bob@b.example', ...wire }], next: 'ignored' });
    assert.deepEqual(r.results, [{ rcpt: 'bob@b.example', ...parsed }]);
  });
}

test('notice result: retry_after iff deferred (known statuses); a status must still be a token', () => {
  const ok = (results: unknown[]) => parseNoticeResult({ id: A3_NOTICE_JSON.id, results });
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'deferred' }]), /results\[0\]\.retry_after/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'accepted', retry_after: 5 }]), /results\[0\]\.retry_after/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'deferred', retry_after: 0 }]), /retry_after/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'deferred', retry_after: 86401 }]), /retry_after/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'Accepted' }]), /results\[0\]\.status/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 7 }]), /results\[0\]\.status/);
  invalid(() => ok([{ rcpt: 'bob@b.example' }]), /results\[0\]\.status/);
  invalid(() => ok([]), /results/);
  invalid(() => parseNoticeResult({ results: [{ rcpt: 'bob@b.example', status: 'pending' }] }), /member id/);
});

const RECEIPT_RULES: Array<[string, Record<string, unknown>, Record<string, unknown> | null]> = [
  ['delivered', { status: 'delivered' }, { status: 'delivered' }],
  ['declined', { status: 'declined' }, { status: 'declined' }],
  ['failed with a registered error', { status: 'failed', error: 'size-mismatch' }, { status: 'failed', error: 'size-mismatch' }],
  ['failed with an unknown error: failed without a reason', { status: 'failed', error: 'virus-found' }, { status: 'failed' }],
  ['an unknown status: ignored', { status: 'forwarded' }, null],
  ['an unknown status with an error: ignored', { status: 'bounced-later', error: 'x' }, null],
  ['unknown members of the entry ignored', { status: 'delivered', folder: 'INBOX' }, { status: 'delivered' }],
];
for (const [what, wire, parsed] of RECEIPT_RULES) {
  test(`receipt rule (6.6): ${what}`, () => {
    const r = parseReceipt({ id: A3_NOTICE_JSON.id, results: [{ rcpt: 'bob@b.example', ...wire }], more: [] });
    if (parsed === null) {
      assert.deepEqual(r.results, []);
      assert.deepEqual(r.ignored, ['bob@b.example'], 'still named, for the entitlement check');
    } else {
      assert.deepEqual(r.results, [{ rcpt: 'bob@b.example', ...parsed }]);
      assert.equal(r.ignored, undefined);
    }
  });
}

test('receipt: error iff failed (known statuses); codes must still be tokens', () => {
  const ok = (results: unknown[]) => parseReceipt({ id: A3_NOTICE_JSON.id, results });
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'failed' }]), /results\[0\]\.error/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'delivered', error: 'size-mismatch' }]), /results\[0\]\.error/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'failed', error: 'Lost Mail' }]), /results\[0\]\.error/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: 'failed', error: 3 }]), /results\[0\]\.error/);
  invalid(() => ok([{ rcpt: 'bob@b.example', status: '' }]), /results\[0\]\.status/);
  // A mix: the known entries count, the unknown one is set aside.
  const mixed = ok([
    { rcpt: 'bob@b.example', status: 'delivered' },
    { rcpt: 'carol@b.example', status: 'snoozed' },
  ]);
  assert.deepEqual(mixed.results, [{ rcpt: 'bob@b.example', status: 'delivered' }]);
  assert.deepEqual(mixed.ignored, ['carol@b.example']);
  // What a TWM/1 receiver sends is unchanged: the serialiser never writes `ignored`.
  assert.equal(receiptToJson(mixed).toString(), '{"id":"vAPuxOSStt1_cK3UHxrs8Q","results":[{"rcpt":"bob@b.example","status":"delivered"}]}');
});

/**
 * Fuzz (6.6): random tokens in every extensible position of both documents.
 * Parsing never throws for a token value, maps it by the table, and only
 * ever yields statuses and errors of the registry.
 */
test('fuzz: unknown statuses and error codes are never fatal', () => {
  let seed = 0x2f6e2b1;
  const rnd = (n: number) => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return seed % n;
  };
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-';
  const tok = () => String.fromCharCode(97 + rnd(26)) + Array.from({ length: rnd(20) }, () => alphabet[rnd(alphabet.length)]).join('');
  const pick = <T,>(list: readonly T[]) => list[rnd(list.length)]!;
  const NOTICE = ['accepted', 'pending', 'unknown', 'deferred'];
  const RECEIPT = ['delivered', 'declined', 'failed'];
  const ERRORS = ['size-mismatch', 'digest-mismatch', 'from-mismatch', 'message-too-large'];
  for (let i = 0; i < 2000; i++) {
    const n = 1 + rnd(5);
    const rcpts = Array.from({ length: n }, (_, k) => `u${k}@b.example`);
    const results = rcpts.map((rcpt) => {
      const status = rnd(2) ? tok() : pick(NOTICE);
      const known = NOTICE.includes(status);
      return { rcpt, status, ...((known ? status === 'deferred' : rnd(2)) ? { retry_after: 1 + rnd(86400) } : {}), ...(rnd(3) ? {} : { [tok()]: tok() }) };
    });
    const r = parseNoticeResult({ id: A3_NOTICE_JSON.id, results });
    for (const [k, e] of r.results.entries()) {
      assert.ok(NOTICE.includes(e.status), e.status);
      if (!NOTICE.includes(results[k]!.status)) assert.deepEqual(e, { rcpt: results[k]!.rcpt, status: 'deferred', retryAfter: 3600 });
    }
    const entries = rcpts.map((rcpt) => {
      const status = rnd(2) ? tok() : pick(RECEIPT);
      const known = RECEIPT.includes(status);
      const error = rnd(2) ? tok() : pick(ERRORS);
      return { rcpt, status, ...((known ? status === 'failed' : rnd(2)) ? { error } : {}) };
    });
    const p = parseReceipt({ id: A3_NOTICE_JSON.id, results: entries });
    assert.equal(p.results.length + (p.ignored?.length ?? 0), n);
    for (const e of p.results) {
      assert.ok(RECEIPT.includes(e.status));
      if (e.error !== undefined) assert.ok(ERRORS.includes(e.error));
      const wire = entries.find((w) => w.rcpt === e.rcpt)!;
      if (e.status === 'failed' && 'error' in wire && ERRORS.includes(wire.error ?? '')) assert.equal(e.error, wire.error);
    }
  }
});

test('fetch request: rcpt is 1-100 unique addresses', () => {
  invalid(() => parseFetchRequest({}), /member rcpt/);
  invalid(() => parseFetchRequest({ rcpt: [] }), /member rcpt/);
  invalid(() => parseFetchRequest([]), /fetch request/);
  invalid(() => parseFetchRequest({ rcpt: ['a@b.example', 'A@b.example'] }), /member rcpt/);
});

test('JSON texts: UTF-8 without BOM, no duplicate member names, at any depth', () => {
  const bad = (text: string | Buffer, why: RegExp) => invalid(() => decodeTwmJson(Buffer.isBuffer(text) ? text : Buffer.from(text)), why);
  bad('{"id": "x", "id": "y"}', /duplicate member "id"/);
  bad('{"results": [{"rcpt": "a", "status": "x", "rcpt": "b"}]}', /duplicate member "rcpt"/);
  bad('{"a": 1, "\\u0061": 2}', /duplicate member "a"/);
  bad('{"rcpt": [1,2', /not JSON/);
  bad('', /not JSON/);
  bad(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')]), /byte-order mark/);
  bad(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), /not UTF-8/);
  assert.deepEqual(decodeTwmJson(Buffer.from('{"a": {"b": 1}, "b": [{"a": 1}, {"a": 2}], "c": "\\"a\\""}')), {
    a: { b: 1 },
    b: [{ a: 1 }, { a: 2 }],
    c: '"a"',
  });
});

test('recipientDomain: one domain, compared lower-cased', () => {
  assert.equal(recipientDomain(['bob@b.example', 'Carol@B.Example']), 'b.example');
  assert.equal(recipientDomain(['bob@b.example', 'carol@c.example']), undefined);
  assert.equal(recipientDomain(['bob@sub.b.example', 'carol@b.example']), undefined);
});

/** Notices near every rule's edge: valid ones, and one member at a time made invalid or odd. */
function noticeVariants(): unknown[] {
  const base: Record<string, unknown> = { ...A3_NOTICE_JSON };
  const day = (d: number) => `2026-12-${String(d).padStart(2, '0')}T10:00:00Z`;
  const members: Record<string, unknown[]> = {
    id: ['vAPuxOSStt1_cK3UHxrs8Q', 'a'.repeat(21), 'a'.repeat(22), 'a'.repeat(43), 'a'.repeat(44), 'bad id with spaces aaaaa', 7, null],
    from: ['a@b.cc', 'a@b', 'x@y.z', `${'l'.repeat(64)}@b.example`, `${'l'.repeat(65)}@b.example`, `a@${'d'.repeat(63)}.example`, `a@${'d'.repeat(64)}.example`, `a@${'b.'.repeat(125)}cc`, 'é@b.example', 'A@B.EXAMPLE', 'a"b@c.example', '', ['a@b.example']],
    to: [[], ['bob@b.example'], ['bob@b.example', 'BOB@b.example'], Array.from({ length: 100 }, (_, i) => `u${i}@b.example`), Array.from({ length: 101 }, (_, i) => `u${i}@b.example`), ['bob@b.example', 3], 'bob@b.example'],
    size: [1, 0, -1, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, '277', 1e300],
    sha256: ['ab'.repeat(32), 'AB'.repeat(32), 'ab'.repeat(31), 'ab'.repeat(33), 64],
    created: [day(1), '2026-02-30T10:00:00Z', '2026-12-01T10:00:00.5Z', '2026-12-01 10:00:00Z', '2026-12-01T24:00:00Z', 1_700_000_000],
    expires: [day(8), day(31), '2026-12-31T10:00:01Z', day(1), '2026-12-01T09:59:59Z', '2026-13-01T10:00:00Z', null],
    intro: [undefined, '', 'x', 'x'.repeat(1000), 'x'.repeat(1001), '😀'.repeat(1000), '😀'.repeat(1001), 'line\nbreak', 'tab\there', 'bidi\u202Eoverride', 'c1\u0085', 42, null],
    purpose: [undefined, 'ownership-confirmation', 'future-purpose', 'Upper', '9x', '', 'a'.repeat(63), 'a'.repeat(64), null],
    list_id: [undefined, 'news.example.org', 'news', 'a.b', `${'a'.repeat(250)}.bcde`, `${'a'.repeat(251)}.bcde`, 'bad id.example', 'é.example', null],
    stamp: [undefined, { alg: 'x' }, { alg: 'X' }, {}, 'stamp'],
    other: [undefined, 'ignored', { nested: true }],
  };
  const out: unknown[] = [base, null, [], 'notice', 42, {}];
  for (const [name, values] of Object.entries(members)) {
    for (const v of values) {
      const copy = { ...base };
      if (v === undefined) delete copy[name];
      else copy[name] = v;
      out.push(copy);
    }
  }
  for (const name of ['id', 'from', 'to', 'size', 'sha256', 'created', 'expires']) {
    const copy = { ...base };
    delete copy[name];
    out.push(copy);
  }
  // Calendar edges, as both times (the lifetime is then 0): leap days, month ends, the hour 24, a
  // leap second, and years below 100, which Date.UTC would read as 19xx.
  const times = ['0000-01-01T00:00:00Z', '0099-02-28T23:59:59Z', '0004-02-29T00:00:00Z', '1900-02-29T12:00:00Z', '2000-02-29T12:00:00Z', '2024-02-29T00:00:00Z',
    '2026-02-29T00:00:00Z', '2026-04-30T00:00:00Z', '2026-04-31T00:00:00Z', '2026-12-31T23:59:59Z', '2026-12-05T24:00:00Z', '2026-12-05T23:60:00Z',
    '2026-12-05T14:00:60Z', '2026-00-05T14:00:00Z', '2026-12-00T14:00:00Z', '1970-01-01T00:00:00Z', '9999-12-31T23:59:59Z'];
  for (const t of times) out.push({ ...base, created: t, expires: t });
  return out;
}

test('the notice fast path accepts exactly what the schema accepts, with the same result', () => {
  let accepted = 0;
  for (const json of noticeVariants()) {
    const label = JSON.stringify(json)?.slice(0, 120);
    const fast = readValidNotice(json);
    let schema: ReturnType<typeof validateNotice> | undefined;
    try {
      schema = validateNotice(json);
    } catch (err) {
      assert.ok(err instanceof TwmError && err.problemCode === 'invalid-request', String(err));
    }
    if (fast !== undefined) {
      accepted++;
      assert.deepEqual(fast, schema, `fast path accepted what the schema refused or read differently: ${label}`);
    } else if (schema !== undefined) {
      // Only a stamp takes the schema's path for a valid notice.
      assert.ok((json as { stamp?: unknown }).stamp !== undefined, `fast path refused a valid notice: ${label}`);
    }
    // parseNotice answers as the schema does either way: the same notice or the same refusal.
    if (schema === undefined) invalid(() => parseNotice(json));
  }
  assert.ok(accepted > 30, `${accepted} valid variants`);
});
