import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReport, parseReportRecord, reportFileName } from './twm-report.ts';

const rec = (...records: string[]) => parseReportRecord(records.map((r) => [r]));

test('the printed record and its variants parse', () => {
  assert.deepEqual(rec('v=TWMRPTv1; rua=mailto:tlsrpt@example.org'), { rua: ['tlsrpt@example.org'] });
  assert.deepEqual(rec('v=TWMRPTv1;rua=mailto:a@x.example, mailto:b@y.example, mailto:c@z.example'), { rua: ['a@x.example', 'b@y.example'] });
  assert.deepEqual(rec('v=TWMRPTv1; rua=https://r.example/twm,mailto:a@x.example'), { rua: ['a@x.example'] }, 'https skipped');
  assert.deepEqual(rec('v=TWMRPTv1; rua=mailto:a%2Bb@x.example; x=future'), { rua: ['a+b@x.example'] }, 'unknown tags ignored');
  assert.deepEqual(rec('v=spf1 -all', 'v=TWMRPTv1; rua=mailto:a@x.example'), { rua: ['a@x.example'] }, 'other TXT records ignored');
});

const MALFORMED: Array<[string, string[]]> = [
  ['no record', []],
  ['two records', ['v=TWMRPTv1; rua=mailto:a@x.example', 'v=TWMRPTv1; rua=mailto:b@x.example']],
  ['a prefix of the version', ['v=TWMRPTv10; rua=mailto:a@x.example']],
  ['the version not first', ['rua=mailto:a@x.example; v=TWMRPTv1']],
  ['no rua', ['v=TWMRPTv1']],
  ['rua empty', ['v=TWMRPTv1; rua=']],
  ['only https', ['v=TWMRPTv1; rua=https://r.example/']],
  ['another scheme', ['v=TWMRPTv1; rua=ftp://r.example/']],
  ['a mailto without @', ['v=TWMRPTv1; rua=mailto:postmaster']],
  ['a mailto with hfields', ['v=TWMRPTv1; rua=mailto:a@x.example?subject=hi']],
  ['bad percent-encoding', ['v=TWMRPTv1; rua=mailto:a%zz@x.example']],
  ['a repeated tag', ['v=TWMRPTv1; rua=mailto:a@x.example; rua=mailto:b@x.example']],
  ['a tag-list syntax error', ['v=TWMRPTv1; rua mailto:a@x.example']],
  ['larger than 2048 characters', [`v=TWMRPTv1; rua=mailto:a@x.example; pad=${'x'.repeat(2048)}`]],
];
for (const [what, records] of MALFORMED) test(`report record treated as absent: ${what}`, () => assert.equal(rec(...records), null));

test('the report has the RFC 8460 section 4 shape with policy-type twm', () => {
  const meta = { organization: 'b.example', contact: 'postmaster@b.example', reportId: '2026-12-03_a.example', start: new Date('2026-12-03T00:00:00Z'), end: new Date('2026-12-03T23:59:59Z') };
  const report = buildReport(meta, { domain: 'a.example', successes: 12, failures: new Map([['fetch-timeout', 2], ['unknown-key', 5], ['bad-signature', 2], ['zero', 0]]) });
  assert.deepEqual(report, {
    'organization-name': 'b.example',
    'date-range': { 'start-datetime': '2026-12-03T00:00:00Z', 'end-datetime': '2026-12-03T23:59:59Z' },
    'contact-info': 'postmaster@b.example',
    'report-id': '2026-12-03_a.example',
    policies: [
      {
        policy: { 'policy-type': 'twm', 'policy-string': ['v=TWM1'], 'policy-domain': 'a.example' },
        summary: { 'total-successful-session-count': 12, 'total-failure-session-count': 9 },
        'failure-details': [
          { 'result-type': 'unknown-key', 'failed-session-count': 5 },
          { 'result-type': 'bad-signature', 'failed-session-count': 2 },
          { 'result-type': 'fetch-timeout', 'failed-session-count': 2 },
        ],
      },
    ],
  });
  const quiet = buildReport(meta, { domain: 'a.example', successes: 3, failures: new Map() }) as { policies: Array<Record<string, unknown>> };
  assert.equal('failure-details' in quiet.policies[0]!, false);
  assert.equal(reportFileName('b.example', meta, 'a.example'), 'b.example!a.example!1796256000!1796342399!2026-12-03_a.example.json');
});

test('fuzz: random record texts never throw; whatever parses names 1-2 plain addresses', () => {
  let seed = 0x7e57;
  const rnd = (n: number) => {
    seed = (Math.imul(seed ^ (seed >>> 16), 0x45d9f3b) + 0x9e3779b9) >>> 0;
    return seed % n;
  };
  const base = 'v=TWMRPTv1; rua=mailto:a@x.example,mailto:b@y.example';
  const pieces = [';', ' ', 'rua=', 'mailto:', ',', '%', '%40', 'https://h/', '=', 'v=', '\t', '@', '.', '?'];
  let parsed = 0;
  for (let i = 0; i < 5000; i++) {
    let text = base;
    for (let k = 1 + rnd(3); k > 0; k--) {
      const at = 11 + rnd(text.length - 10);
      const op = rnd(3);
      if (op === 0) text = text.slice(0, at) + text.slice(at + 1);
      else if (op === 1) text = text.slice(0, at) + pieces[rnd(pieces.length)] + text.slice(at);
      else text = text.slice(0, at) + String.fromCharCode(32 + rnd(95)) + text.slice(at + 1);
    }
    const r = parseReportRecord([[text]]);
    if (!r) continue;
    parsed++;
    assert.ok(r.rua.length >= 1 && r.rua.length <= 2);
    for (const a of r.rua) assert.match(a, /^[^@\s]+@[A-Za-z0-9.-]+$/);
  }
  assert.ok(parsed > 0, 'the fuzz reaches the success path');
});
