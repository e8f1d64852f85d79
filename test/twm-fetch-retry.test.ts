/**
 * A sender's retry of its notice after the recipient gave up fetching
 * (docs/protocol.md 8.4), between real servers on loopback: b.test fetches
 * from a.test while a.test's endpoint is unreachable, gives the fetch up
 * after MAX_CONTACT_ATTEMPTS, and a.test, reachable again, sends the same
 * notice once more (its queue's retry, through the real TWM transport).
 * The retry schedules the fetch again: b answers `accepted`, fetches,
 * stores the message and sends the `delivered` receipt. Without it the
 * message would be lost until `expires`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CONTACT_ATTEMPTS } from '../src/core/twm-types.ts';
import { ensureMaterials } from '../src/config/materials.ts';
import { createTwmClient } from '../src/delivery/twm-client.ts';
import { createTwmTransport } from '../src/delivery/twm-transport.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver } from '../src/dns/resolver.ts';
import { commonFreePort, eventually, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';

describe('Two-Way Mail: a retried notice after the recipient gave up fetching', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    // b's fetch retries come a second or two apart, so that it gives up within the test's time.
    const fast = (t: string) => t.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, edit: fast });
    await a.server.services.accounts.add('ann@a.test', 'ann-password', 'open');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
    await b.server.services.contacts.allow((await b.server.services.accounts.get('bea@b.test')).id, 'ann@a.test');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await dns?.close();
    lab?.close();
  });

  const pointTwmA = async (ip: string) => {
    dns.remove('twm.a.test', 'A');
    dns.add([{ name: 'twm.a.test', type: 'A', ttl: 1, data: ip }]);
    // The record's TTL is one second.
    await new Promise((r) => setTimeout(r, 1_100));
  };

  it('the fetch given up on its attempts is scheduled again by the retry: fetched, stored, receipted', { timeout: 120_000 }, async () => {
    const keys = ensureMaterials(a.server.config).twm!;
    const client = createTwmClient({ resolver: createResolver({ servers: [dns.address] }), trustAnchors: [lab.ca.cert], lab: true });
    const transport = createTwmTransport({
      outbox: a.server.store.twmOut,
      client,
      key: (domain) => ({ selector: keys.selector, domain, privateKey: keys.privateKey }),
      expiryMs: 3_600_000,
      domains: ['a.test'],
    });
    const message = { messageId: 'given-up-1@queue', sender: 'ann@a.test', raw: Buffer.from('From: ann@a.test\r\nTo: bea@b.test\r\nSubject: after a give-up\r\n\r\nStill there?\r\n') };
    const bea = await b.server.services.accounts.get('bea@b.test');
    const mail = async () => (await b.server.services.mail.list(bea.id)).find((m) => m.subject === 'after a give-up');
    try {
      // a.test's endpoint "goes down" for b's fetches: its SRV target resolves to an address where nothing listens.
      await pointTwmA('127.0.0.9');
      assert.deepEqual((await transport.deliver('b.test', message, ['bea@b.test'])).map((r) => r.status), ['delivered']);
      const [notice] = await a.server.store.twmOut.findByMessage('given-up-1@queue', 'b.test');
      assert.ok(notice);
      const row = async () => (await b.server.store.twmIn.find('a.test', notice.id))?.recipients[0];
      const givenUp = await eventually(async () => ((await row())?.state === 'expired' ? row() : undefined), 60_000, 'b gives the fetch up');
      assert.equal(givenUp?.attempts, MAX_CONTACT_ATTEMPTS);

      // a.test is back and sends the same notice again (it never saw our answer, say).
      await pointTwmA('127.0.0.2');
      const retried = await transport.deliver('b.test', message, ['bea@b.test']);
      assert.deepEqual(retried.map((r) => r.status), ['delivered']);
      // The answer (6.2) as the transport records it: a fetch is coming, not a hold.
      assert.equal(retried[0]?.reply?.text, `TWM notice ${notice.id}: accepted`);
      const got = await eventually(mail, 20_000, 'the message fetched after the retry');
      assert.equal(got.mailbox, 'INBOX');
      await eventually(async () => ((await row())?.state === 'closed' ? true : undefined), 10_000, 'b closed the row');
      assert.equal((await row())?.receipt, 'delivered');
      await eventually(async () => (await a.server.store.twmOut.findByMessage('given-up-1@queue', 'b.test'))[0]?.recipients[0]?.state === 'delivered', 10_000, 'a sees "delivered"');
    } finally {
      await client.close();
    }
  });
});
