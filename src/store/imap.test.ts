/**
 * The IMAP repository on every backend (test-backends.ts): folders,
 * subscriptions, modseqs raised by every writer, the expunge record,
 * UNCHANGEDSINCE, copy and move with new UIDs, stored structures and IMAP
 * wire text (migration 0019, filled on first read for older rows), and the
 * change bus announcing each committed write.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { User } from '../core/types.ts';
import type { NewMessage, Store } from './types.ts';
import { StoreConflictError } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();

function msg(user: User, mailbox: string, subject: string): NewMessage {
  return {
    userId: user.id,
    mailbox: mailbox as 'INBOX',
    raw: Buffer.from(`From: a@b.test\r\nSubject: ${subject}\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\none\r\n--x\r\nContent-Type: text/html\r\n\r\n<b>two</b>\r\n--x--\r\n`),
    flags: [],
    sender: 'a@b.test',
    from: 'a@b.test',
    subject,
    receivedAt: new Date(),
    firstContact: false,
  };
}

for (const backend of backends) {
  describe(`imap repository (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    let alice: User;
    let bob: User;
    let events: number[];
    beforeEach(async () => {
      store = await backend.open();
      alice = await store.users.create({ address: 'alice@example.org', passwordHash: 'h', mode: 'open' });
      bob = await store.users.create({ address: 'bob@example.org', passwordHash: 'h', mode: 'open' });
      events = [];
      store.changes.on(alice.id, () => events.push(alice.id));
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    test('every user has six mailboxes; folders are created, renamed with their children, subscribed and removed', async () => {
      assert.deepEqual((await store.imap.mailboxes(alice.id)).map((b) => b.name).sort(), ['Drafts', 'INBOX', 'Junk', 'Screener', 'Sent', 'Trash']);
      assert.equal((await store.imap.mailbox(alice.id, 'inbox'))?.name, 'INBOX');
      await store.imap.create(alice.id, 'Work');
      await store.imap.create(alice.id, 'Work/2024');
      await assert.rejects(store.imap.create(alice.id, 'Work'), StoreConflictError);
      await store.imap.create(bob.id, 'Work');
      assert.equal(await store.imap.rename(alice.id, 'Work', 'Job'), true);
      assert.deepEqual((await store.imap.mailboxes(alice.id)).map((b) => b.name).filter((n) => n.startsWith('J')).sort(), ['Job', 'Job/2024', 'Junk']);
      await assert.rejects(store.imap.rename(alice.id, 'Job', 'Junk'), StoreConflictError);
      assert.ok(await store.imap.mailbox(bob.id, 'Work'), "bob's folder is untouched");
      await store.imap.subscribe(alice.id, 'Job', false);
      assert.equal((await store.imap.mailbox(alice.id, 'Job'))?.subscribed, false);
      await store.messages.deliver([msg(alice, 'Job', 'in job')]);
      assert.equal(await store.imap.remove(alice.id, 'Job'), true);
      assert.equal(await store.imap.mailbox(alice.id, 'Job'), undefined);
      assert.equal(await backend.count('message_bodies'), 0, 'bodies of removed folders are collected');
      assert.ok(events.length >= 4);
    });

    test('delivery stores the structure and raises HIGHESTMODSEQ; flags, UNCHANGEDSINCE, expunge record', async () => {
      const inbox = (await store.imap.mailbox(alice.id, 'INBOX'))!;
      const start = inbox.highestModseq;
      const [m1, m2] = await store.messages.deliver([msg(alice, 'INBOX', 'one'), msg(alice, 'INBOX', 'two')]);
      assert.equal(events.length, 1, 'one event per committed delivery');
      const after1 = (await store.imap.mailbox(alice.id, 'INBOX'))!;
      assert.equal(after1.highestModseq, start + 1);
      const rows = await store.imap.messages(inbox.id);
      assert.deepEqual(rows.map((r) => [r.uid, r.modseq]), [[1, start + 1], [2, start + 1]]);
      const structures = await store.imap.structures(alice.id, [m1!.id]);
      assert.equal(structures.get(m1!.id)!.body.parts!.length, 2);
      assert.equal(structures.get(m1!.id)!.envelope.subject, 'one');
      assert.equal((await store.imap.structures(bob.id, [m1!.id])).size, 0, "bob cannot read alice's structures");
      assert.equal((await store.imap.bodies(bob.id, [m1!.id])).size, 0, "nor her bodies");

      const r = await store.imap.setFlags(alice.id, inbox.id, [{ id: m1!.id, flags: ['\\Seen'] }]);
      assert.equal(r.updated[0]!.modseq, start + 2);
      const c = await store.imap.setFlags(alice.id, inbox.id, [{ id: m1!.id, flags: [] }, { id: m2!.id, flags: ['$x'] }], start + 1);
      assert.deepEqual(c.failed, [m1!.id]);
      assert.deepEqual(c.updated.map((u) => u.id), [m2!.id]);
      const since = await store.imap.changesSince(inbox.id, start + 1);
      assert.deepEqual(since.changed.map((m) => [m.uid, m.flags]), [[1, ['\\Seen']], [2, ['$x']]]);
      assert.equal(await store.imap.expunge(alice.id, inbox.id, [m1!.id]), 1);
      assert.equal(await store.imap.expunge(bob.id, inbox.id, [m2!.id]), 0, "bob cannot expunge alice's mail");
      const gone = await store.imap.changesSince(inbox.id, start + 3);
      assert.deepEqual(gone.expunged, [1]);
      assert.deepEqual((await store.imap.counts(inbox.id)), { messages: 1, unseen: 1, deleted: 0, size: rows[1]!.size });
    });

    test('the IMAP wire text is stored at delivery, copied with the message, and filled on first read for rows without it', async () => {
      const [m] = await store.messages.deliver([msg(alice, 'INBOX', 'wire "quoted"')]);
      const stored = (await store.imap.wireText(alice.id, [m!.id], true)).get(m!.id)!;
      assert.equal(
        stored.envelope,
        '(NIL "wire \\"quoted\\"" ((NIL NIL "a" "b.test")) ((NIL NIL "a" "b.test")) ((NIL NIL "a" "b.test")) NIL NIL NIL NIL NIL)',
      );
      assert.match(stored.bodyStructure, /^\(\("text" "plain" .*\) "mixed" \("boundary" "x"\) NIL NIL NIL\)$/);
      assert.match(stored.body, /^\(\("text" "plain" .*\) "mixed"\)$/);
      assert.equal((await store.imap.wireText(alice.id, [m!.id], false)).get(m!.id)!.body, '', 'BODY is read only when asked for');
      assert.equal((await store.imap.wireText(bob.id, [m!.id], true)).size, 0, "bob cannot read alice's wire text");
      const rows = await backend.query(`SELECT imap_envelope, imap_bodystructure, imap_body FROM messages WHERE id = ${m!.id}`);
      assert.deepEqual(rows[0], { imap_envelope: stored.envelope, imap_bodystructure: stored.bodyStructure, imap_body: stored.body }, 'rendered at delivery');
      const trash = (await store.imap.mailbox(alice.id, 'Trash'))!;
      const [copy] = await store.imap.copy(alice.id, [m!.id], trash.id);
      const copyRow = await backend.query(`SELECT id FROM messages WHERE mailbox_id = ${trash.id} AND uid = ${copy!.uid}`);
      assert.deepEqual((await backend.query(`SELECT imap_envelope FROM messages WHERE id = ${Number(copyRow[0]!.id)}`))[0], { imap_envelope: stored.envelope });

      // As migration 0019 leaves the rows stored before it.
      await backend.query(`UPDATE messages SET imap_envelope = NULL, imap_bodystructure = NULL, imap_body = NULL WHERE id = ${m!.id}`);
      assert.deepEqual((await store.imap.wireText(alice.id, [m!.id], true)).get(m!.id), stored, 'rendered from the structure');
      const filled = await backend.query(`SELECT imap_envelope, imap_bodystructure, imap_body FROM messages WHERE id = ${m!.id}`);
      assert.deepEqual(filled[0], { imap_envelope: stored.envelope, imap_bodystructure: stored.bodyStructure, imap_body: stored.body }, 'and stored');
    });

    test('a header with a NUL octet: the wire text is not stored (PostgreSQL text cannot hold it) and is rendered at each read', async () => {
      const raw = Buffer.from('From: a@b.test\r\nSubject: nul\0here\r\n\r\nbody\r\n', 'latin1');
      const [m] = await store.messages.deliver([{ ...msg(alice, 'INBOX', 'nul'), raw }]);
      const rows = await backend.query(`SELECT imap_envelope, imap_bodystructure FROM messages WHERE id = ${m!.id}`);
      assert.equal(rows[0]!.imap_envelope, null);
      assert.notEqual(rows[0]!.imap_bodystructure, null, 'the BODYSTRUCTURE has no NUL and is kept');
      const w = (await store.imap.wireText(alice.id, [m!.id], false)).get(m!.id)!;
      assert.ok(w.envelope.includes('{8}\r\nnul\0here'), 'the subject as a literal');
      assert.equal((await store.imap.wireText(alice.id, [m!.id], false)).get(m!.id)!.envelope, w.envelope, 'and again');
    });

    test('copy and move give new UIDs in the target; move records the expunge at the source; the old messages.move too', async () => {
      const inbox = (await store.imap.mailbox(alice.id, 'INBOX'))!;
      const trash = (await store.imap.mailbox(alice.id, 'Trash'))!;
      const [a, b, c] = await store.messages.deliver([msg(alice, 'INBOX', 'a'), msg(alice, 'INBOX', 'b'), msg(alice, 'INBOX', 'c')]);
      const copied = await store.imap.copy(alice.id, [b!.id, a!.id], trash.id);
      assert.deepEqual(copied.map((x) => [x.id, x.uid]), [[b!.id, 1], [a!.id, 2]]);
      const moved = await store.imap.move(alice.id, [c!.id], trash.id);
      assert.deepEqual(moved.map((x) => x.uid), [3]);
      assert.deepEqual((await store.imap.changesSince(inbox.id, 1)).expunged, [3]);
      assert.equal((await store.imap.move(alice.id, [a!.id], trash.id, (await store.imap.mailbox(alice.id, 'Sent'))!.id)).length, 0, 'onlyFrom: not in Sent');
      assert.equal(await store.messages.move(alice.id, [a!.id], 'Junk'), 1);
      assert.deepEqual((await store.imap.changesSince(inbox.id, 1)).expunged, [1, 3]);
      assert.equal((await store.imap.copy(bob.id, [b!.id], trash.id)).length, 0, "bob cannot copy alice's mail");
      assert.equal(await backend.count('message_bodies'), 3, 'copies share bodies');
    });
  });
}

test('migration 0009: existing users get Drafts (their Junk from 0007 is kept, not doubled), existing messages keep their UIDs and get their structure on first use', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { default: Database } = await import('better-sqlite3');
  const { Kysely, Migrator, SqliteDialect } = await import('kysely');
  const { migrations } = await import('./migrations.ts');
  const { openStore } = await import('./open.ts');
  const dir = mkdtempSync(join(tmpdir(), 'twoway-0008-'));
  const path = join(dir, 'old.db');
  try {
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new Database(path) }) });
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => migrations('sqlite') } }).migrateTo('0008_web_sessions');
    assert.ifError(error);
    const raw = new Database(path);
    raw.prepare(`INSERT INTO users (address, password_hash, mode, created_at) VALUES ('old@example.com', 'h', 'open', 0)`).run();
    for (const name of ['INBOX', 'Screener', 'Junk', 'Sent', 'Trash']) raw.prepare(`INSERT INTO mailboxes (user_id, name, uid_validity, uid_next) VALUES (1, ?, 12345, ?)`).run(name, name === 'INBOX' ? 8 : 1);
    raw.prepare(`INSERT INTO message_bodies (sha256, raw, size) VALUES ('x', ?, 30)`).run(Buffer.from('Subject: old one\r\n\r\nold body\r\n'));
    raw.prepare(`INSERT INTO messages (user_id, mailbox_id, uid, flags, size, received_at, first_contact, body_id) VALUES (1, 1, 7, '["\\\\Seen"]', 30, 0, 0, 1)`).run();
    raw.close();
    await db.destroy();

    const store = await openStore(`sqlite:${path}`);
    try {
      const boxes = await store.imap.mailboxes(1);
      assert.deepEqual(boxes.map((b) => [b.name, b.uidValidity, b.highestModseq]).sort(), [
        ['Drafts', 12345, 1],
        ['INBOX', 12345, 1],
        ['Junk', 12345, 1],
        ['Screener', 12345, 1],
        ['Sent', 12345, 1],
        ['Trash', 12345, 1],
      ]);
      const [m] = await store.imap.messages(boxes.find((b) => b.name === 'INBOX')!.id);
      assert.deepEqual([m!.uid, m!.flags, m!.modseq], [7, ['\\Seen'], 1]);
      assert.equal((await store.imap.structures(1, [m!.id])).get(m!.id)!.envelope.subject, 'old one');
      const check = new Database(path, { readonly: true });
      assert.match(String((check.prepare('SELECT structure FROM messages WHERE id = ?').get(m!.id) as { structure: string }).structure), /old one/, 'stored after the first use');
      check.close();
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
