/**
 * `twoway import USER SOURCE` (docs/imap.md "Moving in"): from an mbox file,
 * a Maildir, and a private Dovecot over implicit TLS (its own certificate,
 * trusted with `--ca`) as the source. Each is run twice: the second run adds
 * nothing. The people the user wrote to (imported Sent) become contacts,
 * unless `--no-contacts`. Malformed input gets a precise message and exit code.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { cli } from './helpers/cli.ts';
import { startDovecot, type Dovecot } from './helpers/dovecot.ts';

const msg = (from: string, to: string, subject: string, body: string, extra: string[] = []) =>
  [`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, 'Date: Tue, 04 Mar 2025 10:00:00 +0000', `Message-ID: <${subject.replace(/\W/g, '')}@x.test>`, ...extra, '', body, ''].join('\r\n');

describe('twoway import', () => {
  let dir: string;
  let cfg: string;
  let dovecot: Dovecot;
  const run = (args: string[], input = '') => cli([...args, '--config', cfg], input);
  const mailList = async (user: string) => JSON.parse((await run(['mail', 'list', user, '--json'])).out) as Array<{ mailbox: string; subject: string; flags: string[] }>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-import-'));
    cfg = join(dir, 'twoway.toml');
    assert.equal((await cli(['init', '--domain', 'a.test', '--dir', dir, '--smtp-port', '0', '--http-port', '0'])).code, 0);
    for (const u of ['ann@a.test', 'ben@a.test', 'cat@a.test']) assert.equal((await run(['user', 'add', u], 'secret-pw-1\n')).code, 0);
    dovecot = await startDovecot({ tls: true });
  });
  after(async () => {
    await dovecot?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an mbox file: From_ quoting undone, Status flags kept, 8-bit headers as they are; a second run adds nothing', async () => {
    const mbox = join(dir, 'old.mbox');
    const parts = [
      'From alice@x.test Sat Jan  3 01:05:34 2025',
      msg('alice@x.test', 'ann@a.test', 'first', 'Hello\r\n>From the start, mboxrd quoted this line.', ['Status: RO']).replaceAll('\r\n', '\n'),
      'From bob@x.test Sun Jan  4 10:00:00 2025',
      Buffer.from(msg('Bjørn <bob@x.test>', 'ann@a.test', 'second', 'Zweite Nachricht', ['X-Status: AF']), 'utf8').toString('latin1'),
      '',
    ];
    writeFileSync(mbox, Buffer.from(parts.join('\n'), 'latin1'));
    const first = await run(['import', 'ann@a.test', mbox]);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /imported 2 message\(s\) for ann@a\.test; 0 already there; 0 rejected/);
    const again = await run(['import', 'ann@a.test', mbox]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /imported 0 message\(s\) for ann@a\.test; 2 already there/);
    const list = await mailList('ann@a.test');
    assert.equal(list.length, 2);
    const byS = new Map(list.map((m) => [m.subject, m]));
    assert.deepEqual(byS.get('first')!.flags, ['\\Seen']);
    assert.deepEqual([...byS.get('second')!.flags].sort(), ['\\Answered', '\\Flagged']);
    const id = JSON.parse((await run(['mail', 'list', 'ann@a.test', '--json'])).out).find((m: { subject: string }) => m.subject === 'first').id;
    const shown = await run(['mail', 'show', 'ann@a.test', String(id)]);
    assert.equal(shown.code, 0, shown.err);
    assert.match(shown.out, /\r\nFrom the start, mboxrd quoted this line\.\r\n/);
    const id2 = JSON.parse((await run(['mail', 'list', 'ann@a.test', '--json'])).out).find((m: { subject: string }) => m.subject === 'second').id;
    assert.match((await run(['mail', 'show', 'ann@a.test', String(id2)])).out, /^From: Bjørn <bob@x\.test>\r$/m);
  });

  it('malformed input: not an mbox, an empty message, a missing source; each a clear message and exit code, nothing half-imported', async () => {
    const notMbox = join(dir, 'notes.txt');
    writeFileSync(notMbox, 'just some notes\nnot mail\n');
    const r1 = await run(['import', 'ben@a.test', notMbox]);
    assert.equal(r1.code, 2);
    assert.match(r1.err, /notes\.txt: line 1: the file does not start with a "From " line: not an mbox file/);
    const r2 = await run(['import', 'ben@a.test', join(dir, 'missing.mbox')]);
    assert.equal(r2.code, 2);
    assert.match(r2.err, /no such file or directory/);
    const r3 = await run(['import', 'ben@a.test', dir]);
    assert.equal(r3.code, 2);
    assert.match(r3.err, /is a directory but not a Maildir/);
    const mixed = join(dir, 'mixed.mbox');
    writeFileSync(mixed, ['From x@x.test Sat Jan  3 01:05:34 2025', 'not a header line', '', 'From y@x.test Sat Jan  3 01:05:34 2025', msg('y@x.test', 'ben@a.test', 'good', 'ok')].join('\n'));
    const r4 = await run(['import', 'ben@a.test', mixed]);
    assert.equal(r4.code, 1);
    assert.match(r4.out, /imported 1 message\(s\).*1 rejected/);
    assert.match(r4.out, /rejected mixed\.mbox line 1: no header/);
    assert.match(r4.err, /1 message\(s\) rejected/);
    assert.deepEqual((await mailList('ben@a.test')).map((m) => m.subject), ['good']);
  });

  it('a Maildir with Maildir++ folders: flags from the file names, Sent recipients become contacts unless --no-contacts', async () => {
    const md = join(dir, 'Maildir');
    for (const d of ['cur', 'new', 'tmp', '.Sent/cur', '.Sent/new', '.Archive.2024/cur']) mkdirSync(join(md, d), { recursive: true });
    writeFileSync(join(md, 'cur', '1700000000.1.host:2,S'), msg('dan@x.test', 'cat@a.test', 'inbox one', 'one'));
    writeFileSync(join(md, 'new', '1700000001.2.host'), msg('dan@x.test', 'cat@a.test', 'inbox two', 'two'));
    writeFileSync(join(md, '.Sent', 'cur', '1700000002.3.host:2,RS'), msg('cat@a.test', 'Eve <eve@y.test>, cat@a.test', 'sent one', 'hi eve', ['Cc: fay@y.test']));
    writeFileSync(join(md, '.Archive.2024', 'cur', '1700000003.4.host:2,FS'), msg('gus@x.test', 'cat@a.test', 'archived', 'old'));
    const r = await run(['import', 'cat@a.test', md, '--no-contacts']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /imported 4 message\(s\)/);
    assert.match(r.out, /contacts added from Sent: 0/);
    const list = await mailList('cat@a.test');
    const where = Object.fromEntries(list.map((m) => [m.subject, [m.mailbox, [...m.flags].sort().join(' ')]]));
    assert.deepEqual(where, {
      'inbox one': ['INBOX', '\\Seen'],
      'inbox two': ['INBOX', ''],
      'sent one': ['Sent', '\\Answered \\Seen'],
      archived: ['Archive/2024', '\\Flagged \\Seen'],
    });
    assert.doesNotMatch((await run(['contacts', 'list', 'cat@a.test'])).out, /eve@y\.test/);
    // Run again with contacts: nothing new is stored, and the correspondents are allowed.
    const again = await run(['import', 'cat@a.test', md]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /imported 0 message\(s\) for cat@a\.test; 4 already there/);
    assert.match(again.out, /contacts added from Sent: 2/);
    const contacts = (await run(['contacts', 'list', 'cat@a.test'])).out;
    assert.match(contacts, /eve@y\.test/);
    assert.match(contacts, /fay@y\.test/);
    assert.doesNotMatch(contacts, /cat@a\.test/);
  });

  it('an IMAP account (a private Dovecot over TLS, password on stdin): every folder, flags, Sent contacts; a second run adds nothing; a wrong password is exit 6', async () => {
    const src = new ImapFlow({ host: '127.0.0.1', port: dovecot.tlsPort!, secure: true, tls: { ca: [dovecot.ca!] }, auth: { user: dovecot.user, pass: dovecot.password }, logger: false });
    await src.connect();
    for (let i = 0; i < 30; i++) await src.append('INBOX', msg('hal@x.test', 'ann@a.test', `imap ${i}`, `body ${i}`), i % 2 ? ['\\Seen'] : []);
    await src.append('Sent', msg('ann@a.test', 'ivy@z.test', 'to ivy', 'hello'), ['\\Seen']);
    await src.mailboxCreate('Projects/Alpha');
    await src.append('Projects/Alpha', msg('jon@x.test', 'ann@a.test', 'alpha', 'α'), ['\\Flagged', '$Important']);
    await src.logout();
    const caFile = join(dir, 'dovecot-ca.pem');
    writeFileSync(caFile, dovecot.ca!);
    const url = `imaps://${encodeURIComponent(dovecot.user)}@127.0.0.1:${dovecot.tlsPort}`;
    const bad = await run(['import', 'ann@a.test', url, '--ca', caFile], 'wrong-password\n');
    assert.equal(bad.code, 6, bad.err);
    assert.match(bad.err, /login failed for peer@dovecot\.test/);
    const untrusted = await run(['import', 'ann@a.test', url], `${dovecot.password}\n`);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.err, /cannot connect to 127\.0\.0\.1:\d+: .*(CERT|SELF_SIGNED|certificate)/i);
    const r = await run(['import', 'ann@a.test', url, '--ca', caFile, '--json'], `${dovecot.password}\n`);
    assert.equal(r.code, 0, r.err);
    const summary = JSON.parse(r.out);
    assert.equal(summary.imported, 32);
    assert.deepEqual(summary.folders, { INBOX: 30, 'Projects/Alpha': 1, Sent: 1 });
    assert.equal(summary.contactsAdded, 1);
    const again = JSON.parse((await run(['import', 'ann@a.test', url, '--ca', caFile, '--json'], `${dovecot.password}\n`)).out);
    assert.equal(again.imported, 0);
    assert.equal(again.skipped, 32);
    const list = await mailList('ann@a.test');
    assert.equal(list.filter((m) => m.subject.startsWith('imap ')).length, 30);
    assert.equal(list.filter((m) => m.subject.startsWith('imap ') && m.flags.includes('\\Seen')).length, 15);
    assert.deepEqual([...list.find((m) => m.subject === 'alpha')!.flags].sort(), ['$Important', '\\Flagged']);
    assert.match((await run(['contacts', 'list', 'ann@a.test'])).out, /ivy@z\.test/);
  });
});
