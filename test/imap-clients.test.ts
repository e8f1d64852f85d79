/**
 * Real IMAP clients against the server, over implicit TLS verified with the
 * test server's certificate: mbsync (Debian isync) keeping a Maildir in step
 * both ways, curl's imaps:// (LIST, APPEND, FETCH, SEARCH), and interimap's
 * QRESYNC synchronisation between twoway and a private Dovecot. What each
 * client did is checked from the server's side with imapflow.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { startDovecot, type Dovecot } from './helpers/dovecot.ts';
import { serverCa } from './helpers/raw-imap.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const have = (bin: string) => ['/usr/bin', '/usr/local/bin'].some((d) => existsSync(join(d, bin)));
const skipUnless = (bin: string) => (have(bin) || process.env.CI ? undefined : `no ${bin}`);

const message = (subject: string, body = `body of ${subject}`) =>
  [`From: Dana <dana@x.test>`, 'To: alice@example.test', `Subject: ${subject}`, 'Date: Tue, 04 Mar 2025 10:00:00 +0000', `Message-ID: <${subject.replace(/\W/g, '-')}@x.test>`, '', body, ''].join('\r\n');

/** Runs a client as a child process; asynchronously, since the server it talks to runs in this process. */
function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 100_000 });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The Maildir file names of one folder (cur and new), without mbsync's state files. */
const files = (dir: string) => ['cur', 'new'].flatMap((s) => (existsSync(join(dir, s)) ? readdirSync(join(dir, s)).map((f) => `${s}/${f}`) : [])).sort();

describe('IMAP with real clients', () => {
  let t: TestServer;
  let ca: string;
  let dir: string;
  const user = 'alice@example.test';
  const pass = 'alice-password-1';

  const imap = async <T>(f: (c: ImapFlow) => Promise<T>): Promise<T> => {
    const c = new ImapFlow({ host: '127.0.0.1', port: t.server.imap!.tlsPort!, secure: true, tls: { ca: [ca] }, auth: { user, pass }, logger: false });
    await c.connect();
    try {
      return await f(c);
    } finally {
      await c.logout().catch(() => c.close());
    }
  };
  /** subject → flags of every message in a folder, read from the server. */
  const serverView = (folder: string) =>
    imap(async (c) => {
      const lock = await c.getMailboxLock(folder);
      try {
        const out: Record<string, string[]> = {};
        if (c.mailbox && c.mailbox.exists > 0) for await (const m of c.fetch('1:*', { envelope: true, flags: true })) out[m.envelope!.subject!] = [...m.flags!].sort();
        return out;
      } finally {
        lock.release();
      }
    });

  before(async () => {
    t = await startTestServer();
    ca = serverCa(t);
    dir = mkdtempSync(join(tmpdir(), 'twoway-imap-clients-'));
    writeFileSync(join(dir, 'ca.pem'), ca);
    await t.server.services.accounts.add(user, pass, 'open');
  });
  after(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('curl imaps://: LIST, APPEND, FETCH by UID, a header section, SEARCH', { skip: skipUnless('curl') }, async () => {
    const base = `imaps://127.0.0.1:${t.server.imap!.tlsPort}`;
    const curl = (url: string, extra: string[] = []) => run('curl', ['-sS', '--cacert', join(dir, 'ca.pem'), '--user', `${user}:${pass}`, ...extra, url]);
    const list = await curl(`${base}/`);
    assert.equal(list.code, 0, list.err);
    for (const box of ['INBOX', 'Screener', 'Sent', 'Drafts', 'Junk', 'Trash']) assert.match(list.out, new RegExp(`^\\* LIST \\([^)]*\\) "/" "${box}"\\r?$`, 'm'));
    writeFileSync(join(dir, 'curl.eml'), message('sent with curl', 'hello from curl'));
    const put = await curl(`${base}/Drafts`, ['-T', join(dir, 'curl.eml')]);
    assert.equal(put.code, 0, put.err);
    const got = await curl(`${base}/Drafts;UID=1`);
    assert.equal(got.code, 0, got.err);
    assert.equal(got.out.replaceAll('\r\n', '\n'), message('sent with curl', 'hello from curl').replaceAll('\r\n', '\n'));
    assert.equal((await curl(`${base}/Drafts;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)`)).out.trim(), 'Subject: sent with curl');
    assert.match((await curl(`${base}/Drafts?SUBJECT%20curl`)).out, /^\* SEARCH 1\r?$/m);
    assert.match((await curl(`${base}/Drafts?SUBJECT%20nothing-like-it`)).out, /^\* SEARCH\r?$/m);
    // A wrong password is refused (curl's "login denied").
    assert.equal((await run('curl', ['-sS', '--cacert', join(dir, 'ca.pem'), '--user', `${user}:wrong`, `${base}/`])).code, 67);
  });

  it('mbsync: a Maildir round trip both ways (messages, folders, flags, expunges), and a run with nothing to do transfers nothing', { skip: skipUnless('mbsync'), timeout: 120_000 }, async () => {
    await imap(async (c) => {
      await c.mailboxCreate('Projects');
      for (let i = 1; i <= 3; i++) await c.append('INBOX', message(`server ${i}`), i === 2 ? ['\\Flagged'] : []);
      await c.append('Projects', message('project plan'), ['\\Seen']);
    });
    const local = join(dir, 'mbsync');
    mkdirSync(local);
    const rc = join(dir, 'mbsyncrc');
    writeFileSync(
      rc,
      [
        'IMAPAccount tw',
        'Host 127.0.0.1',
        `Port ${t.server.imap!.tlsPort}`,
        `User ${user}`,
        `Pass ${pass}`,
        'SSLType IMAPS',
        `CertificateFile ${join(dir, 'ca.pem')}`,
        '',
        'IMAPStore remote',
        'Account tw',
        '',
        'MaildirStore local',
        `Path ${local}/`,
        `Inbox ${local}/INBOX`,
        'SubFolders Verbatim',
        '',
        'Channel tw',
        'Far :remote:',
        'Near :local:',
        'Patterns *',
        'Create Both',
        'Expunge Both',
        'SyncState *',
        '',
      ].join('\n'),
    );
    const mbsync = async (extra: string[] = []) => {
      const r = await run('mbsync', ['-c', rc, '-a', ...extra]);
      assert.equal(r.code, 0, `${r.out}\n${r.err}`);
      return r;
    };
    await mbsync();
    const inbox = join(local, 'INBOX');
    let names = files(inbox);
    assert.equal(names.length, 3);
    assert.equal(names.filter((n) => /:2,F$/.test(n)).length, 1, names.join(' '));
    assert.deepEqual(files(join(local, 'Projects')).map((n) => n.replace(/^.*:2,/, '')), ['S']);

    // Near side changes: a new message, a flag, a new folder; the far side gets them.
    writeFileSync(join(inbox, 'new', '1700000000.local1.host'), message('written locally'));
    const unflagged = names.find((n) => !/:2,F$/.test(n))!;
    renameSync(join(inbox, unflagged), join(inbox, unflagged.replace(/:2,.*$/, ':2,S')));
    mkdirSync(join(local, 'Local', 'cur'), { recursive: true });
    mkdirSync(join(local, 'Local', 'new'));
    mkdirSync(join(local, 'Local', 'tmp'));
    writeFileSync(join(local, 'Local', 'cur', '1700000001.local2.host:2,FS'), message('local folder'));
    await mbsync();
    const after2 = await serverView('INBOX');
    assert.deepEqual(Object.keys(after2).sort(), ['server 1', 'server 2', 'server 3', 'written locally']);
    assert.equal(Object.values(after2).filter((f) => f.join() === '\\Seen').length, 1);
    assert.deepEqual(after2['server 2'], ['\\Flagged']);
    assert.deepEqual(await serverView('Local'), { 'local folder': ['\\Flagged', '\\Seen'] });

    // Far side changes: a flag and an expunge reach the Maildir.
    await imap(async (c) => {
      const lock = await c.getMailboxLock('INBOX');
      try {
        const uids = await c.search({ subject: 'server 3' }, { uid: true });
        await c.messageFlagsAdd(uids as number[], ['\\Answered'], { uid: true });
        const gone = await c.search({ subject: 'server 1' }, { uid: true });
        await c.messageDelete(gone as number[], { uid: true });
      } finally {
        lock.release();
      }
    });
    await mbsync();
    names = files(inbox);
    assert.equal(names.length, 3, names.join(' '));
    assert.equal(names.filter((n) => /:2,[A-Z]*R/.test(n)).length, 1, names.join(' '));

    // Nothing changed on either side: no message or flag travels, the Maildir is as it was.
    const before = files(inbox).concat(files(join(local, 'Local')), files(join(local, 'Projects')));
    const quiet = await mbsync(['-Dn']);
    const sent = quiet.out.split('\n').filter((l) => l.startsWith('>>> '));
    assert.ok(sent.some((l) => /SELECT "INBOX"/.test(l)), quiet.out);
    assert.deepEqual(sent.filter((l) => /APPEND|STORE|EXPUNGE|BODY|RFC822|MOVE|COPY/i.test(l)), []);
    assert.deepEqual(files(inbox).concat(files(join(local, 'Local')), files(join(local, 'Projects'))), before);
  });

  it('interimap: QRESYNC synchronisation between twoway and a private Dovecot, both ways, then incremental', { skip: skipUnless('interimap'), timeout: 120_000 }, async () => {
    let dovecot: Dovecot | undefined;
    try {
      dovecot = await startDovecot();
      const conf = join(dir, 'interimap.conf');
      writeFileSync(
        conf,
        [
          `database = ${join(dir, 'interimap.db')}`,
          'list-mailbox = INBOX Archive',
          '',
          '[local]',
          'type = imap',
          'host = 127.0.0.1',
          `port = ${dovecot.port}`,
          'STARTTLS = NO',
          `username = ${dovecot.user}`,
          `password = ${dovecot.password}`,
          '',
          '[remote]',
          'type = imaps',
          'host = 127.0.0.1',
          `port = ${t.server.imap!.tlsPort}`,
          `username = ${user}`,
          `password = ${pass}`,
          `SSL_CAfile = ${join(dir, 'ca.pem')}`,
          '',
        ].join('\n'),
      );
      await imap(async (c) => {
        await c.mailboxCreate('Archive');
        await c.append('Archive', message('archived on twoway'), ['\\Seen']);
      });
      const interimap = async () => {
        const r = await run('interimap', [`--config=${conf}`]);
        assert.equal(r.code, 0, `${r.out}\n${r.err}`);
        return r;
      };
      await interimap();
      const local = new ImapFlow({ host: '127.0.0.1', port: dovecot.port, secure: false, auth: { user: dovecot.user, pass: dovecot.password }, logger: false });
      await local.connect();
      try {
        const archive = await local.getMailboxLock('Archive');
        const found: string[] = [];
        for await (const m of local.fetch('1:*', { envelope: true, flags: true })) found.push(`${m.envelope!.subject} ${[...m.flags!].join(' ')}`);
        archive.release();
        assert.deepEqual(found, ['archived on twoway \\Seen']);
        // Changes on the Dovecot side travel to twoway on the next run (QRESYNC on both).
        await local.append('INBOX', message('from dovecot'), ['\\Flagged']);
        const lock = await local.getMailboxLock('Archive');
        await local.messageFlagsAdd('1:*', ['\\Answered']);
        lock.release();
      } finally {
        await local.logout().catch(() => local.close());
      }
      await interimap();
      assert.deepEqual((await serverView('INBOX'))['from dovecot'], ['\\Flagged']);
      assert.deepEqual(await serverView('Archive'), { 'archived on twoway': ['\\Answered', '\\Seen'] });
      // Then changes on twoway's side: an expunge reaches Dovecot.
      await imap(async (c) => {
        const lock = await c.getMailboxLock('INBOX');
        const uids = await c.search({ subject: 'from dovecot' }, { uid: true });
        await c.messageDelete(uids as number[], { uid: true });
        lock.release();
      });
      await interimap();
      const check = new ImapFlow({ host: '127.0.0.1', port: dovecot.port, secure: false, auth: { user: dovecot.user, pass: dovecot.password }, logger: false });
      await check.connect();
      const inDovecot: Record<string, string[]> = {};
      const lock = await check.getMailboxLock('INBOX');
      for await (const m of check.fetch('1:*', { envelope: true, flags: true })) inDovecot[m.envelope!.subject!] = [...m.flags!].sort();
      lock.release();
      await check.logout();
      // The two INBOXes are the same, message for message and flag for flag (the earlier tests' mail included).
      const twoway = await serverView('INBOX');
      assert.equal(twoway['from dovecot'], undefined);
      assert.ok(Object.keys(twoway).length >= 3);
      assert.deepEqual(inDovecot, twoway);
    } finally {
      await dovecot?.close();
    }
  });
});
