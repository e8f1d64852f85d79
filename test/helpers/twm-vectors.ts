/**
 * The test keys and requests of docs/protocol.md Appendix A, byte for byte,
 * for the unit tests of the signature module and the endpoint tests. The
 * keys are public test keys: seed = SHA-256("TWM/1 test vector key <domain>").
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

export function testKey(domain: string): { privateKey: KeyObject; publicKey: KeyObject; seed: Buffer } {
  const seed = createHash('sha256').update(`TWM/1 test vector key ${domain}`).digest();
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): fixed 16-octet prefix.
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey), seed };
}

/** A.2, CRLF line ends. */
export const A2_MESSAGE = Buffer.from(
  [
    'From: Alice <alice@a.example>',
    'To: Bob <bob@b.example>',
    'Subject: Lunch on Thursday?',
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    'Message-ID: <7d1c0e5b2f@a.example>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hi Bob, are you free for lunch on Thursday?',
    '-- Alice',
    '',
  ].join('\r\n'),
);

export const A3_NOTICE_JSON = {
  id: 'vAPuxOSStt1_cK3UHxrs8Q',
  from: 'alice@a.example',
  to: ['bob@b.example', 'carol@b.example'],
  size: 277,
  sha256: 'c6c9650dc50f8e53a2ee58d17ed7e9e5eb6540ba474d9de83e1fc0386a5fc5de',
  created: '2026-12-01T10:00:00Z',
  expires: '2026-12-08T10:00:00Z',
  intro: 'Hi, this is Alice from the climbing club; Dana gave me your address.',
};

export interface VectorRequest {
  signer: string;
  path: string;
  authority: string;
  contentType: string;
  body: Buffer;
  created: number;
  nonce: string;
  contentDigest: string;
  signatureInput: string;
  signature: string;
}

export const A3: VectorRequest = {
  signer: 'a.example',
  path: '/.well-known/twm/v1/notice',
  authority: 'twm.b.example',
  contentType: 'application/twm-notice+json',
  body: Buffer.from(JSON.stringify(A3_NOTICE_JSON, null, 2)),
  created: 1796119200,
  nonce: 'ZU4sh9eCDL6xtbVQ9DFmVA',
  contentDigest: 'sha-256=:iNSGOcjxwwnghaHpseQ/mkRNctNYD2S5llXMgACjC94=:',
  signatureInput:
    'twm=("@method" "@target-uri" "@authority" "content-digest" "content-type");created=1796119200;expires=1796119500;nonce="ZU4sh9eCDL6xtbVQ9DFmVA";keyid="s1._twoway.a.example";alg="ed25519";tag="twm1"',
  signature: 'twm=:DD7G8r3mSAjdAjWTFdVUqB78ZdYFLn2APwbOojMzhg1c+ZW0ReUzZCrhpR6pUxhQ5glnxNr6XDJkLR8PDpexAA==:',
};

export const A4: VectorRequest = {
  signer: 'b.example',
  path: '/.well-known/twm/v1/fetch/vAPuxOSStt1_cK3UHxrs8Q',
  authority: 'twm.a.example:8443',
  contentType: 'application/twm-fetch+json',
  body: Buffer.from(JSON.stringify({ rcpt: ['bob@b.example'] }, null, 2)),
  created: 1796119204,
  nonce: '6InTC4VCHozIMNFfO1AIwQ',
  contentDigest: 'sha-256=:Tbya8VfkPPVGnCAO7Ne7Gdit8nC1Ep1SQBseHtsMX/A=:',
  signatureInput:
    'twm=("@method" "@target-uri" "@authority" "content-digest" "content-type");created=1796119204;expires=1796119504;nonce="6InTC4VCHozIMNFfO1AIwQ";keyid="s1._twoway.b.example";alg="ed25519";tag="twm1"',
  signature: 'twm=:VAIi3Hj17OWYf/q+X/rxSxCWskyAHy32vU2iYL0bD12/hZqAUtRRo5/e+1BNS088B3UclrLfSGoNFHnEzHOlDQ==:',
};

export const A5: VectorRequest = {
  signer: 'b.example',
  path: '/.well-known/twm/v1/receipt',
  authority: 'twm.a.example:8443',
  contentType: 'application/twm-receipt+json',
  body: Buffer.from(JSON.stringify({ id: 'vAPuxOSStt1_cK3UHxrs8Q', results: [{ rcpt: 'bob@b.example', status: 'delivered' }] }, null, 2)),
  created: 1796119205,
  nonce: 'gBElE20ypih85CsmMPBtUw',
  contentDigest: 'sha-256=:7mC9xuqJBoI4GQUd+lJ6suaUSn7DlZdaFkdQBkUsEMg=:',
  signatureInput:
    'twm=("@method" "@target-uri" "@authority" "content-digest" "content-type");created=1796119205;expires=1796119505;nonce="gBElE20ypih85CsmMPBtUw";keyid="s1._twoway.b.example";alg="ed25519";tag="twm1"',
  signature: 'twm=:J0pjTVbSQ35X1tJlDchKl5+N9MaRXSgW0R5lENAskp+u9kXCMA5TXFJmLy3u9eRnBPaPQICTvmuYOCqgiQaNDQ==:',
};

/** The A.3 signature base, as printed in the appendix. */
export const A3_BASE = [
  '"@method": POST',
  '"@target-uri": https://twm.b.example/.well-known/twm/v1/notice',
  '"@authority": twm.b.example',
  '"content-digest": sha-256=:iNSGOcjxwwnghaHpseQ/mkRNctNYD2S5llXMgACjC94=:',
  '"content-type": application/twm-notice+json',
  '"@signature-params": ("@method" "@target-uri" "@authority" "content-digest" "content-type");created=1796119200;expires=1796119500;nonce="ZU4sh9eCDL6xtbVQ9DFmVA";keyid="s1._twoway.a.example";alg="ed25519";tag="twm1"',
].join('\n');
