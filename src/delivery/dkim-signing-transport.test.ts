/**
 * DKIM at the SMTP hand-off (dkim-signing-transport.ts): what reaches the
 * SMTP transport is signed for the domain the message goes out as (From:,
 * or a list's or forwarder's Sender:), verified with mailauth; a message that
 * is not ours goes unsigned; one message's body is signed once however many
 * SMTP domains it goes to in a round, testing mode's copies included.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { dkimVerify } from 'mailauth';
import { createDkimSigner, type DkimSigner } from '../mail/dkim-sign.ts';
import { createDkimSigningTransport } from './dkim-signing-transport.ts';
import { createRemoteTransport } from './remote-transport.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const pem = (k: typeof rsa.privateKey) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const keys = {
  rsa: { selector: 'r1', privateKey: pem(rsa.privateKey), publicKeyBase64: (rsa.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64') },
  ed25519: { selector: 'e1', privateKey: pem(ed.privateKey), publicKeyBase64: (ed.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).subarray(-32).toString('base64') },
};

/** What the SMTP transport was handed, per domain. */
function smtpRecorder(): Transport & { seen: Array<{ domain: string; message: OutboundMessage }> } {
  const seen: Array<{ domain: string; message: OutboundMessage }> = [];
  return {
    seen,
    deliver: async (domain, message, recipients): Promise<RecipientResult[]> => {
      seen.push({ domain, message });
      return recipients.map((recipient) => ({ recipient, status: 'delivered' as const, reply: { code: 250, text: 'ok' } as never }));
    },
  };
}

/** The real signer, counted. */
function countedSigner(): { sign: DkimSigner; calls: string[] } {
  const real = createDkimSigner(keys);
  const calls: string[] = [];
  return {
    calls,
    sign: (raw, domain) => {
      calls.push(domain);
      return real(raw, domain);
    },
  };
}

function setup() {
  const smtp = smtpRecorder();
  const signer = countedSigner();
  const transport = createDkimSigningTransport({ smtp, sign: signer.sign, domains: ['a.test', 'lists.a.test'] });
  return { smtp, signer, transport };
}

const message = (head: string, id = 'm1'): OutboundMessage => ({
  messageId: id,
  sender: 'ann@a.test',
  raw: Buffer.from(`${head}To: <bea@b.test>\r\nSubject: s\r\nDate: Sat, 5 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${id}@a.test>\r\n\r\nbody\r\n`),
});

/** Each signature as "domain algorithm result", sorted. */
async function verify(raw: Buffer): Promise<string[]> {
  const records: Record<string, string> = {};
  for (const d of ['a.test', 'lists.a.test']) {
    records[`r1._domainkey.${d}`] = `v=DKIM1; k=rsa; p=${keys.rsa.publicKeyBase64}`;
    records[`e1._domainkey.${d}`] = `v=DKIM1; k=ed25519; p=${keys.ed25519.publicKeyBase64}`;
  }
  const resolver = async (name: string) => {
    const r = records[name];
    if (!r) throw Object.assign(new Error(`no ${name}`), { code: 'ENOTFOUND' });
    return [[r]];
  };
  const verified = await dkimVerify(raw, { resolver } as unknown as Parameters<typeof dkimVerify>[1]);
  return verified.results.map((r) => `${r.signingDomain} ${(r as unknown as { algo?: string }).algo} ${r.status.result}`).sort();
}

describe('DKIM signatures at the SMTP hand-off', () => {
  it('signs our From: for its domain with RSA and Ed25519 signatures that verify', async () => {
    const s = setup();
    const m = message('From: Ann <ann@a.test>\r\n');
    await s.transport.deliver('b.test', m, ['bea@b.test']);
    const handed = s.smtp.seen[0]!.message;
    assert.deepEqual(await verify(handed.raw), ['a.test ed25519-sha256 pass', 'a.test rsa-sha256 pass']);
    assert.ok(handed.raw.subarray(handed.raw.length - m.raw.length).equals(m.raw), 'the message follows its signatures unchanged');
    assert.equal(m.raw.includes('DKIM-Signature'), false, 'the queued body is not touched');
    assert.equal(handed.messageId, 'm1');
  });

  it("signs a list's or forwarder's message for its Sender:'s domain, never the author's", async () => {
    const s = setup();
    await s.transport.deliver('b.test', message('From: Alice <alice@author.test>\r\nSender: dev@lists.a.test\r\nList-Id: <dev.lists.a.test>\r\n'), ['bea@b.test']);
    await s.transport.deliver('b.test', message('From: Alice <alice@author.test>\r\nSender: fwd@a.test\r\n', 'm2'), ['bea@b.test']);
    assert.deepEqual(s.signer.calls, ['lists.a.test', 'a.test']);
    assert.deepEqual(await verify(s.smtp.seen[0]!.message.raw), ['lists.a.test ed25519-sha256 pass', 'lists.a.test rsa-sha256 pass']);
    assert.deepEqual(await verify(s.smtp.seen[1]!.message.raw), ['a.test ed25519-sha256 pass', 'a.test rsa-sha256 pass']);
  });

  it('leaves a message that is not ours unsigned, as it was', async () => {
    const s = setup();
    const foreign = message('From: Alice <alice@author.test>\r\n');
    await s.transport.deliver('b.test', foreign, ['bea@b.test']);
    // A Sender: of another domain does not make it ours either.
    await s.transport.deliver('b.test', message('From: alice@author.test\r\nSender: bob@elsewhere.test\r\n', 'm2'), ['bea@b.test']);
    assert.deepEqual(s.signer.calls, []);
    assert.equal(s.smtp.seen[0]!.message, foreign, 'handed over as it is');
    assert.equal(s.smtp.seen[1]!.message.raw.includes('DKIM-Signature'), false);
  });

  it("signs one body once for all the message's SMTP domains in a round; a retry's body is signed again", async () => {
    const s = setup();
    const m = message('From: ann@a.test\r\n');
    // The worker starts a round's calls together, each domain with the same body Buffer.
    await Promise.all(['b.test', 'c.test', 'd.test'].map((d) => s.transport.deliver(d, m, [`x@${d}`])));
    assert.deepEqual(s.signer.calls, ['a.test']);
    const [first, ...others] = s.smtp.seen.map((e) => e.message.raw);
    for (const raw of others) assert.equal(raw, first, 'the same signed bytes');
    // The next round reads the body from the store again: a Buffer of its own.
    await s.transport.deliver('b.test', { ...m, raw: Buffer.from(m.raw) }, ['x@b.test']);
    assert.deepEqual(s.signer.calls, ['a.test', 'a.test']);
  });

  it("testing mode: each TWM domain's SMTP copy is marked and signed, once for all of them", async () => {
    const s = setup();
    const twm: Transport = { deliver: async (_d, _m, recipients) => recipients.map((recipient) => ({ recipient, status: 'delivered' as const, reply: { code: 250, text: 'ok' } as never })) };
    const remote = createRemoteTransport({
      smtp: s.transport,
      twm,
      client: { discover: async () => ({ kind: 'twm' }) as never },
      outbox: { findByMessage: async () => [] },
      domains: ['a.test'],
      testing: true,
    });
    const m = message('From: ann@a.test\r\n');
    await Promise.all(['b.test', 'c.test'].map((d) => remote.deliver(d, m, [`x@${d}`])));
    assert.deepEqual(s.signer.calls, ['a.test']);
    for (const { message: copy } of s.smtp.seen) {
      assert.match(copy.raw.toString(), /^DKIM-Signature: [^\r]*a=rsa-sha256;[\s\S]*\r\nTWM-Testing: y\r\nFrom: ann@a\.test\r\n/);
      assert.deepEqual(await verify(copy.raw), ['a.test ed25519-sha256 pass', 'a.test rsa-sha256 pass']);
    }
  });
});
