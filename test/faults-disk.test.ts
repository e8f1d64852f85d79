/**
 * Fault test: a full disk (issue #6). The store lives on a small tmpfs
 * (needs root to mount; skipped otherwise, required in CI). A filler file
 * takes most of the space, then messages arrive over SMTP until the disk is
 * full: from then on the server must answer 452 4.3.1 (insufficient system
 * storage, RFC 3463), not a generic 451, and stay up. Once the filler is
 * removed it accepts mail again without a restart, and afterwards every
 * acknowledged message is in the store and SQLite's integrity check passes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const RCPT = 'rcpt@example.test';
const TMPFS_SIZE = '4m';

function mountTmpfs(): { dir: string; unmount(): void } | string {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const dir = mkdtempSync(join(tmpdir(), 'twoway-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', dir]);
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs: ${r.stderr.toString().trim()}`;
  }
  return {
    dir,
    unmount() {
      // Lazy: the store's WAL sync keeps a file handle open after close (src/store/wal-sync.ts), which makes a plain umount EBUSY.
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const freeBytes = (dir: string) => Number(execFileSync('df', ['--output=avail', '-B1', dir]).toString().split('\n')[1]);

describe('faults: disk full', { timeout: 60_000 }, () => {
  const mounted = mountTmpfs();
  const skip = typeof mounted === 'string' ? (process.env.CI ? false : mounted) : false;
  let t: TestServer;
  let dir: string;

  before(async () => {
    if (typeof mounted === 'string') {
      if (process.env.CI) throw new Error(mounted);
      return;
    }
    dir = mounted.dir;
    t = await startTestServer({ storage: `sqlite:${join(dir, 'twoway.db')}` });
    await t.server.services.accounts.add(RCPT, 'password-1', 'open');
  });
  after(async () => {
    await t?.close();
    if (typeof mounted !== 'string') mounted.unmount();
  });

  async function sendOne(client: RawSmtp, subject: string, size: number): Promise<string> {
    await client.command('RSET');
    await client.command('MAIL FROM:<s@client.test>');
    await client.command(`RCPT TO:<${RCPT}>`);
    const go = await client.command('DATA');
    if (!go.startsWith('354')) return go;
    // Unique bodies: the store shares identical ones.
    const line = `${subject} ${'x'.repeat(70)}\r\n`;
    client.write(`From: s@client.test\r\nSubject: ${subject}\r\n\r\n${line.repeat(Math.ceil(size / line.length))}.\r\n`);
    return client.reply(20_000);
  }

  it('refuses with 452 4.3.1 when the disk is full, recovers when space returns, and loses or corrupts nothing', { skip }, async (tc) => {
    // Leave about 400 KB: a few messages fit, then the disk is full.
    const filler = join(dir, 'filler');
    writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(dir) - 400 * 1024)));
    const { client } = await RawSmtp.open(t.server.smtp.port);
    await client.command('EHLO client.test');
    const acked: string[] = [];
    const refusals: string[] = [];
    for (let i = 0; i < 40 && refusals.length < 3; i++) {
      const subject = `full-${i}`;
      const reply = await sendOne(client, subject, 48 * 1024);
      if (reply.startsWith('250 ')) acked.push(subject);
      else refusals.push(reply);
    }
    tc.diagnostic(`${acked.length} accepted before the disk was full; then: ${JSON.stringify(refusals)}; free ${freeBytes(dir)} bytes`);
    assert.ok(acked.length > 0, 'some messages fit');
    assert.equal(refusals.length, 3, 'the disk filled up');
    for (const r of refusals) assert.match(r, /^452 4\.3\.1 /, 'insufficient storage, a temporary refusal with its own code');

    // Space comes back: accepted again, on the same connection, no restart.
    rmSync(filler);
    const again = await sendOne(client, 'after-space-returned', 4 * 1024);
    assert.match(again, /^250 /);
    acked.push('after-space-returned');
    client.close();

    const user = await t.server.services.accounts.get(RCPT);
    const stored = new Set((await t.server.services.mail.list(user.id, 'INBOX', { limit: 10_000 })).map((m) => m.subject));
    assert.deepEqual(acked.filter((s) => !stored.has(s)), [], 'every acknowledged message is stored');
    assert.equal(stored.size, acked.length, 'nothing refused was stored');

    // After a clean close, the database file passes SQLite's own check.
    await t.close();
    const db = new Database(join(dir, 'twoway.db'), { readonly: true });
    try {
      assert.equal((db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
      assert.equal((db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n, acked.length);
    } finally {
      db.close();
    }
    t = undefined as unknown as TestServer; // closed above
  });
});
