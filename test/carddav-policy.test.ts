/**
 * The address book over CardDAV is the allowlist: a card PUT with tsdav
 * admits the next SMTP message to the INBOX of a `screen` user, a DELETE
 * sends the next one to the Screener; an X-TWOWAY-EXPECT card PUT over
 * CardDAV admits an ownership confirmation in `strict` mode exactly like
 * `twoway expect`, and the server's rewrite of the card (a use consumed) is
 * visible to the client as a new ETag and a sync-collection change. The
 * expiry sweep (contacts.sweepExpired) rewrites and removes cards the same
 * way.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DAVAddressBook } from 'tsdav';
import { formatUtcTimestamp } from '../src/core/vcard/write.ts';
import { send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';
import { basic, davFetch, tsdavClient } from './helpers/carddav.ts';

const friend = senderDomain('friend.test');
const shop = senderDomain('shop.test');
const MARK = { 'TWM-Purpose': 'ownership-confirmation' };
const PASS = 'password-1';

describe('CardDAV address books drive the policy', () => {
  let t: TestServer;
  let f: typeof globalThis.fetch;
  let closeAgent: () => Promise<void>;
  const ids: Record<string, number> = {};

  before(async () => {
    t = await startTestServer({ records: [...friend.records, ...shop.records] });
    ({ fetch: f, close: closeAgent } = davFetch(t));
    ids.screen = (await t.server.services.accounts.add('screen@example.test', PASS, 'screen')).id;
    ids.strict = (await t.server.services.accounts.add('strict@example.test', PASS, 'strict')).id;
  });
  after(async () => {
    await closeAgent();
    await t.close();
  });

  const latest = async (user: string) => (await t.server.services.mail.list(ids[user]!)).sort((a, b) => b.id - a.id)[0];
  const connect = async (user: string) => {
    const client = await tsdavClient(t, f, `${user}@example.test`, PASS);
    const [book] = (await client.fetchAddressBooks()) as [DAVAddressBook];
    return { client, book };
  };
  const syncToken = async (client: Awaited<ReturnType<typeof tsdavClient>>, book: DAVAddressBook, token: string) => {
    const res = await client.syncCollection({ url: book.url, props: { 'd:getetag': {} }, syncLevel: 1, syncToken: token });
    const next = (res as unknown as Array<{ raw?: { multistatus?: { syncToken?: string } } }>)[0]?.raw?.multistatus?.syncToken;
    return { changed: res.filter((r) => r.href).map((r) => ({ name: r.href!.replace(/^.*\//, ''), status: r.status })), next: String(next) };
  };

  it('a PUT admits the next message to INBOX; a DELETE screens the one after', async () => {
    const { client, book } = await connect('screen');
    await send({ port: t.server.smtp.port, from: 'pal@friend.test', to: 'screen@example.test', subject: 'before' });
    assert.equal((await latest('screen'))?.mailbox, 'Screener');

    const put = await client.createVCard({
      addressBook: book,
      vCardString: 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:pal-1\r\nN:Pal;Best;;;\r\nFN:Best Pal\r\nEMAIL;TYPE=INTERNET:Pal@Friend.test\r\nEND:VCARD\r\n',
      filename: 'pal.vcf',
    });
    assert.equal(put.status, 201);
    await send({ port: t.server.smtp.port, from: 'pal@friend.test', to: 'screen@example.test', subject: 'after put' });
    const m = await latest('screen');
    assert.equal(m?.subject, 'after put');
    assert.equal(m?.mailbox, 'INBOX');
    assert.equal(m?.firstContact, false);

    assert.equal((await client.deleteVCard({ vCard: { url: `${book.url}pal.vcf`, etag: put.headers.get('etag') ?? undefined } })).status, 204);
    await send({ port: t.server.smtp.port, from: 'pal@friend.test', to: 'screen@example.test', subject: 'after delete' });
    const m2 = await latest('screen');
    assert.equal(m2?.subject, 'after delete');
    assert.equal(m2?.mailbox, 'Screener');
  });

  it('an X-TWOWAY-EXPECT card PUT over CardDAV admits an ownership confirmation in strict mode; the consumed use shows as a new ETag and a sync change', async () => {
    const { client, book } = await connect('strict');
    const until = formatUtcTimestamp(new Date(Date.now() + 3_600_000));
    const text = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:expect-shop\r\nFN:shop.test (expected)\r\nNOTE:signed up from the browser\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=${until};USES=2;MARKER=REQUIRED:shop.test\r\nEND:VCARD\r\n`;
    const put = await client.createVCard({ addressBook: book, vCardString: text, filename: 'signup-shop.vcf' });
    assert.equal(put.status, 201);
    const etag1 = put.headers.get('etag')!;
    const { next: token1 } = await syncToken(client, book, '');

    // The entry requires the marker: without it a stranger is refused in strict mode.
    await assert.rejects(send({ port: t.server.smtp.port, from: 'no-reply@shop.test', to: 'strict@example.test', subject: 'plain' }), /550/);
    const reply = await send({ port: t.server.smtp.port, from: 'no-reply@shop.test', to: 'strict@example.test', subject: 'confirm your account', headers: MARK });
    assert.match(reply, /^250 /);
    const m = await latest('strict');
    assert.equal(m?.subject, 'confirm your account');
    assert.equal(m?.mailbox, 'INBOX');

    // The server rewrote the card: USES=1 (the line refolded at 75 octets), every other line as the client wrote it.
    const get = await f(`${book.url}signup-shop.vcf`, { headers: { authorization: basic('strict@example.test', PASS) } });
    const etag2 = get.headers.get('etag')!;
    assert.notEqual(etag2, etag1);
    const rewritten = await get.text();
    assert.equal(rewritten.replace(/\r\n[ \t]/g, ''), text.replace(';USES=2;', ';USES=1;'));
    assert.ok(rewritten.startsWith(text.slice(0, text.indexOf('X-TWOWAY-EXPECT'))));
    const { changed } = await syncToken(client, book, token1);
    assert.deepEqual(changed, [{ name: 'signup-shop.vcf', status: 207 }]);
    // A client still holding the old ETag cannot overwrite the server's change.
    const stale = await client.updateVCard({ vCard: { url: `${book.url}signup-shop.vcf`, etag: etag1, data: text } });
    assert.equal(stale.status, 412);
    // The sender did not become a contact.
    assert.deepEqual(await t.server.store.contacts.match(ids.strict!, [{ kind: 'address', value: 'no-reply@shop.test' }, { kind: 'domain', value: 'shop.test' }]), []);
  });

  it('contacts.sweepExpired removes expired entries through the rewrite, visible to CardDAV clients', async () => {
    const { client, book } = await connect('screen');
    const past = formatUtcTimestamp(new Date(Date.now() - 60_000));
    const future = formatUtcTimestamp(new Date(Date.now() + 3_600_000));
    const onlyExpect = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:sweep-1\r\nFN:gone.test (expected)\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=${past}:gone.test\r\nEND:VCARD\r\n`;
    const mixedHead = `BEGIN:VCARD\nVERSION:3.0\nUID:sweep-2\nFN:News\nEMAIL:news@shop.test\n`;
    const mixed = `${mixedHead}X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=${past}:shop.test\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=${future};USES=0:shop.test\nEND:VCARD\n`;
    const live = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:sweep-3\r\nFN:live\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=${future};USES=3:live.test\r\nEND:VCARD\r\n`;
    for (const [name, vCardString] of [['only.vcf', onlyExpect], ['mixed.vcf', mixed], ['live.vcf', live]] as const) {
      assert.equal((await client.createVCard({ addressBook: book, vCardString, filename: name })).status, 201);
    }
    const { next: token } = await syncToken(client, book, '');

    const summary = await t.server.services.contacts.sweepExpired(new Date());
    assert.equal(summary.removed, 1);
    assert.equal(summary.rewritten, 1);

    const { changed } = await syncToken(client, book, token);
    assert.deepEqual(changed.sort((a, b) => a.name.localeCompare(b.name)), [
      { name: 'mixed.vcf', status: 207 },
      { name: 'only.vcf', status: 404 },
    ]);
    const get = async (name: string) => (await f(`${book.url}${name}`, { headers: { authorization: basic('screen@example.test', PASS) } })).text();
    assert.equal(await get('mixed.vcf'), `${mixedHead}END:VCARD\n`);
    assert.equal(await get('live.vcf'), live);
    // Nothing left to do: a second sweep changes nothing.
    const again = await t.server.services.contacts.sweepExpired(new Date());
    assert.equal(again.removed + again.rewritten, 0);
  });
});
