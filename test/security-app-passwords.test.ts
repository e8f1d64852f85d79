/**
 * Security: the app-password model (docs/reliability.md, "The app-password
 * model"), against a real server over HTTPS (API, CardDAV), SMTP submission
 * and the CLI.
 *
 * - An app password (or a session opened with one) never changes the
 *   password or the mode and never lists, creates or revokes app passwords.
 * - Scope `all`: submission, the API's mail routes, CardDAV. Scope
 *   `contacts`: CardDAV only.
 * - List / create / revoke over the API and the CLI; at most 50.
 * - A password change revokes app passwords and sessions unless kept.
 * - A login costs one scrypt whether the account has 0 or 50 app passwords
 *   (counted, not timed); a repeated right one costs none (the login cache).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { verificationCount } from '../src/core/password.ts';
import { basic, davFetch } from './helpers/carddav.ts';
import { startTestServer, submit, type TestServer } from './helpers/server.ts';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';
const PASS = 'alice-main-password';
const BIN = resolve('bin/twoway.js');

describe('security: app passwords', () => {
  let t: TestServer;
  let f: typeof globalThis.fetch;
  let closeAgent: () => Promise<void>;

  // `any`: tests index the JSON answers freely and assert their shapes.
  // biome-ignore lint/suspicious/noExplicitAny: tests index answers freely and assert their shapes.
  async function api(method: string, path: string, auth: string, json?: unknown): Promise<{ status: number; body: any; type: string }> {
    const res = await f(`${t.server.http.url}${path}`, {
      method,
      headers: { authorization: auth, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    return { status: res.status, body: /json/.test(type) && text ? JSON.parse(text) : text, type };
  }
  const bearer = (token: string) => `Bearer ${token}`;
  async function login(address: string, password: string): Promise<string> {
    const r = await api('POST', '/api/session', '', { address, password });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token as string;
  }
  async function create(address: string, password: string, name: string, scope?: 'all' | 'contacts') {
    const r = await api('POST', '/api/me/app-passwords', basic(address, password), { name, ...(scope ? { scope } : {}) });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as { id: number; publicId: string; name: string; scope: string; password: string; createdAt: string; lastUsedAt: string | null };
  }
  function cli(args: string[], input = '') {
    const r = spawnSync(process.execPath, [BIN, ...args, '--config', join(t.dir, 'twoway.toml')], { input, encoding: 'utf8', env: { ...process.env, TWOWAY_CONFIG: '' }, timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }
  const card = (uid: string) => `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:Friend ${uid}\r\nEMAIL:${uid}@friends.test\r\nEND:VCARD\r\n`;

  before(async () => {
    t = await startTestServer();
    ({ fetch: f, close: closeAgent } = davFetch(t));
    await t.server.services.accounts.add(ALICE, PASS, 'open');
    await t.server.services.accounts.add(BOB, 'bob-main-password', 'open');
    await t.server.services.accounts.add(CAROL, 'carol-main-password', 'open');
  });
  after(async () => {
    await closeAgent?.();
    await t?.close();
  });

  it('an app password, and a session opened with it, cannot take over the account (403 problem details)', async () => {
    const app = await create(ALICE, PASS, 'thunderbird');
    assert.match(app.password, /^twp_[0-9a-f]{12}_[A-Za-z0-9_-]+$/);
    assert.equal(app.password.split('_')[1], app.publicId);
    assert.equal(app.scope, 'all');
    const session = await login(ALICE, app.password);
    for (const auth of [basic(ALICE, app.password), bearer(session)]) {
      for (const [method, path, body] of [
        ['POST', '/api/me/password', { password: 'taken-over-password' }],
        ['POST', '/api/me/app-passwords', { name: 'another' }],
        ['GET', '/api/me/app-passwords', undefined],
        ['DELETE', `/api/me/app-passwords/${app.id}`, undefined],
        ['PUT', '/api/me/mode', { mode: 'strict' }],
        ['PUT', '/api/me/reveal-declined', { revealDeclined: true }],
      ] as const) {
        const r = await api(method, path, auth, body);
        assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
        assert.match(r.type, /^application\/problem\+json/);
        assert.equal(r.body.status, 403);
      }
      // The mail routes stay open to it.
      assert.equal((await api('GET', '/api/me', auth)).status, 200);
      assert.equal((await api('GET', '/api/messages?mailbox=INBOX', auth)).status, 200);
    }
    // Nothing changed: the main password still works, the mode is open, one app password.
    assert.equal((await api('GET', '/api/me', basic(ALICE, PASS))).body.mode, 'open');
    assert.equal((await api('GET', '/api/me/app-passwords', basic(ALICE, PASS))).body.length, 1);
  });

  it('scope all reaches submission, the API and CardDAV; scope contacts reaches CardDAV only', async () => {
    const all = await create(BOB, 'bob-main-password', 'laptop', 'all');
    const contacts = await create(BOB, 'bob-main-password', 'phone-contacts', 'contacts');
    assert.equal(contacts.scope, 'contacts');
    const port = t.server.submission!.port;

    assert.match(await submit({ port, user: BOB, pass: all.password, to: ALICE, subject: 'scope all' }), /^250/);
    await assert.rejects(submit({ port, user: BOB, pass: contacts.password, to: ALICE, subject: 'scope contacts' }), /535 5\.7\.8/);

    const book = `/dav/addressbooks/${BOB}/default/`;
    for (const [pass, uid] of [
      [all.password, 'via-all'],
      [contacts.password, 'via-contacts'],
    ] as const) {
      const put = await f(`${t.server.http.url}${book}${uid}.vcf`, { method: 'PUT', headers: { authorization: basic(BOB, pass), 'content-type': 'text/vcard' }, body: card(uid) });
      assert.equal(put.status, 201, `${uid}: ${await put.text()}`);
      const get = await f(`${t.server.http.url}${book}${uid}.vcf`, { headers: { authorization: basic(BOB, pass) } });
      assert.equal(get.status, 200);
      assert.match(await get.text(), new RegExp(`UID:${uid}`));
    }

    // The API: scope all reaches mail routes; scope contacts nothing, not even through a session.
    assert.equal((await api('GET', '/api/messages?mailbox=INBOX', basic(BOB, all.password))).status, 200);
    const contactsSession = await login(BOB, contacts.password);
    for (const auth of [basic(BOB, contacts.password), bearer(contactsSession)]) {
      for (const [method, path, body] of [
        ['GET', '/api/messages?mailbox=INBOX', undefined],
        ['GET', '/api/me', undefined],
        ['POST', '/api/send', { to: [ALICE], message: `From: ${BOB}\nTo: ${ALICE}\nSubject: x\n\nx\n` }],
        ['GET', '/api/contacts', undefined],
        ['PUT', '/api/me/mode', { mode: 'strict' }],
        ['POST', '/api/me/app-passwords', { name: 'more' }],
      ] as const) {
        const r = await api(method, path, auth, body);
        assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
      }
    }
    // Its session can still end itself.
    assert.equal((await api('DELETE', '/api/session', bearer(contactsSession))).status, 204);
  });

  it('lists, revokes (with its sessions) and records the last use; at most 50', async () => {
    const main = basic(CAROL, 'carol-main-password');
    const a = await create(CAROL, 'carol-main-password', 'mail client');
    let listed = (await api('GET', '/api/me/app-passwords', main)).body as Array<Record<string, unknown>>;
    assert.deepEqual(listed.map((x) => [x.id, x.name, x.scope, x.lastUsedAt]), [[a.id, 'mail client', 'all', null]]);
    assert.ok(!JSON.stringify(listed).includes(a.password), 'the secret is never listed');
    const session = await login(CAROL, a.password);
    listed = (await api('GET', '/api/me/app-passwords', main)).body;
    assert.ok(typeof listed[0]!.lastUsedAt === 'string', 'the login was recorded');

    assert.equal((await api('DELETE', `/api/me/app-passwords/${a.id}`, bearer(await login(CAROL, 'carol-main-password')))).status, 204);
    assert.equal((await api('GET', '/api/me', basic(CAROL, a.password))).status, 401);
    assert.equal((await api('GET', '/api/me', bearer(session))).status, 401, 'the session opened with it ended too');
    assert.equal((await api('DELETE', `/api/me/app-passwords/${a.id}`, main)).status, 404);
    // Bob cannot revoke Carol's.
    const c = await create(CAROL, 'carol-main-password', 'keep');
    assert.equal((await api('DELETE', `/api/me/app-passwords/${c.id}`, basic(BOB, 'bob-main-password'))).status, 404);
    assert.equal((await api('GET', '/api/me', basic(CAROL, c.password))).status, 200);

    // Up to 50 (created through the service: 49 more scrypt hashes), then 409.
    const carol = await t.server.services.accounts.get(CAROL);
    for (let i = 1; i < 50; i++) await t.server.services.accounts.addAppPassword(carol, `bulk ${i}`);
    const over = await api('POST', '/api/me/app-passwords', main, { name: 'one too many' });
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.match(over.body.detail, /50/);
  });

  it('a login costs one scrypt whether the account has 0 or 50 app passwords (looked up by id)', async () => {
    // Carol has 50 app passwords (previous test); Dave has none.
    await t.server.services.accounts.add('dave@example.test', 'dave-main-password', 'open');
    assert.equal((await t.server.services.accounts.listAppPasswords(await t.server.services.accounts.get(CAROL))).length, 50);
    const carolApp = (await t.server.services.accounts.listAppPasswords(await t.server.services.accounts.get(CAROL)))[10]!;
    const cost = async (address: string, password: string) => {
      const before = verificationCount();
      await t.server.services.accounts.authenticate(address, password).catch(() => undefined);
      return verificationCount() - before;
    };
    // A right password not yet verified by this process (the login cache would make a repeat free):
    // a new one, keeping the 50 app passwords.
    await t.server.services.accounts.setPassword(CAROL, 'carol-second-password', { appPasswords: true, sessions: true });
    const cases = {
      'wrong password, 0 app passwords': await cost('dave@example.test', 'wrong'),
      'wrong password, 50 app passwords': await cost(CAROL, 'wrong'),
      'right password, 50 app passwords, first login': await cost(CAROL, 'carol-second-password'),
      'unknown public id, 50 app passwords': await cost(CAROL, 'twp_0123456789ab_wrongsecret'),
      'known public id, wrong secret': await cost(CAROL, `twp_${carolApp.publicId}_wrongsecret`),
      "another user's public id": await cost('dave@example.test', `twp_${carolApp.publicId}_wrongsecret`),
      'unknown user': await cost('nobody@example.test', 'wrong'),
      'wrong password after a right one': await cost(CAROL, 'carol-second-passwordX'),
    };
    for (const [what, n] of Object.entries(cases)) assert.equal(n, 1, `${what}: ${n} scrypt runs`);
    // The login cache (server.login_cache): the same right password again costs none, over SMTP too.
    assert.equal(await cost(CAROL, 'carol-second-password'), 0, 'a repeated right login');
    const before = verificationCount();
    assert.match(await submit({ port: t.server.submission!.port, user: CAROL, pass: 'carol-second-password', to: ALICE, subject: 'cached login' }), /^250/);
    assert.equal(verificationCount() - before, 0, 'a repeated right login over submission');
    await assert.rejects(submit({ port: t.server.submission!.port, user: CAROL, pass: 'carol-main-password', to: ALICE, subject: 'old password' }), /535 5\.7\.8/);
    await t.server.services.accounts.setPassword(CAROL, 'carol-main-password', { appPasswords: true, sessions: true });
  });

  it('a password change revokes every app password and session unless kept (API and CLI)', async () => {
    const E = 'erin@example.test';
    await t.server.services.accounts.add(E, 'erin-password-1', 'open');
    const app1 = await create(E, 'erin-password-1', 'one');
    const session = await login(E, 'erin-password-1');
    // Keep both: nothing is revoked.
    assert.equal((await api('POST', '/api/me/password', bearer(session), { password: 'erin-password-2', keepAppPasswords: true, keepSessions: true })).status, 204);
    assert.equal((await api('GET', '/api/me', basic(E, app1.password))).status, 200);
    assert.equal((await api('GET', '/api/me', bearer(session))).status, 200);
    // The default: both go.
    assert.equal((await api('POST', '/api/me/password', bearer(session), { password: 'erin-password-3' })).status, 204);
    assert.equal((await api('GET', '/api/me', basic(E, app1.password))).status, 401);
    assert.equal((await api('GET', '/api/me', bearer(session))).status, 401);
    assert.equal((await api('GET', '/api/me', basic(E, 'erin-password-3'))).status, 200);

    // The CLI: create, list --json, revoke, passwd with and without --keep-app-passwords.
    const made = cli(['user', 'app-passwords', 'create', E, 'cli made', '--scope', 'contacts', '--json']);
    assert.equal(made.code, 0, made.err);
    const cliApp = JSON.parse(made.out) as { id: number; password: string; scope: string };
    assert.equal(cliApp.scope, 'contacts');
    const listed = cli(['user', 'app-passwords', 'list', E, '--json']);
    assert.equal(listed.code, 0, listed.err);
    assert.deepEqual((JSON.parse(listed.out) as Array<{ name: string }>).map((x) => x.name), ['cli made']);
    assert.equal(cli(['user', 'passwd', E, '--keep-app-passwords'], 'erin-password-4\n').code, 0);
    assert.equal((await f(`${t.server.http.url}/dav/addressbooks/${E}/default/`, { method: 'PROPFIND', headers: { authorization: basic(E, cliApp.password), depth: '0' } })).status, 207);
    const passwd = cli(['user', 'passwd', E], 'erin-password-5\n');
    assert.equal(passwd.code, 0, passwd.err);
    assert.match(passwd.out, /revoked 1 app password/);
    assert.equal((await f(`${t.server.http.url}/dav/addressbooks/${E}/default/`, { method: 'PROPFIND', headers: { authorization: basic(E, cliApp.password), depth: '0' } })).status, 401);
    const again = JSON.parse(cli(['user', 'app-passwords', 'create', E, 'second', '--json']).out) as { id: number };
    assert.equal(cli(['user', 'app-passwords', 'revoke', E, String(again.id)]).code, 0);
    const missing = cli(['user', 'app-passwords', 'revoke', E, String(again.id)]);
    assert.equal(missing.code, 4, missing.err);
  });
});
