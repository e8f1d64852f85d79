/** openStore: URL forms, durable SQLite settings, reopening, clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore, parseStoreUrl, redactUrl } from './open.ts';
import { testBackends } from './test-backends.ts';
import { migrations } from './migrations.ts';

test('parseStoreUrl understands every documented form', () => {
  assert.deepEqual(parseStoreUrl('sqlite:/var/lib/twoway/mail.db'), { kind: 'sqlite', path: '/var/lib/twoway/mail.db' });
  assert.deepEqual(parseStoreUrl('sqlite:data/mail.db'), { kind: 'sqlite', path: 'data/mail.db' });
  assert.deepEqual(parseStoreUrl('sqlite:///abs/mail.db'), { kind: 'sqlite', path: '/abs/mail.db' });
  assert.deepEqual(parseStoreUrl('sqlite::memory:'), { kind: 'sqlite', path: ':memory:' });
  assert.deepEqual(parseStoreUrl('/abs/mail.db'), { kind: 'sqlite', path: '/abs/mail.db' });
  assert.deepEqual(parseStoreUrl('mail.db'), { kind: 'sqlite', path: 'mail.db' });
  assert.deepEqual(parseStoreUrl('file:///abs/mail.db'), { kind: 'sqlite', path: '/abs/mail.db' });
  assert.deepEqual(parseStoreUrl('postgres://u:p@db:5432/mail?schema=tenant_1&sslmode=disable'), {
    kind: 'postgres',
    connectionString: 'postgres://u:p@db:5432/mail?sslmode=disable',
    schema: 'tenant_1',
  });
  assert.deepEqual(parseStoreUrl('postgresql://db/mail'), { kind: 'postgres', connectionString: 'postgresql://db/mail', schema: undefined });
});

test('bad URLs are refused with a message that names them, never the password', () => {
  assert.throws(() => parseStoreUrl('mysql://root:hunter2@db/mail'), (err: Error) => {
    assert.match(err.message, /mysql:\/\/root:\*\*\*@db\/mail/);
    assert.doesNotMatch(err.message, /hunter2/);
    return true;
  });
  assert.throws(() => parseStoreUrl('postgres://u:hunter2@db/mail?schema=x;drop'), (err: Error) => !err.message.includes('hunter2') && /schema/.test(err.message));
  assert.throws(() => parseStoreUrl('sqlite:'), /names no file/);
  assert.throws(() => parseStoreUrl(''), /empty/);
  assert.equal(redactUrl('postgres://u:secret@h/db'), 'postgres://u:***@h/db');
  assert.equal(redactUrl('postgres://h/db'), 'postgres://h/db');
});

test('an unreachable PostgreSQL server gives a clear error without the password', async () => {
  await assert.rejects(openStore('postgres://postgres:hunter2@127.0.0.1:1/nothing'), (err: Error) => {
    assert.match(err.message, /^Cannot open PostgreSQL store postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nothing: /);
    assert.doesNotMatch(err.message, /hunter2/);
    return true;
  });
});

test('an SQLite file that cannot be created gives a clear error', async () => {
  await assert.rejects(openStore('sqlite:/nonexistent-dir/x/mail.db'), /Cannot open SQLite store sqlite:\/nonexistent-dir\/x\/mail\.db/);
});

test('SQLite: WAL on disk, data survives reopening, migrations run once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-open-'));
  try {
    const file = join(dir, 'mail.db');
    const logs: string[] = [];
    const s1 = await openStore(file, { log: (m) => logs.push(m) });
    assert.equal(s1.kind, 'sqlite');
    await s1.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
    await s1.close();
    await s1.close(); // idempotent
    // Every migration, in name order (the list grows; the test should not need editing for it).
    const applied = Object.keys(migrations('sqlite'))
      .sort()
      .map((name) => `store: applied migration ${name}`);
    assert.equal(applied[0], 'store: applied migration 0001_initial');
    assert.deepEqual(logs, applied);

    const raw = new Database(file, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();

    const s2 = await openStore(`sqlite:${file}`, { log: (m) => logs.push(m) });
    assert.equal((await s2.users.findByAddress('a@example.com'))?.address, 'a@example.com');
    await s2.close();
    assert.equal(logs.length, applied.length, 'no migration the second time');

    const mem = await openStore('sqlite::memory:');
    assert.deepEqual(await mem.users.list(), []);
    await mem.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const pgBackend = (await testBackends()).find((b) => b.name === 'postgres')!;
test('PostgreSQL: ?schema= isolates stores; reopening keeps data', { skip: pgBackend.skip }, async () => {
  try {
    const a = await pgBackend.open();
    const b = await pgBackend.open();
    assert.equal(a.kind, 'postgres');
    await a.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' });
    assert.deepEqual(await b.users.list(), []);
    await b.users.create({ address: 'a@example.com', passwordHash: 'h', mode: 'open' }); // no conflict across schemas
    assert.equal(await pgBackend.count('users'), 1);
    await a.close();
    await b.close();
    const logs: string[] = [];
    const again = await openStore(pgBackend.url(), { log: (m) => logs.push(m) });
    assert.equal((await again.users.list()).length, 1);
    assert.deepEqual(logs, [], 'no migration the second time');
    await again.close();
  } finally {
    await pgBackend.cleanup();
  }
});
