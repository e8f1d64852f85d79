/**
 * neomutt, a terminal mail client, driven as a person would under tmux
 * (send-keys, capture-pane), over implicit TLS verified with the test
 * server's certificate: open INBOX and read a message, go to the Screener,
 * save a held stranger's message to INBOX (neomutt's UID MOVE), which
 * approves the sender (the same stored decision as `twoway requests
 * approve`), then read the released message in INBOX.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { serverCa } from './helpers/raw-imap.ts';
import { eventually, send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const exec = promisify(execFile);
const missing = ['neomutt', 'tmux'].filter((b) => !existsSync(`/usr/bin/${b}`));
const skip = missing.length > 0 && !process.env.CI ? `no ${missing.join(', ')}` : undefined;

describe('neomutt under tmux', { skip }, () => {
  let t: TestServer;
  let dir: string;
  let userId: number;
  const socket = `twoway-neomutt-${process.pid}`;
  const tmux = (...args: string[]) => exec('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const screen = async () => (await tmux('capture-pane', '-p', '-t', 'nm')).stdout;
  const keys = (...k: string[]) => tmux('send-keys', '-t', 'nm', ...k);
  const waitScreen = (re: RegExp, what: string) =>
    eventually(async () => re.test(await screen()), 30_000, what).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${await screen()}`);
    });

  before(async () => {
    // far.test publishes SPF for 127.0.0.1: its mail is authenticated, so an approval lets it in.
    t = await startTestServer({ records: senderDomain('far.test').records });
    dir = mkdtempSync(join(tmpdir(), 'twoway-neomutt-'));
    userId = (await t.server.services.accounts.add('nina@example.test', 'nina-password-1', 'screen')).id;
    const c = new ImapFlow({ host: '127.0.0.1', port: t.server.imap!.tlsPort!, secure: true, tls: { ca: [serverCa(t)] }, auth: { user: 'nina@example.test', pass: 'nina-password-1' }, logger: false });
    await c.connect();
    await c.append('INBOX', 'From: Otto <otto@friends.test>\r\nTo: nina@example.test\r\nSubject: Welcome aboard\r\nDate: Tue, 04 Mar 2025 10:00:00 +0000\r\n\r\nThe first line of the welcome letter.\r\n');
    await c.logout();
    await send({ port: t.server.smtp.port, from: 'stranger@far.test', to: 'nina@example.test', subject: 'Hello from afar', text: 'A stranger writes a careful letter.\n' });
    await eventually(async () => (await t.server.services.screener.list(userId)).some((r) => r.sender === 'stranger@far.test'), 15_000, 'the held request');
    writeFileSync(join(dir, 'ca.pem'), serverCa(t));
    writeFileSync(
      join(dir, 'muttrc'),
      [
        `set folder = "imaps://nina@example.test@127.0.0.1:${t.server.imap!.tlsPort}/"`,
        'set spoolfile = "+INBOX"',
        'set imap_user = "nina@example.test"',
        'set imap_pass = "nina-password-1"',
        // GnuTLS neomutt: the trusted certificates; the server's is self-signed for 127.0.0.1.
        `set certificate_file = "${join(dir, 'ca.pem')}"`,
        'set ssl_force_tls = yes',
        'set confirmappend = no',
        'set delete = yes',
        'set move = no',
        'set mark_old = no',
        'set sort = date',
        'set mail_check = 1',
        'set timeout = 1',
        'set help = no',
        `set tmpdir = "${dir}"`,
        'set header_cache = ""',
        'set message_cachedir = ""',
        '',
      ].join('\n'),
    );
    await tmux('new-session', '-d', '-s', 'nm', '-x', '160', '-y', '40', `TERM=xterm-256color neomutt -n -F ${join(dir, 'muttrc')}`);
  });
  after(async () => {
    await tmux('kill-server').catch(() => undefined);
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads INBOX, moves the Screener message to INBOX (the sender is approved), reads it there', { timeout: 120_000 }, async () => {
    await waitScreen(/Welcome aboard/, 'INBOX listed');
    await keys('Enter');
    await waitScreen(/The first line of the welcome letter\./, 'the message shown in the pager');
    await keys('q');
    await keys('c');
    await waitScreen(/Open mailbox/, 'the change-folder prompt');
    await keys('C-u', '=Screener', 'Enter');
    await waitScreen(/Hello from afar/, 'the Screener listed');
    assert.equal((await t.server.services.screener.list(userId)).find((r) => r.sender === 'stranger@far.test')?.status, 'pending');
    await keys('s');
    await waitScreen(/Save to mailbox/, 'the save prompt');
    await keys('C-u', '=INBOX', 'Enter');
    await eventually(async () => (await t.server.services.screener.list(userId)).find((r) => r.sender === 'stranger@far.test')?.status === 'approved', 30_000, 'the sender approved');
    assert.ok((await t.server.services.contacts.list(userId)).some((c) => c.entries.some((e) => e.value === 'stranger@far.test' && e.action === 'allow')));
    await keys('c');
    await waitScreen(/Open mailbox/, 'the change-folder prompt');
    await keys('C-u', '=INBOX', 'Enter');
    await waitScreen(/Hello from afar/, 'the approved message listed in INBOX');
    // Open the newest (sorted by date, it is last: `*` is last-entry): the pager shows the stranger's letter.
    await keys('*', 'Enter');
    await waitScreen(/A stranger writes a careful letter\./, 'the released message read in INBOX');
    const inbox = (await t.server.services.mail.list(userId, 'INBOX')).map((m) => m.subject).sort();
    assert.deepEqual(inbox, ['Hello from afar', 'Welcome aboard']);
    assert.deepEqual((await t.server.services.mail.list(userId, 'Screener')).map((m) => m.subject), []);
    await keys('q', 'q');
  });
});
