/**
 * Migration 0024 on every backend: the sender's TWM recipient rows have no
 * index on `state` (nothing reads by it), and the two history indexes of
 * `recipient_events` are partial, each without the other kind's nulls, while
 * the history reads, and the deletes that cascade to it, still find rows.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Store } from './types.ts';
import { testBackends } from './test-backends.ts';

const backends = await testBackends();

for (const backend of backends) {
  describe(`TWM lean indexes (${backend.name})`, { skip: backend.skip }, () => {
    let store: Store;
    beforeEach(async () => {
      store = await backend.open();
    });
    afterEach(() => store.close());
    after(() => backend.cleanup());

    /** Index name -> its definition, for the tables the migration changed. */
    async function indexes(): Promise<Map<string, string>> {
      const rows =
        backend.name === 'sqlite'
          ? await backend.query(`SELECT name, sql AS def FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('twm_out_recipients', 'recipient_events')`)
          : await backend.query(`SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('twm_out_recipients', 'recipient_events')`);
      return new Map(rows.map((r) => [String(r.name), String(r.def)]));
    }

    test('no index on the TWM recipient state; the history indexes are partial', async () => {
      const defs = await indexes();
      assert.equal(defs.has('twm_out_recipients_state'), false, [...defs.keys()].join(', '));
      assert.match(defs.get('recipient_events_queue') ?? '', /where\s*\(?\s*"?queue_recipient_id"?\s+is\s+not\s+null/i);
      assert.match(defs.get('recipient_events_twm') ?? '', /where\s*\(?\s*"?twm_notice_id"?\s+is\s+not\s+null/i);
    });

    test("a TWM recipient's history is read back, and goes with its notice", async () => {
      const now = new Date();
      await store.twmOut.create({
        notice: {
          id: 'lean-1',
          messageId: 'm-lean-1',
          sender: 'ann@a.test',
          domain: 'b.test',
          content: Buffer.from('{}'),
          subject: 's',
          messageIdHeader: '<x@a.test>',
          size: 3,
          sha256: '0'.repeat(64),
          createdAt: now,
          expiresAt: new Date(now.getTime() + 1000),
        },
        recipients: ['bea@b.test'],
        raw: Buffer.from('abc'),
      });
      await store.twmOut.transition('lean-1', ['bea@b.test'], { from: ['queued'], to: 'accepted' }, now);
      const history = await store.twmOut.history(['lean-1']);
      assert.deepEqual(
        history.get('lean-1\nbea@b.test')?.map((e) => e.state),
        ['queued', 'accepted'],
      );
      // The notice's prune deletes its history with it (ON DELETE CASCADE through the partial index).
      await store.twmOut.transition('lean-1', ['bea@b.test'], { from: ['accepted'], to: 'delivered' }, now);
      assert.equal(await store.twmOut.prune(new Date(now.getTime() + 2000)), 1);
      assert.equal(await backend.count('recipient_events'), 0);
    });
  });
}
