import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { TwmError } from './twm-types.ts';
import {
  checkContentDigest,
  checkSignatureTime,
  contentDigest,
  parseTwmSignature,
  signatureBase,
  signRequest,
  verifySignature,
  type SignedRequestView,
} from './twm-signature.ts';
import { A2_MESSAGE, A3, A3_BASE, A4, A5, testKey, type VectorRequest } from '../../test/helpers/twm-vectors.ts';

function view(v: VectorRequest, headers: Record<string, string> = {}): SignedRequestView {
  const all: Record<string, string> = { 'content-type': v.contentType, 'content-digest': v.contentDigest, ...headers };
  return { method: 'POST', targetUri: `https://${v.authority}${v.path}`, authority: v.authority, header: (n) => all[n] };
}

function refusal(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TwmError, String(err));
    assert.equal(err.problemCode, code, err.text);
    return true;
  });
}

test('Appendix A: digests of the message and the three requests', () => {
  assert.equal(A2_MESSAGE.length, 277);
  assert.equal(createHash('sha256').update(A2_MESSAGE).digest('hex'), 'c6c9650dc50f8e53a2ee58d17ed7e9e5eb6540ba474d9de83e1fc0386a5fc5de');
  assert.equal(contentDigest(A2_MESSAGE), 'sha-256=:xsllDcUPjlOi7ljRftfp5etlQLpHTZ3oPh/AOGpfxd4=:');
  assert.deepEqual([A3.body.length, A4.body.length, A5.body.length], [375, 39, 127]);
  for (const v of [A3, A4, A5]) assert.equal(contentDigest(v.body), v.contentDigest);
  assert.equal(Date.parse('2026-12-01T10:00:00Z') / 1000, 1796119200);
});

test('Appendix A: the public keys of the test table', () => {
  const raw = (d: string) => testKey(d).publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64');
  assert.equal(testKey('a.example').seed.toString('hex'), 'd5df0ff56d222a865509b13c6054bb4f68e27999a29c7e7a583a7386f91d0e69');
  assert.equal(raw('a.example'), '65i0ouN7qrqIslBNd4BfrM5ASVhmw0PgNwOYgVDcBKA=');
  assert.equal(testKey('b.example').seed.toString('hex'), '2e6c55828051bede61448f776fd0ebf9d67bb75c65eb1b706b753356ed9ca074');
  assert.equal(raw('b.example'), 'FQ5klvGtnIi/lvB2kCFZu7hPZOyzKoMePr9nyTQZsKI=');
});

for (const [name, v] of [['A.3 notice', A3], ['A.4 fetch', A4], ['A.5 receipt', A5]] as const) {
  test(`Appendix A: ${name} signs to the printed headers and verifies`, () => {
    const headers = signRequest({
      method: 'POST',
      targetUri: `https://${v.authority}${v.path}`,
      authority: v.authority,
      contentType: v.contentType,
      body: v.body,
      keyid: `s1._twoway.${v.signer}`,
      privateKey: testKey(v.signer).privateKey,
      created: new Date(v.created * 1000),
      nonce: v.nonce,
    });
    assert.deepEqual(headers, { 'content-digest': v.contentDigest, 'signature-input': v.signatureInput, signature: v.signature });

    const sig = parseTwmSignature(v.signatureInput, v.signature);
    assert.equal(sig.domain, v.signer);
    assert.equal(sig.selector, 's1');
    checkSignatureTime(sig.params, new Date(v.created * 1000));
    checkContentDigest(v.contentDigest, v.body);
    assert.equal(verifySignature(sig, view(v), testKey(v.signer).publicKey), true);
    assert.equal(verifySignature(sig, view(v), testKey('c.example').publicKey), false);
  });
}

test('Appendix A.3: the signature base is the printed one', () => {
  const sig = parseTwmSignature(A3.signatureInput, A3.signature);
  assert.equal(signatureBase(sig, view(A3)), A3_BASE);
});

test('A.6: one character of intro changed -> digest-mismatch; digest recomputed -> signature fails', () => {
  const changed = Buffer.from(A3.body.toString().replace('climbing', 'climbinG'));
  refusal(() => checkContentDigest(A3.contentDigest, changed), 'digest-mismatch');
  const sig = parseTwmSignature(A3.signatureInput, A3.signature);
  checkContentDigest(contentDigest(changed), changed);
  assert.equal(verifySignature(sig, view(A3, { 'content-digest': contentDigest(changed) }), testKey('a.example').publicKey), false);
});

test('A.6: checked at created + 901 s -> stale-signature; the skew window both ways', () => {
  const sig = parseTwmSignature(A3.signatureInput, A3.signature);
  refusal(() => checkSignatureTime(sig.params, new Date((A3.created + 901) * 1000)), 'stale-signature');
  checkSignatureTime(sig.params, new Date((A3.created + 600) * 1000)); // expires + 300: still fine
  checkSignatureTime(sig.params, new Date((A3.created - 300) * 1000)); // created = now + 300: fine
  refusal(() => checkSignatureTime(sig.params, new Date((A3.created - 301) * 1000)), 'stale-signature');
});

test('Content-Digest: other algorithms ignored; missing or unparsable is a mismatch', () => {
  const body = Buffer.from('x');
  const good = contentDigest(body);
  // The checked digest comes back (the notice path stores it instead of hashing the content again).
  assert.deepEqual(checkContentDigest(`sha-512=:AAAA:, ${good}`, body), createHash('sha256').update(body).digest());
  refusal(() => checkContentDigest(undefined, body), 'digest-mismatch');
  refusal(() => checkContentDigest('sha-512=:AAAA:', body), 'digest-mismatch');
  refusal(() => checkContentDigest('sha-256=abc', body), 'digest-mismatch');
});

test('a fresh signature with a random nonce and a generated key verifies; the nonce is a time prefix and 128 bits, base64url', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const body = Buffer.from('{"rcpt":["x@y.example"]}');
  const h = signRequest({
    method: 'POST',
    targetUri: 'https://twm.y.example/.well-known/twm/v1/fetch/abcdefghijklmnopqrstuv',
    authority: 'TWM.y.example',
    contentType: 'application/twm-fetch+json',
    body,
    keyid: 'k2._twoway.y.example',
    privateKey,
    created: new Date(1_800_000_000_500),
  });
  const sig = parseTwmSignature(h['signature-input'], h.signature);
  // 8 characters of time (core/time-ordered-id.ts), then the 16 random octets.
  assert.match(sig.params.nonce, /^[A-Za-z0-9_-]{30}$/);
  assert.equal(Buffer.from(sig.params.nonce.slice(8), 'base64url').length, 16);
  assert.equal(sig.params.created, 1_800_000_000);
  assert.equal(sig.params.expires, 1_800_000_300);
  const v: SignedRequestView = {
    method: 'POST',
    targetUri: 'https://twm.y.example/.well-known/twm/v1/fetch/abcdefghijklmnopqrstuv',
    authority: 'twm.y.example',
    header: (n) => ({ 'content-type': 'application/twm-fetch+json', 'content-digest': h['content-digest'] })[n],
  };
  assert.equal(verifySignature(sig, v, publicKey), true);
  assert.equal(verifySignature(sig, { ...v, authority: 'twm.z.example' }, publicKey), false);
  assert.equal(verifySignature(sig, { ...v, method: 'PUT' }, publicKey), false);
});

// Steps 4 and 5, as a table: [what, Signature-Input, Signature, code].
const COMPONENTS = '("@method" "@target-uri" "@authority" "content-digest" "content-type")';
const PARAMS = ';created=1796119200;expires=1796119500;nonce="ZU4sh9eCDL6xtbVQ9DFmVA";keyid="s1._twoway.a.example";alg="ed25519";tag="twm1"';
const SIG = 'twm=:DD7G8r3mSAjdAjWTFdVUqB78ZdYFLn2APwbOojMzhg1c+ZW0ReUzZCrhpR6pUxhQ5glnxNr6XDJkLR8PDpexAA==:';
const withParams = (params: string) => `twm=${COMPONENTS}${params}`;
const REFUSALS: Array<[string, string | undefined, string | undefined, string]> = [
  ['no headers', undefined, undefined, 'unsigned'],
  ['no Signature', A3.signatureInput, undefined, 'unsigned'],
  ['other label only', A3.signatureInput.replace('twm=', 'sig1='), SIG.replace('twm=', 'sig1='), 'unsigned'],
  ['label only in Signature-Input', A3.signatureInput, SIG.replace('twm=', 'sig1='), 'unsigned'],
  ['not a structured field', 'twm=("@method"', SIG, 'bad-signature'],
  ['two twm signatures', `${A3.signatureInput}, ${A3.signatureInput}`, SIG, 'bad-signature'],
  ['Signature-Input item, not inner list', 'twm="x"', SIG, 'bad-signature'],
  ['Signature not a byte sequence', A3.signatureInput, 'twm="abc"', 'bad-signature'],
  ['missing created', withParams(PARAMS.replace(';created=1796119200', '')), SIG, 'bad-signature'],
  ['missing expires', withParams(PARAMS.replace(';expires=1796119500', '')), SIG, 'bad-signature'],
  ['missing nonce', withParams(PARAMS.replace(';nonce="ZU4sh9eCDL6xtbVQ9DFmVA"', '')), SIG, 'bad-signature'],
  ['missing keyid', withParams(PARAMS.replace(';keyid="s1._twoway.a.example"', '')), SIG, 'bad-signature'],
  ['missing alg', withParams(PARAMS.replace(';alg="ed25519"', '')), SIG, 'bad-signature'],
  ['missing tag', withParams(PARAMS.replace(';tag="twm1"', '')), SIG, 'bad-signature'],
  ['unknown alg', withParams(PARAMS.replace('"ed25519"', '"rsa-pss-sha512"')), SIG, 'bad-signature'],
  ['unknown tag', withParams(PARAMS.replace('"twm1"', '"twm2"')), SIG, 'bad-signature'],
  ['created as string', withParams(PARAMS.replace('created=1796119200', 'created="1796119200"')), SIG, 'bad-signature'],
  ['lifetime 601 s', withParams(PARAMS.replace('expires=1796119500', 'expires=1796119801')), SIG, 'bad-signature'],
  ['expires = created', withParams(PARAMS.replace('expires=1796119500', 'expires=1796119200')), SIG, 'bad-signature'],
  ['short nonce', withParams(PARAMS.replace('ZU4sh9eCDL6xtbVQ9DFmVA', 'ZU4sh9eCDL6xtbVQ9DFmV')), SIG, 'bad-signature'],
  ['nonce with +', withParams(PARAMS.replace('ZU4sh9eCDL6xtbVQ9DFmVA', 'ZU4sh9eCDL6xtbVQ9DFm+A')), SIG, 'bad-signature'],
  ['upper-case keyid', withParams(PARAMS.replace('s1._twoway.a.example', 'S1._twoway.a.example')), SIG, 'bad-signature'],
  ['keyid without _twoway', withParams(PARAMS.replace('s1._twoway.a.example', 's1.a.example')), SIG, 'bad-signature'],
  ['keyid with one-label domain', withParams(PARAMS.replace('s1._twoway.a.example', 's1._twoway.example')), SIG, 'bad-signature'],
  ['content-type not covered', `twm=("@method" "@target-uri" "@authority" "content-digest")${PARAMS}`, SIG, 'bad-signature'],
  ['components out of order', `twm=("@target-uri" "@method" "@authority" "content-digest" "content-type")${PARAMS}`, SIG, 'bad-signature'],
  ['component listed twice', `twm=("@method" "@method" "@target-uri" "@authority" "content-digest" "content-type")${PARAMS}`, SIG, 'bad-signature'],
  ['component with parameters', `twm=("@method" "@target-uri" "@authority" "content-digest";sf "content-type")${PARAMS}`, SIG, 'bad-signature'],
  ['response-only component', `twm=("@method" "@target-uri" "@authority" "content-digest" "content-type" "@status")${PARAMS}`, SIG, 'bad-signature'],
];

for (const [what, input, signature, code] of REFUSALS) {
  test(`parseTwmSignature refuses: ${what} -> ${code}`, () => refusal(() => parseTwmSignature(input, signature), code));
}

test('other labels are ignored; an extra covered header is part of the base', () => {
  const sig = parseTwmSignature(`sig1=("@method");created=1, ${A3.signatureInput}`, `sig1=:AAAA:, ${SIG}`);
  assert.equal(verifySignature(sig, view(A3), testKey('a.example').publicKey), true);

  const extra = parseTwmSignature(`twm=("@method" "@target-uri" "@authority" "content-digest" "content-type" "date")${PARAMS}`, SIG);
  assert.deepEqual(extra.components.at(-1), 'date');
  refusal(() => signatureBase(extra, view(A3)), 'bad-signature');
  assert.match(signatureBase(extra, view(A3, { date: ' Tue, 01 Dec 2026 10:00:00 GMT ' })), /\n"date": Tue, 01 Dec 2026 10:00:00 GMT\n"@signature-params": \(/);
});

test('nonces from the pool: 128 bits each, never repeated across refills (600 signatures, two refills)', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const seen = new Set<string>();
  for (let i = 0; i < 600; i++) {
    const h = signRequest({
      method: 'POST',
      targetUri: 'https://twm.y.example/.well-known/twm/v1/receipt',
      authority: 'twm.y.example',
      contentType: 'application/twm-receipt+json',
      body: Buffer.from('{}'),
      keyid: 'k2._twoway.y.example',
      privateKey,
      created: new Date(1_800_000_000_000),
    });
    const { nonce } = parseTwmSignature(h['signature-input'], h.signature).params;
    assert.match(nonce, /^[A-Za-z0-9_-]{30}$/);
    // The random part alone never repeats (the time prefix may, within a millisecond).
    assert.ok(!seen.has(nonce.slice(8)), `nonce ${nonce} repeated at signature ${i}`);
    seen.add(nonce.slice(8));
  }
});

test('the canonical fields (as signRequest writes them) read the same as through the general parser', () => {
  // A leading space is allowed by RFC 8941 and keeps a field off the canonical pattern: the general parser reads it.
  for (const v of [A3, A4, A5]) {
    const fast = parseTwmSignature(v.signatureInput, v.signature);
    const general = parseTwmSignature(` ${v.signatureInput}`, ` ${v.signature}`);
    assert.deepEqual(fast, general);
    assert.equal(fast.signatureParams, v.signatureInput.slice('twm='.length));
    assert.deepEqual(checkContentDigest(v.contentDigest, v.body), checkContentDigest(` ${v.contentDigest}`, v.body));
  }
  // The refusals the canonical form can meet are the general parser's, word for word.
  for (const params of [PARAMS.replace('expires=1796119500', 'expires=1796119801'), PARAMS.replace('s1._twoway.a.example', 's1.a.example')]) {
    const texts = [withParams(params), ` ${withParams(params)}`].map((input) => {
      try {
        parseTwmSignature(input, SIG);
      } catch (err) {
        return err instanceof TwmError ? `${err.problemCode}: ${err.text}` : String(err);
      }
      return 'accepted';
    });
    assert.notEqual(texts[0], 'accepted');
    assert.equal(texts[0], texts[1]);
  }
  // Leading zeros would serialise differently: not canonical, and the base carries the re-serialised value.
  const padded = parseTwmSignature(withParams(PARAMS.replace('created=1796119200', 'created=01796119200')), SIG);
  assert.equal(padded.params.created, 1796119200);
  assert.match(padded.signatureParams, /;created=1796119200;/);
});

test('the profile-only signature base needs both covered header fields', () => {
  const sig = parseTwmSignature(A3.signatureInput, A3.signature);
  const without = (name: string): SignedRequestView => ({ ...view(A3), header: (n) => (n === name ? undefined : view(A3).header(n)) });
  refusal(() => signatureBase(sig, without('content-type')), 'bad-signature');
  refusal(() => signatureBase(sig, without('content-digest')), 'bad-signature');
  // Covered values are trimmed (RFC 9421 2.1), as for any header field.
  assert.equal(signatureBase(sig, view(A3, { 'content-type': ` ${A3.contentType} ` })), A3_BASE);
});
