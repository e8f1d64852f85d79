/**
 * runMailauth hands mailauth an unsigned message's header block alone
 * (withoutUnsignedBody): the verdicts and headers must be exactly those of
 * mailauth on the whole message, and a signed message must keep its body,
 * or its body hash could not be checked.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { authenticate } from 'mailauth';
import { runMailauth, withoutUnsignedBody } from './mailauth-run.ts';
import { createDkimSigner } from './dkim-sign.ts';

const ed = generateKeyPairSync('ed25519');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signing = {
  rsa: {
    selector: 'r1',
    privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKeyBase64: (rsa.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
  },
  ed25519: {
    selector: 'e1',
    privateKey: ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKeyBase64: (ed.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).subarray(-32).toString('base64'),
  },
};
const txt: Record<string, string> = {
  'a.test': 'v=spf1 ip4:192.0.2.1 -all',
  '_dmarc.a.test': 'v=DMARC1; p=reject',
  'r1._domainkey.a.test': `v=DKIM1; k=rsa; p=${signing.rsa.publicKeyBase64}`,
  'e1._domainkey.a.test': `v=DKIM1; k=ed25519; p=${signing.ed25519.publicKeyBase64}`,
};
const resolve = async (name: string, rrtype: string) => {
  const r = rrtype === 'TXT' ? txt[name] : undefined;
  if (!r) throw Object.assign(new Error(`no ${rrtype} ${name}`), { code: 'ENOTFOUND' });
  return [[r]];
};
const params = { ip: '192.0.2.1', helo: 'mx.a.test', envelopeFrom: 'ann@a.test', mta: 'mx.b.test' };
const head = 'From: Ann <ann@a.test>\r\nTo: bea@b.test\r\nSubject: hello\r\nReceived: from x by y; Fri, 4 Dec 2026 10:00:00 +0000\r\n';
const body = 'Hello world\r\n'.repeat(500);

describe('runMailauth on an unsigned message', () => {
  it('gives mailauth the header block only, and the same summary and headers as the whole message', async () => {
    for (const text of [`${head}\r\n${body}`, `${head.replaceAll('\r\n', '\n')}\n${body.replaceAll('\r\n', '\n')}`]) {
      const raw = Buffer.from(text);
      const cut = withoutUnsignedBody(raw);
      assert.ok(cut.length < 300, 'the body was cut');
      assert.ok(raw.subarray(0, cut.length).equals(cut));
      const whole = await authenticate(raw, { ...params, sender: params.envelopeFrom, resolver: resolve as never, disableArc: true, disableBimi: true });
      const summary = await runMailauth(raw, params, resolve);
      assert.equal(summary.headers, whole.headers);
      assert.equal(summary.spf.result, 'pass');
      assert.equal(summary.dmarc?.result, 'pass');
      assert.deepEqual(summary.headerFrom, ['ann@a.test']);
      assert.deepEqual(summary.dkimDomains, []);
    }
  });

  it('keeps the body of a signed message, whose body hash is then checked', async () => {
    const signed = await createDkimSigner(signing)(Buffer.from(`${head}\r\n${body}`), 'a.test');
    assert.equal(withoutUnsignedBody(signed), signed);
    assert.deepEqual((await runMailauth(signed, params, resolve)).dkimDomains, ['a.test', 'a.test']);
    // The same signature over a changed body fails: the body did reach mailauth.
    const tampered = Buffer.concat([signed, Buffer.from('tampered\r\n')]);
    assert.deepEqual((await runMailauth(tampered, params, resolve)).dkimDomains, []);
  });

  it('keeps the whole message when the header block mentions a signature anywhere, or has no end', () => {
    for (const text of [`${head}dKiM-SiGnAtUrE : v=1\r\n\r\n${body}`, `${head}X-Note: see dkim-signature\r\n\r\n${body}`, head, `\r\n${head}`]) {
      const raw = Buffer.from(text);
      assert.equal(withoutUnsignedBody(raw), raw, JSON.stringify(text.slice(0, 40)));
    }
  });
});
