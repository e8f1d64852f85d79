/**
 * Two twoway servers as two hosts on loopback (127.0.0.2 and 127.0.0.3, the
 * same port, like MX hosts on port 25), found through MX records in the
 * embedded DNS server: mail goes out over real SMTP with DKIM and comes in
 * authenticated; a reply lands in the INBOX thanks to auto-allow.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { commonFreePort, eventually, startTestServer, submit, type TestServer } from './helpers/server.ts';

describe('two servers', () => {
  let dns: EmbeddedDnsServer;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    dns = await startDnsServer();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    a = await startTestServer({ domain: 'a.test', dns, host: '127.0.0.2', smtpPort: port, deliveryPort: port });
    b = await startTestServer({ domain: 'b.test', dns, host: '127.0.0.3', smtpPort: port, deliveryPort: port });
    for (const [t, ip] of [[a, '127.0.0.2'], [b, '127.0.0.3']] as const) {
      const d = t.server.config.domains[0]!;
      dns.add([
        { name: d, type: 'MX', data: { preference: 10, exchange: `mx.${d}` } },
        { name: `mx.${d}`, type: 'A', data: ip },
        { name: d, type: 'TXT', data: `v=spf1 ip4:${ip} -all` },
        { name: `_dmarc.${d}`, type: 'TXT', data: 'v=DMARC1; p=reject' },
        ...(await dkimRecords(t, d)),
      ]);
    }
    await a.server.services.accounts.add('ann@a.test', 'ann-password', 'screen');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await dns?.close();
  });

  it('delivers between the servers, authenticated by SPF and both DKIM signatures; the reply reaches the INBOX', async () => {
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: 'bea@b.test', subject: 'hello bea' });
    const bea = await b.server.services.accounts.get('bea@b.test');
    const got = await eventually(async () => (await b.server.services.mail.list(bea.id)).find((m) => m.subject === 'hello bea'), 20_000, 'delivery to b');
    assert.equal(got.mailbox, 'Screener', 'bea screens strangers');
    const raw = (await b.server.services.mail.get(bea.id, got.id)).raw.toString();
    assert.match(raw, /dkim=pass[^;]*header\.a=rsa-sha256/);
    assert.match(raw, /dkim=pass[^;]*header\.a=ed25519-sha256/);
    assert.match(raw, /spf=pass/);
    assert.match(raw, /with ESMTPS/);

    await submit({ port: b.server.submission!.port, host: '127.0.0.3', user: 'bea@b.test', pass: 'bea-password', to: 'ann@a.test', subject: 'hello ann' });
    const ann = await a.server.services.accounts.get('ann@a.test');
    const reply = await eventually(async () => (await a.server.services.mail.list(ann.id)).find((m) => m.subject === 'hello ann'), 20_000, 'delivery to a');
    assert.equal(reply.mailbox, 'INBOX', 'ann wrote to bea first, so bea is allowed');
  });

  it('a recipient the other server does not know comes back as a DSN to the sender', async () => {
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: 'ann@a.test', pass: 'ann-password', to: 'nobody@b.test', subject: 'to nobody' });
    const ann = await a.server.services.accounts.get('ann@a.test');
    const dsn = await eventually(async () => (await a.server.services.mail.list(ann.id)).find((m) => /Undelivered/i.test(m.subject ?? '')), 20_000, 'DSN');
    assert.equal(dsn.mailbox, 'INBOX');
    const raw = (await a.server.services.mail.get(ann.id, dsn.id)).raw.toString();
    assert.match(raw, /multipart\/report; report-type=delivery-status/);
    assert.match(raw, /Final-Recipient: rfc822; ?nobody@b\.test/i);
    assert.match(raw, /Status: 5\.1\.1/);
    assert.match(raw, /Remote-MTA: dns; mx\.b\.test/);
    assert.match(raw, /mx\.b\.test said: 550 5\.1\.1/);
    // The DSN is handed over before the state is written (never lost, at worst sent twice).
    await eventually(async () => (await a.server.services.queue.list()).find((e) => e.recipient === 'nobody@b.test')?.status.state === 'failed', 5000, 'failed state');
  });
});

async function dkimRecords(t: TestServer, domain: string) {
  const { ensureMaterials, dkimRecordValue } = await import('../src/config/materials.ts');
  const { dkim } = ensureMaterials(t.server.config);
  return [
    { name: `${dkim.rsa.selector}._domainkey.${domain}`, type: 'TXT' as const, data: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa') },
    { name: `${dkim.ed25519.selector}._domainkey.${domain}`, type: 'TXT' as const, data: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519') },
  ];
}
