/**
 * Debian's vdirsyncer syncs a user's address book both ways with the CardDAV
 * server: discovery from the server's root (well-known URI, principal,
 * home set), a card created on the server appears in the local filesystem
 * storage, a card added locally appears on the server, and edits travel
 * both ways. vdirsyncer trusts the server's certificate through `verify`.
 * Skipped when vdirsyncer is not installed, unless CI is set.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, type TestServer } from './helpers/server.ts';

const VDIRSYNCER = '/usr/bin/vdirsyncer';
const missing = !existsSync(VDIRSYNCER) && !process.env.CI ? 'vdirsyncer is not installed (apt-get install vdirsyncer)' : undefined;
const USER = 'sync@example.test';
const PASS = 'password-1';

const card = (uid: string, fn: string, email: string, eol = '\r\n') =>
  ['BEGIN:VCARD', 'VERSION:3.0', `UID:${uid}`, `FN:${fn}`, `N:${fn};;;;`, `EMAIL;TYPE=INTERNET:${email}`, 'END:VCARD', ''].join(eol);

describe('vdirsyncer syncs an address book both ways', { skip: missing }, () => {
  let t: TestServer;
  let userId: number;
  let local: string;
  let config: string;

  // Asynchronous: the server runs in this process and must keep answering while vdirsyncer talks to it.
  const vdirsyncer = (...args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(VDIRSYNCER, ['-c', config, ...args], {
        env: { ...process.env, HOME: t.dir, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' },
        timeout: 60_000,
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      // discover asks before creating the local collection.
      child.stdin.end('y\n'.repeat(10));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`vdirsyncer ${args.join(' ')} exited ${code}:\n${out}`))));
    });
  const localFiles = () => readdirSync(local).filter((n) => n.endsWith('.vcf'));
  const localText = () => localFiles().map((n) => readFileSync(join(local, n), 'utf8')).join('\n');
  const serverCards = async () => t.server.store.contacts.list(userId, 'default');

  before(async () => {
    t = await startTestServer();
    userId = (await t.server.services.accounts.add(USER, PASS, 'screen')).id;
    local = join(t.dir, 'vdir', 'contacts', 'default');
    config = join(t.dir, 'vdirsyncer.conf');
    mkdirSync(join(t.dir, 'vdir', 'status'), { recursive: true });
    writeFileSync(
      config,
      [
        '[general]',
        `status_path = "${join(t.dir, 'vdir', 'status')}/"`,
        '',
        '[pair contacts]',
        'a = "contacts_local"',
        'b = "contacts_remote"',
        'collections = ["from b"]',
        '',
        '[storage contacts_local]',
        'type = "filesystem"',
        `path = "${join(t.dir, 'vdir', 'contacts')}/"`,
        'fileext = ".vcf"',
        '',
        '[storage contacts_remote]',
        'type = "carddav"',
        `url = "${t.server.http.url}/"`,
        `username = "${USER}"`,
        `password = "${PASS}"`,
        `verify = "${t.server.config.tls.cert}"`,
        '',
      ].join('\n'),
    );
  });
  after(() => t.close());

  it('discovers the default book and pulls a card created on the server', async () => {
    await t.server.services.contacts.put(userId, 'default', card('server-1', 'Server One', 'one@server.test'));
    await vdirsyncer('discover', 'contacts');
    await vdirsyncer('sync');
    assert.equal(localFiles().length, 1);
    assert.match(localText(), /UID:server-1/);
  });

  it('pushes a card added locally; the policy index sees it', async () => {
    writeFileSync(join(local, 'local-1.vcf'), card('local-1', 'Local One', 'one@local.test', '\n'));
    await vdirsyncer('sync');
    const cards = await serverCards();
    const pushed = cards.find((c) => c.uid === 'local-1');
    assert.ok(pushed, 'the local card reached the server');
    // Stored as the client sent it.
    assert.match(pushed.vcard, /EMAIL;TYPE=INTERNET:one@local\.test/);
    assert.equal((await t.server.store.contacts.match(userId, [{ kind: 'address', value: 'one@local.test' }])).length, 1);
  });

  it('carries edits both ways', async () => {
    // Server-side edit (as the CLI or another CardDAV client would make it).
    await t.server.services.contacts.put(userId, 'default', card('server-1', 'Server One Edited', 'one-new@server.test'));
    await vdirsyncer('sync');
    assert.match(localText(), /FN:Server One Edited/);
    assert.doesNotMatch(localText(), /one@server\.test/);

    // Local edit.
    const file = localFiles().find((n) => readFileSync(join(local, n), 'utf8').includes('UID:local-1'))!;
    writeFileSync(join(local, file), card('local-1', 'Local One Edited', 'one-new@local.test', '\n'));
    await vdirsyncer('sync');
    const pushed = (await serverCards()).find((c) => c.uid === 'local-1');
    assert.match(pushed?.vcard ?? '', /FN:Local One Edited/);
    assert.deepEqual(await t.server.store.contacts.match(userId, [{ kind: 'address', value: 'one@local.test' }]), []);

    // A deletion on the server reaches the local side too.
    await t.server.store.contacts.remove(userId, 'default', 'server-1');
    await vdirsyncer('sync');
    assert.doesNotMatch(localText(), /UID:server-1/);
    assert.equal(localFiles().length, 1);
  });
});
