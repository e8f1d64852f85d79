import { test } from 'node:test';
import assert from 'node:assert/strict';
import PostalMime, { type Email } from 'postal-mime';
import { formatRfc5322Date } from './date.ts';
import { parseReply, statusOf } from '../core/reply.ts';
import { buildDsn, describeDuration, DSN_SUBJECTS, type DsnInput } from './dsn.ts';

const arrival = new Date('2024-06-01T12:00:00.000Z');
const date = new Date('2024-06-02T18:30:05.000Z');
const originalHeaders =
  'Received: from a by b\r\n\tfor <bob@remote.test>\r\nFrom: Alice <alice@example.org>\r\nTo: bob@remote.test, carol@other.test\r\nSubject: Lunch?\r\nMessage-ID: <m1@example.org>\r\n';

function input(overrides: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx.example.org',
    kind: 'failed',
    to: 'alice@example.org',
    originalMessageId: '<m1@example.org>',
    arrivalDate: arrival,
    recipients: [
      { recipient: 'bob@remote.test', reply: parseReply('550 5.1.1 <bob@remote.test>: no such user'), remoteMta: 'mx.remote.test' },
      {
        recipient: 'carol@other.test',
        status: '4.4.7',
        reply: parseReply('4.4.1 connection refused by mx.other.test[192.0.2.1]:25'),
        note: 'Delivery was given up after 12 attempts over 5 days.',
        lastAttemptAt: date,
      },
    ],
    // The body after the header block must not be included.
    originalHeaders: `${originalHeaders}\r\nsecret body\r\n`,
    postmaster: 'MAILER-DAEMON@mx.example.org',
    date,
    ...overrides,
  };
}

/** A delivery-status body as field groups: unfolded, names lower-cased. */
function statusGroups(text: string): Array<Record<string, string>> {
  return text
    .replace(/\r\n/g, '\n')
    .replace(/\n[ \t]+/g, ' ')
    .split(/\n\n+/)
    .filter((group) => group.trim() !== '')
    .map((group) =>
      Object.fromEntries(
        group.split('\n').map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
      ),
    );
}

async function parse(raw: Buffer): Promise<Email> {
  return PostalMime.parse(raw, { attachmentEncoding: 'utf8' });
}

function header(email: Email, name: string): string | undefined {
  return email.headers.find((h) => h.key === name)?.value;
}

function part(email: Email, mimeType: string): string {
  const found = email.attachments.find((a) => a.mimeType === mimeType);
  assert.ok(found, `a ${mimeType} part`);
  assert.equal(typeof found.content, 'string');
  return found.content as string;
}

function assertWireForm(raw: Buffer): void {
  const text = raw.toString('utf8');
  assert.doesNotMatch(text, /[^\r]\n/, 'no bare LF');
  assert.doesNotMatch(text, /\r[^\n]/, 'no bare CR');
  for (const line of text.split('\r\n')) assert.ok(Buffer.byteLength(line) <= 998, `line of ${Buffer.byteLength(line)} octets`);
}

test('failed: RFC 3464 multipart/report with every field, read back by postal-mime', async () => {
  const raw = buildDsn(input());
  assertWireForm(raw);
  const email = await parse(raw);

  assert.deepEqual(email.from, { address: 'MAILER-DAEMON@mx.example.org', name: 'Mail Delivery System' });
  assert.deepEqual(email.to, [{ address: 'alice@example.org', name: '' }]);
  assert.equal(email.subject, 'Undelivered Mail Returned to Sender');
  assert.equal(email.date, date.toISOString());
  assert.match(email.messageId ?? '', /^<[^<>@\s]+@mx\.example\.org>$/);
  assert.equal(header(email, 'mime-version'), '1.0');
  assert.equal(header(email, 'auto-submitted'), 'auto-replied');
  assert.match(header(email, 'content-type') ?? '', /^multipart\/report; report-type=delivery-status;\s+boundary="[^"]+"$/);

  // 1. Human-readable: what failed and why.
  const text = (email.text ?? '').replace(/\r\n/g, '\n');
  assert.match(text, /mail system at host mx\.example\.org/);
  assert.match(text, /Your message <m1@example\.org>, received on Sat, 01 Jun 2024 12:00:00 \+0000,\ncould not be delivered/);
  assert.match(text, /permanent\nfailure/);
  assert.match(text, /<bob@remote\.test>\n\s+mx\.remote\.test said: 550 5\.1\.1 <bob@remote\.test>: no such user/);
  assert.match(text, /<carol@other\.test>\n\s+Delivery was given up after 12 attempts over 5 days\.\n\s+Reply: 4\.4\.1 connection refused/);
  for (const line of text.split('\n')) assert.ok(line.length <= 76, `human line too long: ${line}`);

  // 2. Machine-readable.
  const groups = statusGroups(part(email, 'message/delivery-status'));
  assert.deepEqual(groups, [
    { 'reporting-mta': 'dns; mx.example.org', 'arrival-date': 'Sat, 01 Jun 2024 12:00:00 +0000' },
    {
      'final-recipient': 'rfc822; bob@remote.test',
      action: 'failed',
      status: '5.1.1',
      'remote-mta': 'dns; mx.remote.test',
      'diagnostic-code': 'smtp; 550 5.1.1 <bob@remote.test>: no such user',
    },
    {
      'final-recipient': 'rfc822; carol@other.test',
      action: 'failed',
      status: '4.4.7',
      // Not an SMTP reply: our own diagnostic type.
      'diagnostic-code': 'X-Twoway; 4.4.1 connection refused by mx.other.test[192.0.2.1]:25',
      'last-attempt-date': 'Sun, 02 Jun 2024 18:30:05 +0000',
    },
  ]);

  // 3. The original header block, without the body.
  const lf = (text: string) => text.replace(/\r\n/g, '\n').trimEnd();
  assert.equal(lf(part(email, 'text/rfc822-headers')), lf(originalHeaders));
  assert.doesNotMatch(raw.toString(), /secret body/);
  assert.equal(email.attachments.length, 2);
});

test('delayed: a warning, with the retry deadline in words and in Will-Retry-Until', async () => {
  const retryUntil = new Date('2024-06-06T12:00:00.000Z');
  const raw = buildDsn(
    input({
      kind: 'delayed',
      retryUntil,
      recipients: [{ recipient: 'bob@remote.test', reply: parseReply('452 4.2.2 mailbox full') }],
    }),
  );
  assertWireForm(raw);
  const email = await parse(raw);
  assert.equal(email.subject, 'Delayed Mail (still being retried)');
  assert.equal(header(email, 'auto-submitted'), 'auto-replied');
  const text = (email.text ?? '').replace(/\r\n/g, '\n').replace(/\n/g, ' ');
  assert.match(text, /THIS IS A WARNING ONLY\. YOU DO NOT NEED TO RESEND YOUR MESSAGE\./);
  assert.match(text, /has not yet been delivered to the recipients listed below after 1\.3 days/);
  assert.match(text, /still being attempted: the mail system will keep trying until Thu, 06 Jun 2024 12:00:00 \+0000/);
  assert.match(text, /Reply: 452 4\.2\.2 mailbox full/);
  assert.deepEqual(statusGroups(part(email, 'message/delivery-status'))[1], {
    'final-recipient': 'rfc822; bob@remote.test',
    action: 'delayed',
    status: '4.2.2',
    'diagnostic-code': 'smtp; 452 4.2.2 mailbox full',
    'will-retry-until': 'Thu, 06 Jun 2024 12:00:00 +0000',
  });
});

test('wire form: long replies are folded (and unfold to the same text), long header lines stay under 998', async () => {
  const long = `550 5.7.1 ${Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ')}`;
  const token = 'x'.repeat(3000);
  const raw = buildDsn(
    input({
      recipients: [
        { recipient: 'bob@remote.test', reply: parseReply(long) },
        { recipient: 'carol@other.test', reply: parseReply(`554 ${token}`) },
      ],
      originalHeaders: `X-Long: ${'y'.repeat(2500)}\r\nSubject: s\r\n`,
    }),
  );
  assertWireForm(raw);
  const email = await parse(raw);
  const groups = statusGroups(part(email, 'message/delivery-status'));
  assert.equal(groups[1]?.['diagnostic-code'], `smtp; ${long}`);
  // A token longer than a line is split (it cannot be folded at a space); nothing is lost.
  assert.equal(groups[2]?.['diagnostic-code']?.replace(/ /g, ''), `smtp;554${token}`);
  const headers = part(email, 'text/rfc822-headers');
  assert.equal(headers.replace(/\r?\n /g, '').split(/\r?\n/)[0], `X-Long: ${'y'.repeat(2500)}`);
});

test('nothing the caller passes can add a header or a part', async () => {
  const raw = buildDsn(
    input({
      to: 'alice@example.org>\r\nBcc: <victim@example.net',
      originalMessageId: '<m1@example.org>\r\nX-Injected: 1',
      recipients: [{ recipient: 'bob@remote.test\r\nAction: delivered', status: 'bogus', reply: { code: 550, enhanced: null, text: 'no\r\n\r\n--boundary' } }],
    }),
  );
  assertWireForm(raw);
  const email = await parse(raw);
  assert.equal(header(email, 'bcc'), undefined);
  assert.equal(header(email, 'x-injected'), undefined);
  const groups = statusGroups(part(email, 'message/delivery-status'));
  assert.equal(groups.length, 2);
  assert.equal(groups[1]?.action, 'failed');
  assert.equal(groups[1]?.status, '5.0.0', 'an invalid status is replaced by the generic one of the action');
  assert.equal(groups[1]?.['final-recipient'], 'rfc822; bob@remote.test Action: delivered');
});

test('non-ASCII: base64 notice, RFC 6533 escapes in the report, 8bit original headers', async () => {
  const raw = buildDsn(
    input({
      to: 'jörg@example.org',
      recipients: [{ recipient: 'zoë@bücher.test', reply: parseReply('550 5.1.1 unbekannt: zoë') }],
      originalHeaders: 'From: Jörg <jörg@example.org>\r\nSubject: Grüße\r\n',
    }),
  );
  assertWireForm(raw);
  assert.match(raw.toString(), /Content-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64/);
  assert.match(raw.toString(), /Content-Type: text\/rfc822-headers\r\nContent-Transfer-Encoding: 8bit/);
  const email = await parse(raw);
  assert.match(email.text ?? '', /<zoë@bücher\.test>/);
  const report = part(email, 'message/delivery-status');
  assert.match(report, /^[\x00-\x7f]*$/, 'the report is US-ASCII');
  const groups = statusGroups(report);
  assert.equal(groups[1]?.['final-recipient'], 'rfc822; zo\\x{EB}@b\\x{FC}cher.test');
  assert.equal(groups[1]?.['diagnostic-code'], 'smtp; 550 5.1.1 unbekannt: zo\\x{EB}');
  assert.match(part(email, 'text/rfc822-headers'), /Subject: Grüße/);
});

test('defaults: no headers part without original headers; Date now; a fresh Message-ID each time', async () => {
  const before = Date.now();
  const { date: _unused, ...rest } = input({ originalHeaders: '', originalMessageId: null });
  const a = await parse(buildDsn(rest));
  const b = await parse(buildDsn(rest));
  assert.deepEqual(
    a.attachments.map((x) => x.mimeType),
    ['message/delivery-status'],
  );
  const sent = Date.parse(a.date ?? '');
  assert.ok(sent >= Math.floor(before / 1000) * 1000 && sent <= Date.now());
  assert.notEqual(a.messageId, b.messageId);
  assert.match(a.text ?? '', /Your message received on Sat, 01 Jun 2024 12:00:00 \+0000 could\s+not\s+be\s+delivered/);
  const given = await parse(buildDsn({ ...rest, messageId: '<fixed@mx.example.org>' }));
  assert.equal(given.messageId, '<fixed@mx.example.org>');
  assert.deepEqual(DSN_SUBJECTS, { failed: 'Undelivered Mail Returned to Sender', delayed: 'Delayed Mail (still being retried)' });
});

test('parseReply and statusOf: the enhanced code of a reply, else from the basic code, else the fallback', () => {
  const rows: Array<[reply: string, fallback: string, expected: string]> = [
    ['550 5.1.1 <x@y>: no such user', '5.0.0', '5.1.1'],
    ['550-5.7.1 policy', '5.0.0', '5.7.1'],
    ['452 4.2.2 mailbox full', '4.0.0', '4.2.2'],
    ['4.4.1 connection refused by mx[192.0.2.1]', '4.0.0', '4.4.1'],
    ['5.1.2 domain has no MX (null MX)', '5.0.0', '5.1.2'],
    ['554 transaction failed', '5.0.0', '5.0.0'],
    ['421 closing', '4.0.0', '4.0.0'],
    ['550 5.1.10 recipient does not exist', '5.0.0', '5.1.10'],
    ['550 5.1.1x', '5.0.0', '5.0.0'],
    ['timeout', '4.4.2', '4.4.2'],
    ['', '5.0.0', '5.0.0'],
    ['  250 2.0.0 ok', '5.0.0', '2.0.0'],
  ];
  for (const [reply, fallback, expected] of rows) assert.equal(statusOf(parseReply(reply), fallback), expected, reply);
});

test('describeDuration and formatRfc5322Date', () => {
  const rows: Array<[ms: number, expected: string]> = [
    [5 * 86_400_000, '5 days'],
    [86_400_000, '1 day'],
    [1.5 * 86_400_000, '1.5 days'],
    [4 * 3_600_000, '4 hours'],
    [3_600_000 + 60_000, '1 hour'],
    [90_000, '1.5 minutes'],
    [59_000, '59 seconds'],
    [1000, '1 second'],
    [-5, '0 seconds'],
  ];
  for (const [ms, expected] of rows) assert.equal(describeDuration(ms), expected, String(ms));
  assert.equal(formatRfc5322Date(new Date('2024-06-01T02:03:04.999Z')), 'Sat, 01 Jun 2024 02:03:04 +0000');
  assert.equal(formatRfc5322Date(new Date('2025-12-31T23:59:59Z')), 'Wed, 31 Dec 2025 23:59:59 +0000');
});
