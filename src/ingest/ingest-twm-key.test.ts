/**
 * A message fetched over TWM carries its notice's key; ingesting it again
 * (a refetch after a crash between storing it and recording that) stores
 * nothing twice, on SQLite and PostgreSQL.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testBackends } from '../store/test-backends.ts';
import { createIngest, type IngestMessage } from './ingest.ts';

for (const backend of await testBackends()) {
  describe(`ingest with a TWM key (${backend.name})`, { skip: backend.skip }, () => {
    after(() => backend.cleanup());

    it('stores a refetched message once per recipient, and still stores it for a recipient that lacks it', async () => {
      const store = await backend.open();
      try {
        const ingest = createIngest({ store, maxReceivedHeaders: 50 });
        const ann = await store.users.create({ address: 'ann@b.test', passwordHash: 'h', mode: 'open' });
        const bob = await store.users.create({ address: 'bob@b.test', passwordHash: 'h', mode: 'open' });
        const message = (recipients: IngestMessage['recipients']): IngestMessage => ({
          channel: 'twm',
          origin: 'remote',
          envelopeFrom: 'sam@a.test',
          recipients,
          raw: Buffer.from('From: sam@a.test\r\nSubject: once\r\n\r\nHello.\r\n'),
          prepend: '',
          auth: { identity: 'sam@a.test', alignedDomain: 'a.test', authenticatedDomains: ['a.test'] },
          twmKey: 'a.test notice-1',
        });
        assert.equal((await ingest.ingest(message([ann]))).length, 1);
        const again = await ingest.ingest(message([ann, bob]));
        assert.deepEqual(again.map((o) => o.user.address), ['bob@b.test'], 'only the recipient without it');
        assert.deepEqual(await ingest.ingest(message([ann, bob])), []);
        assert.equal((await store.messages.list(ann.id)).length, 1);
        assert.equal((await store.messages.list(bob.id)).length, 1);
        // Another notice is another message.
        assert.equal((await ingest.ingest({ ...message([ann]), twmKey: 'a.test notice-2' })).length, 1);
        assert.deepEqual(await store.messages.withTwmKey([ann.id, bob.id], 'a.test notice-2'), [ann.id]);
      } finally {
        await store.close();
      }
    });
  });
}
