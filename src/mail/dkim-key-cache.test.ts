/**
 * The DKIM key cache (dkim-key-cache.ts): a key record seen before is not
 * parsed again, the verdicts and the Authentication-Results header stay the
 * same, and a changed record is parsed afresh (never answered from the cache).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { runMailauth } from './mailauth-run.ts';
import { dkimKeyCacheStats } from './dkim-key-cache.ts';
import { createDkimSigner } from './dkim-sign.ts';

const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
function keyPair() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  return {
    rsa: { selector: 'r1', privateKey: pem(rsa.privateKey), publicKeyBase64: (rsa.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64') },
    ed25519: { selector: 'e1', privateKey: pem(ed.privateKey), publicKeyBase64: (ed.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).subarray(-32).toString('base64') },
  };
}
const signing = keyPair();
const other = keyPair();

function resolverFor(keys: typeof signing) {
  const txt: Record<string, string> = {
    'a.test': 'v=spf1 ip4:192.0.2.1 -all',
    '_dmarc.a.test': 'v=DMARC1; p=reject',
    'r1._domainkey.a.test': `v=DKIM1; k=rsa; p=${keys.rsa.publicKeyBase64}`,
    'e1._domainkey.a.test': `v=DKIM1; k=ed25519; p=${keys.ed25519.publicKeyBase64}`,
  };
  return async (name: string, rrtype: string) => {
    const r = rrtype === 'TXT' ? txt[name] : undefined;
    if (!r) throw Object.assign(new Error(`no ${rrtype} ${name}`), { code: 'ENOTFOUND' });
    return [[r]];
  };
}

const params = { ip: '192.0.2.1', helo: 'mx.a.test', envelopeFrom: 'ann@a.test', mta: 'mx.b.test' };
const text = 'From: Ann <ann@a.test>\r\nTo: bea@b.test\r\nSubject: hello\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@a.test>\r\n\r\nHello  world \r\n';

describe('DKIM key cache', () => {
  it('parses a key record once and gives the same verdicts and header from the cache', async () => {
    const signed = await createDkimSigner(signing)(Buffer.from(text), 'a.test');
    assert.equal(dkimKeyCacheStats().active, true);
    const before = dkimKeyCacheStats();
    const first = await runMailauth(signed, params, resolverFor(signing));
    const afterFirst = dkimKeyCacheStats();
    const second = await runMailauth(signed, params, resolverFor(signing));
    const afterSecond = dkimKeyCacheStats();
    assert.deepEqual(first.dkimDomains, ['a.test', 'a.test']);
    assert.match(first.headers, /dkim=pass[^;]*header\.a=rsa-sha256/);
    assert.match(first.headers, /dkim=pass[^;]*header\.a=ed25519-sha256/);
    assert.equal(first.dmarc?.result, 'pass');
    assert.deepEqual(second, first);
    assert.equal(afterFirst.misses - before.misses, 2);
    assert.equal(afterSecond.misses - afterFirst.misses, 0);
    assert.equal(afterSecond.hits - afterFirst.hits, 2);
  });

  it('parses a changed key record afresh: a signature by the old key then fails', async () => {
    const signed = await createDkimSigner(signing)(Buffer.from(text), 'a.test');
    await runMailauth(signed, params, resolverFor(signing));
    const before = dkimKeyCacheStats();
    const changed = await runMailauth(signed, params, resolverFor(other));
    assert.equal(dkimKeyCacheStats().misses - before.misses, 2);
    assert.deepEqual(changed.dkimDomains, []);
    assert.equal((changed.headers.match(/dkim=fail/g) ?? []).length, 2);
  });
});
