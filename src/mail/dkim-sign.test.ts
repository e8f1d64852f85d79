/**
 * The DKIM signer with keys parsed once (dkim-sign.ts) writes exactly what
 * mailauth's own `dkimSign` writes for the same message and keys (RSA and
 * Ed25519 signatures are deterministic), and the result verifies.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { dkimSign, dkimVerify } from 'mailauth';
import { createRequire } from 'node:module';
import { createDkimSigner } from './dkim-sign.ts';

const { defaultDKIMFieldNames } = createRequire(import.meta.url)('mailauth/lib/tools.js') as { defaultDKIMFieldNames: string };

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const pem = (k: typeof rsa.privateKey) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const spki = (k: typeof rsa.publicKey) => (k.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
const keys = {
  rsa: { selector: 'r1', privateKey: pem(rsa.privateKey), publicKeyBase64: spki(rsa.publicKey) },
  // The Ed25519 record carries the raw 32-byte key (RFC 8463), the last 32 bytes of the SPKI.
  ed25519: { selector: 'e1', privateKey: pem(ed.privateKey), publicKeyBase64: (ed.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).subarray(-32).toString('base64') },
};

const messages = {
  plain: 'From: Ann <ann@a.test>\r\nTo: bea@b.test\r\nSubject: hello   there\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@a.test>\r\n\r\nHello  world \r\n\r\n\r\n',
  folded: 'From: ann@a.test\r\nSubject: a long\r\n  folded subject\r\nTo: bea@b.test,\r\n\tcid@b.test\r\n\r\n' + `${'x'.repeat(990)}\r\n`.repeat(12),
  'no body': 'From: ann@a.test\r\nSubject: empty\r\n\r\n',
  marker: 'From: ann@a.test\r\nTWM-Purpose: ownership-confirmation\r\nSubject: confirm\r\n\r\nyes\r\n',
};

describe('DKIM signing with keys parsed once', () => {
  for (const [name, text] of Object.entries(messages)) {
    it(`signs like mailauth's dkimSign, byte for byte, and verifies (${name})`, async () => {
      const raw = Buffer.from(text);
      const signed = await createDkimSigner(keys)(raw, 'a.test');
      // mailauth signs at the second ours wrote (t=), so the two are equal whenever the clock ticks.
      const t = Number(/ t=(\d+);/.exec(signed.toString('latin1'))?.[1]);
      const theirs = await dkimSign(raw, {
        canonicalization: 'relaxed/relaxed',
        signTime: new Date(t * 1000),
        // mailauth's fields and the ownership-confirmation marker (docs/protocol.md 9.2), as ours signs.
        headerList: `${defaultDKIMFieldNames}:TWM-Purpose`,
        signatureData: [
          { signingDomain: 'a.test', selector: 'r1', privateKey: keys.rsa.privateKey, algorithm: 'rsa-sha256' },
          { signingDomain: 'a.test', selector: 'e1', privateKey: keys.ed25519.privateKey, algorithm: 'ed25519-sha256' },
        ],
      } as unknown as Parameters<typeof dkimSign>[1]);
      assert.equal(signed.toString('latin1'), theirs.signatures + text);
      assert.deepEqual(await verify(signed), BOTH_PASS);
      const signedFields = [...signed.toString('latin1').replace(/\r\n[ \t]+/g, ' ').matchAll(/ h=([^;]+);/g)].map((m) => m[1]!.split(/\s*:\s*/).sort().join());
      const expected = text.includes('TWM-Purpose') ? 'From,Subject,TWM-Purpose' : null;
      if (expected) assert.deepEqual(signedFields, [expected, expected], 'both signatures cover the marker');
    });
  }

  it('signs the t= it writes, however far the clock moves while it signs', async () => {
    // Every read of the clock is 0.6 s after the last: mailauth on its own would stamp one second
    // into the header it signs and another into the header it writes.
    const realNow = Date.now;
    let now = realNow();
    Date.now = () => (now += 600);
    try {
      const signed = await createDkimSigner(keys)(Buffer.from(messages.plain), 'a.test');
      assert.deepEqual(await verify(signed), BOTH_PASS);
    } finally {
      Date.now = realNow;
    }
  });
});

const BOTH_PASS = [
  ['a.test', 'pass', 'rsa-sha256'],
  ['a.test', 'pass', 'ed25519-sha256'],
];

async function verify(signed: Buffer) {
  const records: Record<string, string> = {
    'r1._domainkey.a.test': `v=DKIM1; k=rsa; p=${keys.rsa.publicKeyBase64}`,
    'e1._domainkey.a.test': `v=DKIM1; k=ed25519; p=${keys.ed25519.publicKeyBase64}`,
  };
  const resolver = async (name: string) => {
    const r = records[name];
    if (!r) throw Object.assign(new Error(`no ${name}`), { code: 'ENOTFOUND' });
    return [[r]];
  };
  const verified = await dkimVerify(signed, { resolver } as unknown as Parameters<typeof dkimVerify>[1]);
  return verified.results.map((r) => [r.signingDomain, r.status.result, (r as unknown as { algo?: string }).algo]);
}
