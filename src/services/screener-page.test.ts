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
    // Longer than the default minute: 448 cards written one by one (each ranking requests again) and
    // 672 requests paged through; on PostgreSQL at load average 38 on the shared machine it took over 60 s.
    test('the SQL rank is reputationOf; paging gives list() order, each request once; likely spam apart', { timeout: 240_000 }, async () => {
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

    test('the stored rank follows allow entries written and removed after the request, on any account and any path', async () => {
      const store = await backend.open();
      try {
        const services = createServices(store, ['example.test']);
        const alice = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'screen');
        const bob = await services.accounts.add('bob@example.test', 'correct horse battery staple', 'screen');
        const senders = ['ann@one.test', 'ben@two.test', 'cy@two.test'];
        await store.messages.deliver(
          senders.map((sender, i) => ({
            userId: alice.id,
            mailbox: 'Screener' as const,
            raw: Buffer.from(`From: ${sender}\r\nSubject: hi\r\n\r\nhi\r\n`),
            flags: [],
            sender,
            from: sender,
            subject: 'hi',
            receivedAt: new Date(1_000_000 + i),
            firstContact: true,
            request: { sender, authDomain: null, subject: 'hi' },
          })),
        );
        const ranks = async () => {
          const rows = await store.requests.pendingPage(alice.id, { limit: 10, likelySpam: true });
          const pageReasons = (await services.screener.page(alice.id, { limit: 10 })).requests.map((r) => [r.sender, r.reputation.reasons[0]]);
          return { ranks: Object.fromEntries(rows.map((r) => [r.sender, [r.rank, r.known]])), first: pageReasons[0] };
        };
        // Unknown and unauthenticated: -10 each, most recent first.
        assert.deepEqual((await ranks()).ranks, { 'ann@one.test': [-10, null], 'ben@two.test': [-10, null], 'cy@two.test': [-10, null] });
        await services.contacts.allow(bob.id, 'ann@one.test');
        assert.deepEqual(await ranks(), {
          ranks: { 'ann@one.test': [30, 'address'], 'ben@two.test': [-10, null], 'cy@two.test': [-10, null] },
          first: ['ann@one.test', 'a contact of someone here'],
        });
        await services.contacts.allow(bob.id, '@two.test');
        assert.deepEqual((await ranks()).ranks, { 'ann@one.test': [30, 'address'], 'ben@two.test': [30, 'domain'], 'cy@two.test': [30, 'domain'] });
        // A card removed takes its bonus away (a block card beside it would not: "known" counts allow entries).
        await services.contacts.remove(bob.id, 'ann@one.test');
        assert.deepEqual((await ranks()).ranks['ann@one.test'], [-10, null]);
        await services.contacts.remove(bob.id, '@two.test');
        assert.deepEqual((await ranks()).ranks, { 'ann@one.test': [-10, null], 'ben@two.test': [-10, null], 'cy@two.test': [-10, null] });
        // A whole address book deleted (CardDAV) takes its entries' bonus with it.
        await services.contacts.allow(bob.id, 'cy@two.test');
        assert.deepEqual((await ranks()).ranks['cy@two.test'], [30, 'address']);
        const book = (await store.contacts.list(bob.id)).find((c) => c.vcard.includes('cy@two.test'))!.book;
        assert.equal(await store.addressBooks.remove(bob.id, book), true);
        assert.deepEqual((await ranks()).ranks['cy@two.test'], [-10, null]);
        // A later attempt keeps the stored facts in step (authenticated now, and a new spam score).
        await services.contacts.allow(bob.id, '@one.test');
        await store.messages.deliver([
          {
            userId: alice.id,
            mailbox: 'Screener',
            raw: Buffer.from('From: ann@one.test\r\nSubject: again\r\n\r\nhi\r\n'),
            flags: [],
            sender: 'ann@one.test',
            from: 'ann@one.test',
            subject: 'again',
            receivedAt: new Date(2_000_000),
            firstContact: true,
            request: { sender: 'ann@one.test', authDomain: null, subject: 'again', spamScore: 2.5 },
          },
        ]);
        // 40 (domain known) - 10 (not authenticated) - 13 (spam 2.5 rounds half up, as Math.round) = 17
        assert.deepEqual((await ranks()).ranks['ann@one.test'], [17, 'domain']);
      } finally {
        await store.close();
      }
    });
  });
}
