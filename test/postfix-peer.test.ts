/**
 * A real Postfix (Debian's, a private instance from helpers/postfix.ts) as
 * twoway's peer, both ways:
 *
 * - Postfix delivers to us: its transport_maps send tw.test mail to the
 *   twoway server's SMTP port; messages injected into Postfix (SMTP to its
 *   listener, or its sendmail(1)) arrive with Postfix's Received header, and
 *   the screen-mode user's policy applies: an allowed sender whose domain
 *   publishes SPF for Postfix's source address (127.0.0.6) reaches INBOX; a
 *   stranger, and a forged From: of the allowed sender, go to the Screener.
 * - We deliver to Postfix: Postfix listens on 127.0.0.5 as the MX of pf.test
 *   (MX and A in the embedded DNS; twoway's [delivery] port is Postfix's
 *   port) and delivers into a Maildir; the file carries twoway's two DKIM
 *   signatures, which verify. A recipient Postfix does not know (550 5.1.1 at
 *   RCPT) comes back as a DSN in the sender's INBOX.
 *
 * Skipped when Postfix is not installed or this is not root; in CI (`CI` set)
 * that is a failure instead.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dkimVerify } from 'mailauth';
import nodemailer from 'nodemailer';
import { dkimRecordValue, ensureMaterials } from '../src/config/materials.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver, toResolveFunction } from '../src/dns/resolver.ts';
import { freePort, postfixAvailability, startPostfix, type PostfixInstance } from './helpers/postfix.ts';
import { eventually, rawMessage, startTestServer, submit, type TestServer } from './helpers/server.ts';

const available = postfixAvailability();
if (!available.ok && process.env.CI) throw new Error(`the Postfix peer tests must run in CI: ${available.reason}`);

const TW = 'tw.test';
const PF = 'pf.test';
const PF_HOST = '127.0.0.5';
/** Postfix's SMTP client leaves from here; friend.test's SPF names it. */
const PF_SOURCE = '127.0.0.6';
const WAIT = 20_000;

describe('Postfix as a peer', { skip: available.ok ? false : available.reason, timeout: 60_000 }, () => {
  let dns: EmbeddedDnsServer;
  let t: TestServer;
  let pf: PostfixInstance;
  let annId: number;

  before(async () => {
    dns = await startDnsServer({
      records: [
        { name: PF, type: 'MX', data: { preference: 10, exchange: `mx.${PF}` } },
        { name: `mx.${PF}`, type: 'A', data: PF_HOST },
        { name: 'friend.test', type: 'TXT', data: `v=spf1 ip4:${PF_SOURCE} -all` },
        { name: '_dmarc.friend.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
      ],
    });
    const pfPort = await freePort(PF_HOST);
    t = await startTestServer({ domain: TW, dns, deliveryPort: pfPort });
    const { dkim } = ensureMaterials(t.server.config);
    dns.add([
      { name: TW, type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { name: `_dmarc.${TW}`, type: 'TXT', data: 'v=DMARC1; p=reject' },
      { name: `${dkim.rsa.selector}._domainkey.${TW}`, type: 'TXT', data: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa') },
      { name: `${dkim.ed25519.selector}._domainkey.${TW}`, type: 'TXT', data: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519') },
    ]);
    const ann = await t.server.services.accounts.add(`ann@${TW}`, 'ann-password', 'screen');
    annId = ann.id;
    await t.server.services.contacts.allow(ann.id, 'friend@friend.test');

    pf = await startPostfix({
      host: PF_HOST,
      port: pfPort,
      hostname: `mx.${PF}`,
      transports: { [TW]: `smtp:[127.0.0.1]:${t.server.smtp.port}` },
      mailboxes: { [PF]: ['user'] },
      bindAddress: PF_SOURCE,
      maxSessions: 10,
    });
  });
  after(async () => {
    // Each step runs even if an earlier one failed, so Postfix never outlives the test.
    await pf?.stop().catch((err: unknown) => console.error('stopping Postfix:', err));
    await t?.close().catch((err: unknown) => console.error('closing twoway:', err));
    await dns?.close().catch(() => undefined);
  });

  /** Sends to Postfix's own smtpd, as any client on loopback would (mynetworks). */
  async function viaPostfix(envelope: { from: string; to: string }, raw: Buffer): Promise<string> {
    const transport = nodemailer.createTransport({ host: PF_HOST, port: pf.port, tls: { rejectUnauthorized: false }, name: 'client.test' });
    try {
      return (await transport.sendMail({ envelope, raw })).response;
    } finally {
      transport.close();
    }
  }
  const arrived = (subject: string) =>
    eventually(async () => (await t.server.services.mail.list(annId)).find((m) => m.subject === subject), WAIT, `"${subject}" at twoway (Postfix log:\n${pf.log().slice(-8).join('\n')})`);
  const rawOf = async (id: number) => (await t.server.services.mail.get(annId, id)).raw.toString();

  it('Postfix relays an allowed sender to twoway: INBOX, with Postfix\'s Received header and SPF for its address', async () => {
    const reply = await viaPostfix({ from: 'friend@friend.test', to: `ann@${TW}` }, rawMessage('Friend <friend@friend.test>', `ann@${TW}`, 'from a friend via postfix'));
    assert.match(reply, /^250 /);
    const m = await arrived('from a friend via postfix');
    assert.equal(m.mailbox, 'INBOX', 'friend.test authorises Postfix\'s address by SPF, aligned with From:');
    const raw = await rawOf(m.id);
    assert.match(raw, /^Received: from mx\.pf\.test \(.*\[127\.0\.0\.6\]\)/m, 'twoway\'s own trace names Postfix and its address');
    assert.match(raw, /^Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\r?\n\s+by mx\.pf\.test \(Postfix\) with ESMTPS id \w+\r?\n\s+for <ann@tw\.test>/m, 'Postfix\'s Received header');
    assert.match(raw, /spf=pass[^;]*smtp\.mailfrom=friend@friend\.test|spf=pass[^;]*smtp\.mailfrom=friend\.test/);
    assert.equal(await pf.waitQueueEmpty(WAIT), 0);
  });

  it('a stranger injected with Postfix\'s sendmail(1) lands in the Screener', async () => {
    await pf.sendmail(rawMessage('stranger@nowhere.test', `ann@${TW}`, 'from a stranger via sendmail'), { from: 'stranger@nowhere.test', to: [`ann@${TW}`] });
    const m = await arrived('from a stranger via sendmail');
    assert.equal(m.mailbox, 'Screener');
    assert.match(await rawOf(m.id), /Received: by mx\.pf\.test \(Postfix, from userid 0\)/);
    const requests = await t.server.services.screener.list(annId);
    assert.ok(requests.some((r) => r.sender === 'stranger@nowhere.test' && r.status === 'pending'), JSON.stringify(requests));
  });

  it('a forged From: of the allowed sender (another envelope domain, so no aligned SPF) is screened', async () => {
    await viaPostfix({ from: 'someone@nowhere.test', to: `ann@${TW}` }, rawMessage('Friend <friend@friend.test>', `ann@${TW}`, 'forged friend via postfix'));
    const m = await arrived('forged friend via postfix');
    assert.equal(m.mailbox, 'Screener');
  });

  it('twoway delivers to Postfix as the MX of pf.test: a Maildir file with two DKIM signatures that verify', async () => {
    const response = await submit({ port: t.server.submission!.port, user: `ann@${TW}`, pass: 'ann-password', to: `user@${PF}`, subject: 'to postfix' });
    assert.match(response, /^250 /);
    const file = await eventually(async () => pf.maildir(`user@${PF}`).find((f) => /^Subject: to postfix$/m.test(f.raw.toString())), WAIT, `the Maildir file (Postfix log:\n${pf.log().slice(-8).join('\n')})`);
    const raw = file.raw.toString();
    assert.match(raw, /^Delivered-To: user@pf\.test$/m);
    assert.match(raw, /^Return-Path: <ann@tw\.test>$/m);
    assert.match(raw, /Received: from mx\.tw\.test \(unknown \[127\.0\.0\.1\]\)[\s\S]*?by mx\.pf\.test \(Postfix\) with ESMTPS/, 'twoway used STARTTLS');
    const sigs = raw.split(/\n(?=\S)/).filter((h) => /^DKIM-Signature:/i.test(h));
    assert.equal(sigs.length, 2, raw);
    assert.ok(sigs.some((s) => /a=rsa-sha256/.test(s) && /d=tw\.test/.test(s)));
    assert.ok(sigs.some((s) => /a=ed25519-sha256/.test(s) && /d=tw\.test/.test(s)));
    // What Postfix stored still verifies (Postfix added only trace headers above the signatures).
    const verified = await dkimVerify(file.raw, { resolver: toResolveFunction(createResolver({ servers: [dns.address] })) as never });
    assert.deepEqual(
      verified.results.map((r) => `${r.signingDomain} ${/header\.a=([\w-]+)/.exec(r.info)?.[1]} ${r.status.result}`).sort(),
      ['tw.test ed25519-sha256 pass', 'tw.test rsa-sha256 pass'],
      JSON.stringify(verified.results),
    );
    const entry = await eventually(async () => (await t.server.services.queue.list()).find((e) => e.recipient === `user@${PF}` && e.status.state === 'delivered'), WAIT, 'queue entry delivered');
    assert.ok(entry);
  });

  it('a recipient Postfix refuses (550 5.1.1 at RCPT) comes back as a DSN in the sender\'s INBOX', async () => {
    await submit({ port: t.server.submission!.port, user: `ann@${TW}`, pass: 'ann-password', to: `nobody@${PF}`, subject: 'to nobody at postfix' });
    const dsn = await eventually(async () => (await t.server.services.mail.list(annId)).find((m) => /Undelivered/i.test(m.subject ?? '')), WAIT, 'DSN');
    assert.equal(dsn.mailbox, 'INBOX');
    const raw = await rawOf(dsn.id);
    assert.match(raw, /multipart\/report; report-type=delivery-status/);
    assert.match(raw, /Final-Recipient: rfc822; ?nobody@pf\.test/i);
    assert.match(raw, /Status: 5\.1\.1/);
    assert.match(raw, /Diagnostic-Code: smtp; ?550 5\.1\.1 [\s\S]*User unknown in virtual mailbox table/i);
    assert.match(raw, /Subject: to nobody at postfix/, 'the DSN returns the original headers');
    // The DSN is handed over before the state is written (never lost, at worst sent twice).
    await eventually(async () => (await t.server.services.queue.list()).find((e) => e.recipient === `nobody@${PF}`)?.status.state === 'failed', WAIT, 'failed state');
    assert.ok(pf.log().some((l) => /NOQUEUE: reject: RCPT from .*550 5\.1\.1 <nobody@pf\.test>/.test(l)), 'Postfix refused it at RCPT');
  });
});
