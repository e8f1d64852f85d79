/**
 * The Screener's key pages (services.screener.page over the store's
 * pendingPage) on every backend: the rank computed in SQL equals
 * core/reputation.ts's score over every combination of facts, so paging
 * through gives exactly list()'s order, each request once; likely spam only
 * on request; ties of rank and time are broken by id without loss.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DmarcFact } from '../core/types.ts';
import { testBackends } from '../store/test-backends.ts';
import type { NewMessage, RequestPageKey } from '../store/types.ts';
import { createServices } from './index.ts';

const backends = await testBackends();
after(() => Promise.all(backends.map((b) => b.cleanup())));

const DMARC: Array<DmarcFact | null> = [
  null,
  { result: 'pass', policy: 'reject' },
  { result: 'pass', policy: 'quarantine' },
  { result: 'pass', policy: 'none' },
  { result: 'fail', policy: 'reject' },
  { result: 'FAIL', policy: 'Quarantine' },
  { result: 'fail', policy: null },
  { result: 'temperror', policy: null },
];
const SPAM = [null, -1.5, 0, 2.5, 3.3, 4.1, 12];
const KNOWN = ['none', 'address', 'domain'] as const;

for (const backend of backends) {
  describe(`Screener key pages (${backend.name})`, { skip: backend.skip }, () => {
    test('the SQL rank is reputationOf; paging gives list() order, each request once; likely spam apart', async () => {
      const store = await backend.open();
      try {
        const services = createServices(store, ['example.test']);
        const alice = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'screen');
        const bob = await services.accounts.add('bob@example.test', 'correct horse battery staple', 'screen');
        const batch: NewMessage[] = [];
        let n = 0;
        for (const auth of [false, true])
          for (const dmarc of DMARC)
            for (const spamScore of SPAM)
              for (const likelySpam of [false, true])
                for (const known of KNOWN) {
                  n++;
                  const domain = `d${n}.test`;
                  const sender = `s${n}@${domain}`;
                  if (known === 'address') await services.contacts.allow(bob.id, sender);
                  if (known === 'domain') await services.contacts.allow(bob.id, `@${domain}`);
                  batch.push({
                    userId: alice.id,
                    mailbox: 'Screener',
                    raw: Buffer.from(`From: ${sender}\r\nSubject: ${n}\r\n\r\nhi\r\n`),
                    flags: [],
                    sender,
                    from: sender,
                    subject: `${n}`,
                    // Many share a time: ties of rank and time are broken by id.
                    receivedAt: new Date(1_000_000 + (n % 5) * 1000),
                    firstContact: true,
                    request: { sender, authDomain: auth ? domain : null, subject: `${n}`, spamScore, likelySpam, dmarc },
                  });
                }
        const grid = n;
        // Quoted local parts with an @: the domain is after the last one (core/address.ts domainOf).
        await services.contacts.allow(bob.id, '@known.test');
        for (const sender of ['"x@y"@known.test', '"z@known.test"@other.test']) {
          n++;
          batch.push({ userId: alice.id, mailbox: 'Screener', raw: Buffer.from('Subject: q\r\n\r\nhi\r\n'), flags: [], sender, from: sender, subject: 'q', receivedAt: new Date(1_000_000), firstContact: true, request: { sender, authDomain: null, subject: 'q' } });
        }
        await store.messages.deliver(batch);

        const all = await services.screener.list(alice.id, 'pending', { likelySpam: true });
        assert.equal(all.length, n);
        const scores = new Map(all.map((r) => [r.sender, r.reputation.score]));
        assert.deepEqual(
          all.filter((r) => r.sender.startsWith('"')).map((r) => [r.sender, r.reputation.reasons[0]]),
          [['"x@y"@known.test', 'its domain is a contact of someone here'], ['"z@known.test"@other.test', 'not authenticated']],
        );
        // The SQL rank of each request is the score core/reputation.ts gives it.
        let after: RequestPageKey | undefined;
        const seen: string[] = [];
        for (;;) {
          const rows = await store.requests.pendingPage(alice.id, { after, limit: 37, likelySpam: true });
          if (rows.length === 0) break;
          for (const r of rows) assert.equal(r.rank, scores.get(r.sender), `rank of ${r.sender} (${JSON.stringify({ auth: r.authDomain, dmarc: r.dmarc, spam: r.spamScore, likely: r.likelySpam })})`);
          seen.push(...rows.map((r) => r.sender));
          const last = rows[rows.length - 1]!;
          after = { rank: last.rank, lastSeen: last.lastSeen, id: last.id };
        }
        assert.deepEqual(seen, all.map((r) => r.sender), 'key pages in list() order, each once');

        // The service: pages of 50 without likely spam, with the counts and the reasons of the rows shown.
        const listed = await services.screener.list(alice.id, 'pending');
        const paged: string[] = [];
        let key: RequestPageKey | undefined;
        let pages = 0;
        do {
          const p = await services.screener.page(alice.id, { after: key, limit: 50 });
          assert.deepEqual({ listed: p.listed, likelySpam: p.likelySpam }, { listed: grid / 2 + 2, likelySpam: grid / 2 });
          assert.ok(p.requests.every((r) => !r.likelySpam));
          paged.push(...p.requests.map((r) => r.sender));
          key = p.next ?? undefined;
          pages++;
        } while (key);
        assert.equal(pages, Math.ceil((grid / 2 + 2) / 50));
        assert.deepEqual(paged, listed.map((r) => r.sender));
        const first = await services.screener.page(alice.id, { limit: 50 });
        assert.deepEqual(first.requests.map((r) => r.reputation), listed.slice(0, 50).map((r) => r.reputation), 'the same reasons as list()');
        assert.ok(first.requests.some((r) => r.reputation.reasons.includes('its domain is a contact of someone here')));

        // Decided requests leave the pages; another user's never appear.
        await services.screener.deny(alice.id, [listed[0]!.sender]);
        const again = await services.screener.page(alice.id, { limit: 50 });
        assert.equal(again.requests[0]!.sender, listed[1]!.sender);
        assert.equal(again.listed, grid / 2 + 1);
        assert.deepEqual(await services.screener.page(bob.id, { limit: 50 }), { requests: [], next: null, listed: 0, likelySpam: 0 });
      } finally {
        await store.close();
      }
    });
  });
}
