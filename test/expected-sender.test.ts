/**
 * Expected senders and ownership confirmations over SMTP (docs/protocol.md
 * 9 and 10): real SMTP client and server, embedded DNS publishing SPF, DKIM
 * and DMARC for shop.test; 127.0.0.2 fails its SPF. Also the API route.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const shop = senderDomain('shop.test');
const MARK = { 'TWM-Purpose': 'ownership-confirmation' };
/** Cards are folded at 75 octets; compare logical lines. */
const unfold = (vcard: string | undefined) => (vcard ?? '').replace(/\r\n[ \t]/g, '');

describe('expected senders over SMTP', () => {
  let t: TestServer;
  let port: number;
  const users: Record<string, number> = {};

  before(async () => {
    t = await startTestServer({ records: shop.records });
    port = t.server.smtp.port;
    for (const mode of ['screen', 'strict'] as const) {
      const u = await t.server.services.accounts.add(`${mode}@example.test`, 'password-1', mode);
      users[mode] = u.id;
    }
  });
  after(() => t.close());

  const latest = async (user: string) => (await t.server.services.mail.list(users[user]!)).sort((a, b) => b.id - a.id)[0];
  const cards = (user: string) => t.server.services.contacts.list(users[user]!);
  const expectShop = (user: string, forMs = 3_600_000, uses = 1) => t.server.services.contacts.expect(users[user]!, 'shop.test', { forMs, uses });
  const refused550 = (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 550 && /^550 5\.7\.1 /.test(err.response ?? '');

  it('admits one marked, authenticated confirmation to INBOX, then screens (screen) or refuses (strict)', async () => {
    for (const user of ['screen', 'strict']) {
      const card = await expectShop(user);
      assert.match(unfold(card.vcard), /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=1:shop\.test\r\n/);
      const reply = await send({ port, from: 'no-reply@shop.test', to: `${user}@example.test`, subject: `confirm ${user}`, headers: MARK });
      assert.match(reply, /^250 /);
      const m = await latest(user);
      assert.equal(m?.subject, `confirm ${user}`);
      assert.equal(m?.mailbox, 'INBOX');
      assert.equal(m?.firstContact, true);
      // The only use is consumed: the card is gone, and the sender is not a contact.
      assert.deepEqual(await cards(user), []);
    }
    await send({ port, from: 'no-reply@shop.test', to: 'screen@example.test', subject: 'confirm again', headers: MARK });
    assert.equal((await latest('screen'))?.mailbox, 'Screener');
    await assert.rejects(
      send({ port, from: 'no-reply@shop.test', to: 'strict@example.test', subject: 'confirm again', headers: MARK }),
      refused550,
    );
  });

  it('counts uses down in the card itself', async () => {
    await expectShop('screen', 3_600_000, 2);
    await send({ port, from: 'a@mail.shop.test', to: 'screen@example.test', subject: 'subdomain', headers: MARK, envelopeFrom: 'a@shop.test' });
    assert.equal((await latest('screen'))?.mailbox, 'INBOX');
    const [card] = await cards('screen');
    assert.match(unfold(card?.vcard), /;USES=1:shop\.test\r\n/);
    assert.deepEqual(card?.entries.map((e) => [e.kind, e.value, e.expect?.uses]), [['expect', 'shop.test', 1]]);
    await send({ port, from: 'b@shop.test', to: 'screen@example.test', subject: 'last use', headers: { 'twm-purpose': 'Ownership-Confirmation' } });
    assert.equal((await latest('screen'))?.mailbox, 'INBOX');
    assert.deepEqual(await cards('screen'), []);
  });

  it('consumes a use in the delivery transaction: of simultaneous confirmations, USES=1 admits exactly one', async () => {
    await expectShop('screen', 3_600_000, 1);
    const before = (await t.server.services.mail.list(users.screen!)).length;
    const subjects = ['race a', 'race b', 'race c'];
    await Promise.all(subjects.map((subject) => send({ port, from: 'no-reply@shop.test', to: 'screen@example.test', subject, headers: MARK })));
    const got = (await t.server.services.mail.list(users.screen!)).filter((m) => subjects.includes(m.subject ?? ''));
    assert.equal((await t.server.services.mail.list(users.screen!)).length, before + 3);
    assert.deepEqual(got.map((m) => m.mailbox).sort(), ['INBOX', 'Screener', 'Screener']);
    assert.deepEqual(await cards('screen'), []);
  });

  it('with MARKER=REQUIRED, screens an unmarked message, a forged marked one, and a marked one with an unknown purpose', async () => {
    for (const user of ['screen', 'strict']) await t.server.services.contacts.expect(users[user]!, 'shop.test', { forMs: 3_600_000, uses: 1, requireMarker: true });
    await send({ port, from: 'no-reply@shop.test', to: 'screen@example.test', subject: 'unmarked' });
    assert.equal((await latest('screen'))?.mailbox, 'Screener');
    await send({ port, from: 'no-reply@shop.test', to: 'screen@example.test', subject: 'forged', headers: MARK, localAddress: '127.0.0.2' });
    const forged = await latest('screen');
    assert.equal(forged?.subject, 'forged');
    assert.equal(forged?.mailbox, 'Screener');
    await assert.rejects(
      send({ port, from: 'no-reply@shop.test', to: 'strict@example.test', subject: 'forged', headers: MARK, localAddress: '127.0.0.2' }),
      refused550,
    );
    await send({ port, from: 'no-reply@shop.test', to: 'screen@example.test', subject: 'other purpose', headers: { 'TWM-Purpose': 'newsletter' } });
    assert.equal((await latest('screen'))?.mailbox, 'Screener');
    // Nothing consumed the entries.
    for (const user of ['screen', 'strict']) {
      const all = await cards(user);
      assert.equal(all.length, 1);
      assert.match(unfold(all[0]!.vcard), /;USES=1;MARKER=REQUIRED:shop\.test/);
      for (const c of all) await t.server.store.contacts.remove(users[user]!, c.book, c.uid);
    }
  });

  it('ignores an expired entry and cleans it up; never makes the sender a contact', async () => {
    await expectShop('screen', 1);
    await new Promise((r) => setTimeout(r, 1_100));
    await send({ port, from: 'no-reply@shop.test', to: 'screen@example.test', subject: 'too late', headers: MARK });
    const m = await latest('screen');
    assert.equal(m?.subject, 'too late');
    assert.equal(m?.mailbox, 'Screener');
    assert.deepEqual(await cards('screen'), [], 'the expired entry was removed');
    for (const user of ['screen', 'strict']) {
      const hits = await t.server.store.contacts.match(users[user]!, [
        { kind: 'address', value: 'no-reply@shop.test' },
        { kind: 'domain', value: 'shop.test' },
      ]);
      assert.deepEqual(hits, []);
    }
  });

  it('POST /api/contacts/expect writes the card', async () => {
    const agent = new Agent({ connect: { ca: readFileSync(t.server.config.tls.cert, 'utf8') } });
    try {
      const auth = `Basic ${Buffer.from('screen@example.test:password-1').toString('base64')}`;
      const post = (body: unknown) =>
        fetch(`${t.server.http.url}/api/contacts/expect`, {
          dispatcher: agent,
          method: 'POST',
          headers: { authorization: auth, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const started = Date.now();
      const res = await post({ domain: 'Shop.Test', for: '2h', uses: 3 });
      assert.equal(res.status, 201);
      const body = (await res.json()) as { uid: string; domain: string; until: string; uses: number };
      assert.equal(body.domain, 'shop.test');
      assert.equal(body.uses, 3);
      const until = Date.parse(body.until) - started;
      assert.ok(until >= 2 * 3_600_000 - 1_000 && until <= 2 * 3_600_000 + 5_000, `until in 2h, got ${until} ms`);
      const stored = (await cards('screen')).find((c) => c.uid === body.uid);
      assert.match(unfold(stored?.vcard), /X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=3:shop\.test/);
      const bad = await post({ domain: 'shop.test', for: 'soon' });
      assert.equal(bad.status, 400);
      await bad.arrayBuffer();
    } finally {
      await agent.close();
    }
  });
});
