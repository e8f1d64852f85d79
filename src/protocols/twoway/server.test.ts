/**
 * Protocol tier: the TWM endpoint over real HTTPS on 127.0.0.1, hooks backed
 * by Maps (no store). The Appendix A requests are sent byte for byte with
 * their printed signatures, the clock set to their time; every refusal of
 * section 5.4 is checked for its status, its `twm_error`, and that nothing
 * was stored (and, before step 10, that no key was even looked up).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import selfsigned from 'selfsigned';
import { Agent, request } from 'undici';
import type { FastifyInstance } from 'fastify';
import { ReplyError } from '../../core/errors.ts';
import { parseNotice } from '../../core/twm-schema.ts';
import { signRequest } from '../../core/twm-signature.ts';
import { twmError, type FetchRequest, type Notice, type NoticeResult, type Receipt, type TwmErrorCode } from '../../core/twm-types.ts';
import { A2_MESSAGE, A3, A3_NOTICE_JSON, A4, A5, testKey, type VectorRequest } from '../../../test/helpers/twm-vectors.ts';
import { createTwmApp, startTwmListener, type TwmAppOptions, type TwmListener } from './server.ts';
import type { OutboundNoticeFacts, TwmEndpoint, TwmNonce, TwmServerHooks, TwmServerOptions, TwmSigner } from './types.ts';

const ID = A3_NOTICE_JSON.id;
const EXPIRES = new Date('2026-12-08T10:00:00Z');
const AUTHORITIES = ['twm.b.example', 'twm.a.example:8443'];

let tls: { key: string; cert: string };
let agent: Agent;

before(() => {
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const pems = selfsigned.generate([{ name: 'commonName', value: 'twm.b.example' }], {
    days: 2,
    algorithm: 'sha256',
    // As in config/materials.ts: selfsigned 2 takes a node:crypto pair, which its typings omit.
    ...({ keyPair: pair } as object),
    // undici takes the TLS server name from the Host header, so every Host the tests send is in the certificate.
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [...['twm.a.example', 'twm.b.example', 'twm.c.example'].map((value) => ({ type: 2, value })), { type: 7, ip: '127.0.0.1' }],
      },
    ],
  });
  tls = { key: pair.privateKey, cert: pems.cert };
  agent = new Agent({ connect: { ca: pems.cert } });
});
after(() => agent.close());

/** The recipient's and the sender's state, in Maps: what a refusal must leave alone. */
class MapHooks implements TwmServerHooks {
  keys = new Map<string, KeyObject>([
    ['s1._twoway.a.example', testKey('a.example').publicKey],
    ['s1._twoway.b.example', testKey('b.example').publicKey],
  ]);
  served = new Set(['b.example']);
  outbound = new Map<string, OutboundNoticeFacts>([[ID, { domain: 'b.example', to: ['bob@b.example', 'carol@b.example'], expires: EXPIRES }]]);
  nonces = new Map<string, Date>();
  notices = new Map<string, { notice: Notice; digest: string; signer: TwmSigner; result: NoticeResult }>();
  fetches: Array<{ id: string; request: FetchRequest; signer: TwmSigner }> = [];
  receipts: Array<{ receipt: Receipt; signer: TwmSigner }> = [];
  refused: Array<[TwmEndpoint, TwmErrorCode]> = [];
  keyLookups = 0;
  /** Set to make a hook fail. */
  fail: Partial<Record<'notice' | 'lookupKey' | 'fetch', Error>> = {};

  servesDomain(domain: string): boolean {
    return this.served.has(domain);
  }
  async outboundNotice(id: string): Promise<OutboundNoticeFacts | undefined> {
    return this.outbound.get(id);
  }
  async lookupKey(keyid: string): Promise<KeyObject | null> {
    this.keyLookups++;
    if (this.fail.lookupKey) throw this.fail.lookupKey;
    return this.keys.get(keyid) ?? null;
  }
  async rememberNonce(keyid: string, nonce: string, until: Date, _created?: Date): Promise<boolean> {
    const key = `${keyid} ${nonce}`;
    if (this.nonces.has(key)) return false;
    this.nonces.set(key, until);
    return true;
  }
  async notice(notice: Notice, signer: TwmSigner, digest: string): Promise<NoticeResult> {
    if (this.fail.notice) throw this.fail.notice;
    const known = this.notices.get(`${signer.domain} ${notice.id}`);
    if (known) {
      if (known.digest !== digest) throw twmError('id-conflict', 'this id was used for another notice');
      return known.result;
    }
    const result: NoticeResult = { id: notice.id, results: notice.to.map((rcpt) => ({ rcpt, status: rcpt.startsWith('bob@') ? 'accepted' : 'pending' })) };
    this.notices.set(`${signer.domain} ${notice.id}`, { notice, digest, signer, result });
    return result;
  }
  async fetch(id: string, request: FetchRequest, signer: TwmSigner): Promise<Buffer> {
    if (this.fail.fetch) throw this.fail.fetch;
    this.fetches.push({ id, request, signer });
    return A2_MESSAGE;
  }
  async receipt(receipt: Receipt, signer: TwmSigner): Promise<void> {
    this.receipts.push({ receipt, signer });
  }
  /** The verified signer domain of each refusal, null when it came before verification. */
  refusedBy: Array<string | null> = [];
  onRefused(endpoint: TwmEndpoint, code: TwmErrorCode, signerDomain?: string): void {
    this.refused.push([endpoint, code]);
    this.refusedBy.push(signerDomain ?? null);
  }

  /** Everything a refused request must not change (refusal counters aside). */
  snapshot(): string {
    return JSON.stringify({ nonces: [...this.nonces], notices: [...this.notices.keys()], fetches: this.fetches, receipts: this.receipts });
  }
}

interface Server {
  hooks: MapHooks;
  clock: { now: number };
  send(req: Wire): Promise<Answer>;
  raw(method: string, path: string, headers?: Record<string, string>, body?: Buffer | Readable): Promise<Answer>;
}
interface Wire {
  path: string;
  host: string;
  headers: Record<string, string>;
  body: Buffer;
}
interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The parsed problem or result, when JSON. */
  // Parsed JSON, indexed freely by the assertions.
  json: Record<string, unknown>;
}

async function withServer(fn: (s: Server) => Promise<void>, extra: Partial<TwmServerOptions> & Pick<TwmAppOptions, 'direct'> = {}): Promise<void> {
  const hooks = new MapHooks();
  const clock = { now: (A3.created + 1) * 1000 };
  const app: FastifyInstance = await createTwmApp({
    hooks,
    authorities: AUTHORITIES,
    maxMessageSize: 25 * 1024 * 1024,
    now: () => new Date(clock.now),
    tls,
    log: false,
    ...extra,
  });
  const listener: TwmListener = await startTwmListener({ host: '127.0.0.1', port: 0, app });
  const raw = async (method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<Answer> => {
    const res = await request(`https://127.0.0.1:${listener.port}${path}`, {
      method: method as 'POST',
      headers,
      ...(body === undefined ? {} : { body }),
      dispatcher: agent,
    });
    const buf = Buffer.from(await res.body.arrayBuffer());
    const type = String(res.headers['content-type'] ?? '');
    return { status: res.statusCode, headers: res.headers, body: buf, json: /json/.test(type) && buf.length ? JSON.parse(buf.toString()) : {} };
  };
  try {
    await fn({ hooks, clock, raw, send: (w) => raw('POST', w.path, { host: w.host, ...w.headers }, w.body) });
  } finally {
    await listener.close();
  }
}

/** An Appendix A request exactly as printed. */
function vector(v: VectorRequest): Wire {
  return {
    path: v.path,
    host: v.authority,
    headers: { 'content-type': v.contentType, 'content-digest': v.contentDigest, 'signature-input': v.signatureInput, signature: v.signature },
    body: v.body,
  };
}

/** A freshly signed request. */
function signed(opts: { signer: string; path: string; host: string; contentType: string; body: Buffer; created: number; selector?: string; authority?: string }): Wire {
  const authority = opts.authority ?? opts.host;
  const headers = signRequest({
    method: 'POST',
    targetUri: `https://${authority}${opts.path}`,
    authority,
    contentType: opts.contentType,
    body: opts.body,
    keyid: `${opts.selector ?? 's1'}._twoway.${opts.signer}`,
    privateKey: testKey(opts.signer).privateKey,
    created: new Date(opts.created * 1000),
  });
  return { path: opts.path, host: opts.host, headers: { 'content-type': opts.contentType, ...headers }, body: opts.body };
}

const noticeBody = (changes: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({ ...A3_NOTICE_JSON, ...changes }, null, 2));
const signedNotice = (changes: Record<string, unknown> = {}, signer = 'a.example', extra: { selector?: string; authority?: string } = {}) =>
  signed({ signer, path: A3.path, host: A3.authority, contentType: A3.contentType, body: noticeBody(changes), created: A3.created, ...extra });
const signedFetch = (rcpt: string[], signer = 'b.example', id = ID) =>
  signed({ signer, path: `/.well-known/twm/v1/fetch/${id}`, host: A4.authority, contentType: A4.contentType, body: Buffer.from(JSON.stringify({ rcpt })), created: A4.created });
const signedReceipt = (results: unknown[], signer = 'b.example', id = ID) =>
  signed({ signer, path: A5.path, host: A5.authority, contentType: A5.contentType, body: Buffer.from(JSON.stringify({ id, results })), created: A5.created });

/** Asserts a refusal: status, problem document, counted, and nothing stored. */
async function refused(s: Server, answer: Promise<Answer>, status: number, code: TwmErrorCode, endpoint: TwmEndpoint, opts: { keyLooked?: boolean } = {}): Promise<Answer> {
  const before = s.hooks.snapshot();
  const lookups = s.hooks.keyLookups;
  const a = await answer;
  assert.equal(a.status, status, `status for ${code}: ${a.body.toString()}`);
  assert.match(String(a.headers['content-type']), /^application\/problem\+json/);
  assert.equal(a.json.twm_error, code);
  assert.equal(a.json.status, status);
  assert.equal(a.json.type, 'about:blank');
  assert.equal(typeof a.json.detail, 'string');
  assert.equal(a.headers['cache-control'], 'no-store');
  assert.deepEqual(s.hooks.refused.at(-1), [endpoint, code]);
  assert.equal(s.hooks.snapshot(), before, 'a refusal changed the hooks state');
  if (!opts.keyLooked) assert.equal(s.hooks.keyLookups, lookups, 'a key was looked up before step 10');
  return a;
}

// --- Happy paths: the Appendix A exchange, byte for byte -------------------------------------

test('A.3: the printed notice verifies and is answered with the notice result', () =>
  withServer(async (s) => {
    const a = await s.send(vector(A3));
    assert.equal(a.status, 200, a.body.toString());
    assert.equal(a.headers['content-type'], 'application/twm-notice-result+json');
    assert.equal(a.headers['cache-control'], 'no-store');
    assert.equal(
      a.body.toString(),
      '{"id":"vAPuxOSStt1_cK3UHxrs8Q","results":[{"rcpt":"bob@b.example","status":"accepted"},{"rcpt":"carol@b.example","status":"pending"}]}',
    );
    const stored = s.hooks.notices.get(`a.example ${ID}`);
    assert.deepEqual(stored?.signer, { keyid: 's1._twoway.a.example', domain: 'a.example' });
    assert.equal(stored?.digest, '88d48639c8f1c309e085a1e9b1e43f9a444d72d3580f64b99655cc8000a30bde');
    assert.deepEqual(stored?.notice, parseNotice(A3_NOTICE_JSON));
    assert.deepEqual([...s.hooks.nonces], [['s1._twoway.a.example ZU4sh9eCDL6xtbVQ9DFmVA', new Date((1796119500 + 300) * 1000)]]);
    assert.deepEqual(s.hooks.refused, []);
  }));

test('A.4: the printed fetch is answered with the message, Content-Length and Content-Digest', () =>
  withServer(async (s) => {
    s.clock.now = (A4.created + 2) * 1000;
    const a = await s.send(vector(A4));
    assert.equal(a.status, 200, a.body.toString());
    assert.equal(a.headers['content-type'], 'message/rfc822');
    assert.equal(a.headers['content-length'], '277');
    assert.equal(a.headers['content-digest'], 'sha-256=:xsllDcUPjlOi7ljRftfp5etlQLpHTZ3oPh/AOGpfxd4=:');
    assert.equal(a.headers['cache-control'], 'no-store');
    assert.deepEqual(a.body, A2_MESSAGE);
    assert.deepEqual(s.hooks.fetches, [{ id: ID, request: { rcpt: ['bob@b.example'] }, signer: { keyid: 's1._twoway.b.example', domain: 'b.example' } }]);
  }));

test('A.5: the printed receipt is answered 204', () =>
  withServer(async (s) => {
    s.clock.now = (A5.created + 2) * 1000;
    const a = await s.send(vector(A5));
    assert.equal(a.status, 204, a.body.toString());
    assert.equal(a.body.length, 0);
    assert.equal(a.headers['cache-control'], 'no-store');
    assert.deepEqual(s.hooks.receipts, [
      { receipt: { id: ID, results: [{ rcpt: 'bob@b.example', status: 'delivered' }] }, signer: { keyid: 's1._twoway.b.example', domain: 'b.example' } },
    ]);
  }));

test('A.6: A.3 re-signed with a new nonce is a retry: 200 with the current statuses; a new intro is id-conflict', () =>
  withServer(async (s) => {
    assert.equal((await s.send(vector(A3))).status, 200);
    const retry = await s.send(signedNotice());
    assert.equal(retry.status, 200);
    assert.deepEqual(retry.json.results, [
      { rcpt: 'bob@b.example', status: 'accepted' },
      { rcpt: 'carol@b.example', status: 'pending' },
    ]);
    const conflict = await s.send(signedNotice({ intro: 'Hello again' }));
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.twm_error, 'id-conflict');
    assert.deepEqual(s.hooks.refused, [['notice', 'id-conflict']]);
  }));

test('the Host header may differ from the signed authority (a proxy): every configured authority is tried', () =>
  withServer(async (s) => {
    const a = await s.send({ ...vector(A3), host: '127.0.0.1:8443' });
    assert.equal(a.status, 200, a.body.toString());
  }));

test('a Host with port 443 and a trailing dot is the same authority', () =>
  withServer(async (s) => {
    assert.equal((await s.send({ ...vector(A3), host: 'TWM.b.example.:443' })).status, 200);
  }));

test('authorities added after the app was created are honoured (read per request)', () => {
  const authorities = ['twm.b.example'];
  return withServer(
    async (s) => {
      s.clock.now = (A5.created + 1) * 1000;
      await refused(s, s.send(vector(A5)), 401, 'bad-signature', 'receipt', { keyLooked: true });
      authorities.push('twm.a.example:8443');
      assert.equal((await s.send(signedReceipt([{ rcpt: 'bob@b.example', status: 'delivered' }]))).status, 204);
    },
    { authorities },
  );
});

test('a notice signed under another selector of the from domain verifies', () =>
  withServer(async (s) => {
    s.hooks.keys.set('s2._twoway.a.example', testKey('a.example').publicKey);
    assert.equal((await s.send(signedNotice({}, 'a.example', { selector: 's2' }))).status, 200);
  }));

// --- Refusals of section 5.4, in its order ------------------------------------------------------

test('step 1: over the per-address rate -> 429 rate-limited with Retry-After', () =>
  withServer(
    async (s) => {
      assert.equal((await s.send(vector(A3))).status, 200);
      assert.equal((await s.send(signedNotice())).status, 200);
      const a = await refused(s, s.send(signedNotice()), 429, 'rate-limited', 'notice');
      assert.equal(a.headers['retry-after'], '1');
      assert.equal(a.json.retry_after, 1);
    },
    { clientRate: { perSecond: 1, burst: 2 } },
  ));

test('step 2: a notice of 16,385 octets -> 413 too-large (declared length and chunked)', () =>
  withServer(async (s) => {
    const big = { ...vector(A3), body: Buffer.alloc(16_385, 0x20) };
    await refused(s, s.send(big), 413, 'too-large', 'notice');
    const chunks = Readable.from([Buffer.alloc(10_000, 0x20), Buffer.alloc(6_385, 0x20)]);
    await refused(s, s.raw('POST', A3.path, { host: A3.authority, 'content-type': A3.contentType }, chunks), 413, 'too-large', 'notice');
    // Exactly at the limit is read (and then fails the digest, not the size).
    await refused(s, s.send({ ...vector(A3), body: Buffer.alloc(16_384, 0x20) }), 400, 'digest-mismatch', 'notice');
  }));

test('step 2 before 3: an oversized request of the wrong media type is too-large', () =>
  withServer(async (s) => {
    await refused(s, s.raw('POST', A3.path, { host: A3.authority, 'content-type': 'text/plain' }, Buffer.alloc(20_000)), 413, 'too-large', 'notice');
  }));

test('step 3: wrong or missing media type -> 415 unsupported-media-type; parameters are ignored', () =>
  withServer(async (s) => {
    await refused(s, s.send({ ...vector(A3), headers: { ...vector(A3).headers, 'content-type': 'application/json' } }), 415, 'unsupported-media-type', 'notice');
    await refused(s, s.send({ ...vector(A4), headers: { ...vector(A4).headers, 'content-type': A3.contentType } }), 415, 'unsupported-media-type', 'fetch');
    await refused(s, s.raw('POST', A5.path, { host: A5.authority }), 415, 'unsupported-media-type', 'receipt');
    // Step 3 before 4: unsigned and of the wrong type is a media-type refusal.
    await refused(s, s.raw('POST', A3.path, { host: A3.authority, 'content-type': 'text/plain' }, A3.body), 415, 'unsupported-media-type', 'notice');
    // The signature covers the Content-Type as sent, so a parameter is checked there, not here: it fails step 11.
    const withCharset = { ...vector(A3), headers: { ...vector(A3).headers, 'content-type': `${A3.contentType}; charset=utf-8` } };
    await refused(s, s.send(withCharset), 401, 'bad-signature', 'notice', { keyLooked: true });
  }));

test('step 4: A.3 without Signature/Signature-Input -> 401 unsigned', () =>
  withServer(async (s) => {
    const { signature: _s, 'signature-input': _i, ...headers } = vector(A3).headers;
    await refused(s, s.send({ ...vector(A3), headers }), 401, 'unsigned', 'notice');
    await refused(s, s.send({ ...vector(A3), headers: { ...vector(A3).headers, signature: A3.signature.replace('twm=', 'other=') } }), 401, 'unsigned', 'notice');
  }));

test('step 5: malformed parameters -> 401 bad-signature', () =>
  withServer(async (s) => {
    const noTag = { ...vector(A3), headers: { ...vector(A3).headers, 'signature-input': A3.signatureInput.replace(';tag="twm1"', '') } };
    await refused(s, s.send(noTag), 401, 'bad-signature', 'notice');
    const badKeyid = { ...vector(A3), headers: { ...vector(A3).headers, 'signature-input': A3.signatureInput.replace('s1._twoway.a.example', 'a.example') } };
    await refused(s, s.send(badKeyid), 401, 'bad-signature', 'notice');
  }));

test('step 6: A.3 checked at created + 901 s -> 401 stale-signature', () =>
  withServer(async (s) => {
    s.clock.now = (A3.created + 901) * 1000;
    await refused(s, s.send(vector(A3)), 401, 'stale-signature', 'notice');
    s.clock.now = (A3.created - 301) * 1000;
    await refused(s, s.send(vector(A3)), 401, 'stale-signature', 'notice');
  }));

test('step 7: A.3 with one character of intro changed -> 400 digest-mismatch; no Content-Digest too', () =>
  withServer(async (s) => {
    const changed = Buffer.from(A3.body.toString().replace('climbing', 'climbinG'));
    await refused(s, s.send({ ...vector(A3), body: changed }), 400, 'digest-mismatch', 'notice');
    const { 'content-digest': _d, ...headers } = vector(A3).headers;
    await refused(s, s.send({ ...vector(A3), headers }), 400, 'digest-mismatch', 'notice');
  }));

test('step 8: not JSON, duplicate members, schema violations -> 400 invalid-request', () =>
  withServer(async (s) => {
    const raw = (body: string) => signed({ signer: 'a.example', path: A3.path, host: A3.authority, contentType: A3.contentType, body: Buffer.from(body), created: A3.created });
    await refused(s, s.send(raw('{"id": ')), 400, 'invalid-request', 'notice');
    await refused(s, s.send(raw(`{"id": "${ID}", ${noticeBody().toString().slice(1)}`)), 400, 'invalid-request', 'notice');
    const a = await refused(s, s.send(signedNotice({ size: -1 })), 400, 'invalid-request', 'notice');
    assert.match(String(a.json.detail), /size/);
    await refused(s, s.send(signedFetch([])), 400, 'invalid-request', 'fetch');
    await refused(s, s.send(signedFetch(['bob@b.example'], 'b.example', 'short')), 400, 'invalid-request', 'fetch');
    await refused(s, s.send(signedReceipt([{ rcpt: 'bob@b.example', status: 'failed' }])), 400, 'invalid-request', 'receipt');
  }));

test('step 9 (notice): from mallory@c.example signed by a.example -> 403 wrong-domain', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedNotice({ from: 'mallory@c.example' })), 403, 'wrong-domain', 'notice');
  }));

test('step 9 (notice): a list_id outside the signer domain -> 403 wrong-domain (no key needed to refuse); its own is accepted', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedNotice({ list_id: 'dev.lists.c.example' })), 403, 'wrong-domain', 'notice');
    await refused(s, s.send(signedNotice({ list_id: 'example.org' })), 403, 'wrong-domain', 'notice');
    // "xa.example" is not under "a.example": a suffix match must stop at a dot.
    await refused(s, s.send(signedNotice({ list_id: 'dev.xa.example' })), 403, 'wrong-domain', 'notice');
    for (const [i, listId] of ['dev.lists.a.example', 'A.Example'].entries()) {
      const a = await s.send(signedNotice({ list_id: listId, id: `${ID.slice(0, -1)}${i}` }));
      assert.equal(a.status, 200, `${listId}: ${a.body.toString()}`);
    }
  }));

test('step 9 (notice): recipients at two domains -> 400 invalid-request', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedNotice({ to: ['bob@b.example', 'dave@d.example'] })), 400, 'invalid-request', 'notice');
  }));

test('step 9 (notice): a recipient domain this server does not serve -> 421 not-served', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedNotice({ to: ['bob@x.example'] })), 421, 'not-served', 'notice');
  }));

test('step 9 (fetch): unknown id -> 404 unknown-id', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedFetch(['bob@b.example'], 'b.example', 'AAAAAAAAAAAAAAAAAAAAAA')), 404, 'unknown-id', 'fetch');
  }));

test('step 9 (fetch): A.4 signed by c.example -> 403 wrong-domain (no key needed to refuse)', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedFetch(['bob@b.example'], 'c.example')), 403, 'wrong-domain', 'fetch');
  }));

test('step 9 (fetch, receipt): listing dave@b.example -> 403 not-listed', () =>
  withServer(async (s) => {
    await refused(s, s.send(signedFetch(['bob@b.example', 'dave@b.example'])), 403, 'not-listed', 'fetch');
    await refused(s, s.send(signedReceipt([{ rcpt: 'dave@b.example', status: 'delivered' }])), 403, 'not-listed', 'receipt');
    await refused(s, s.send(signedReceipt([{ rcpt: 'bob@b.example', status: 'delivered' }], 'c.example')), 403, 'wrong-domain', 'receipt');
    await refused(s, s.send(signedReceipt([{ rcpt: 'bob@b.example', status: 'delivered' }], 'b.example', 'AAAAAAAAAAAAAAAAAAAAAA')), 404, 'unknown-id', 'receipt');
  }));

test('step 10: A.3 with keyid s9._twoway.a.example (no record) -> 401 unknown-key', () =>
  withServer(async (s) => {
    const a = await refused(s, s.send(signedNotice({}, 'a.example', { selector: 's9' })), 401, 'unknown-key', 'notice', { keyLooked: true });
    assert.match(String(a.json.detail), /s9\._twoway\.a\.example/);
  }));

test('step 10: a temporary DNS failure -> 503 temporarily-unavailable with Retry-After', () =>
  withServer(async (s) => {
    s.hooks.fail.lookupKey = twmError('temporarily-unavailable', 'DNS lookup failed', { retryAfter: 120 });
    const a = await refused(s, s.send(vector(A3)), 503, 'temporarily-unavailable', 'notice', { keyLooked: true });
    assert.equal(a.headers['retry-after'], '120');
    assert.equal(a.json.retry_after, 120);
  }));

test('step 11: A.3 with intro changed and Content-Digest recomputed -> 401 bad-signature', () =>
  withServer(async (s) => {
    const changed = Buffer.from(A3.body.toString().replace('climbing', 'climbinG'));
    const digest = `sha-256=:${createHash('sha256').update(changed).digest('base64')}:`;
    const tampered = { ...vector(A3), body: changed, headers: { ...vector(A3).headers, 'content-digest': digest } };
    await refused(s, s.send(tampered), 401, 'bad-signature', 'notice', { keyLooked: true });
  }));

test('step 11: signed for another authority -> 401 bad-signature, whatever the Host header says', () =>
  withServer(async (s) => {
    const other = signedNotice({}, 'a.example', { authority: 'twm.c.example' });
    await refused(s, s.send({ ...other, host: 'twm.c.example' }), 401, 'bad-signature', 'notice', { keyLooked: true });
    await refused(s, s.send({ ...other, host: 'twm.b.example' }), 401, 'bad-signature', 'notice', { keyLooked: true });
  }));

test('step 11: a signature by another domain key under the right keyid -> 401 bad-signature', () =>
  withServer(async (s) => {
    s.hooks.keys.set('s1._twoway.a.example', testKey('c.example').publicKey);
    await refused(s, s.send(vector(A3)), 401, 'bad-signature', 'notice', { keyLooked: true });
  }));

test('step 12: A.3 sent a second time, unchanged -> 409 replay', () =>
  withServer(async (s) => {
    assert.equal((await s.send(vector(A3))).status, 200);
    await refused(s, s.send(vector(A3)), 409, 'replay', 'notice', { keyLooked: true });
    s.clock.now = (A4.created + 1) * 1000;
    assert.equal((await s.send(vector(A4))).status, 200);
    await refused(s, s.send(vector(A4)), 409, 'replay', 'fetch', { keyLooked: true });
  }));

// --- After verification ------------------------------------------------------------------------

test('a notice with expires in the past -> 410 expired; created too far ahead -> invalid-request', () =>
  withServer(async (s) => {
    s.clock.now = EXPIRES.getTime();
    const late = signed({ signer: 'a.example', path: A3.path, host: A3.authority, contentType: A3.contentType, body: A3.body, created: EXPIRES.getTime() / 1000 });
    assert.equal((await s.send(late)).json.twm_error, 'expired');
    assert.deepEqual(s.hooks.notices.size, 0);
    s.clock.now = (A3.created - 301) * 1000;
    const early = signed({ signer: 'a.example', path: A3.path, host: A3.authority, contentType: A3.contentType, body: A3.body, created: A3.created - 301 });
    const a = await s.send(early);
    assert.equal(a.status, 400);
    assert.equal(a.json.twm_error, 'invalid-request');
    assert.deepEqual(s.hooks.refused, [['notice', 'expired'], ['notice', 'invalid-request']]);
  }));

test('a refusal names the signer domain only once the signature verified (failure reports, 6.6)', () =>
  withServer(async (s) => {
    await s.send(signedNotice({}, 'a.example', { selector: 's9' }));
    s.clock.now = EXPIRES.getTime();
    await s.send(signed({ signer: 'a.example', path: A3.path, host: A3.authority, contentType: A3.contentType, body: A3.body, created: EXPIRES.getTime() / 1000 }));
    assert.deepEqual(s.hooks.refused, [['notice', 'unknown-key'], ['notice', 'expired']]);
    assert.deepEqual(s.hooks.refusedBy, [null, 'a.example']);
  }));

test('a notice larger than the message limit -> 422 message-too-large with max_size', () =>
  withServer(
    async (s) => {
      const a = await s.send(vector(A3));
      assert.equal(a.status, 422);
      assert.equal(a.json.twm_error, 'message-too-large');
      assert.equal(a.json.max_size, 276);
      assert.equal(s.hooks.notices.size, 0);
    },
    { maxMessageSize: 276 },
  ));

test('a fetch after expires -> 410 expired; the fetch hook is not called', () =>
  withServer(async (s) => {
    s.clock.now = EXPIRES.getTime() + 1000;
    const late = signed({ signer: 'b.example', path: A4.path, host: A4.authority, contentType: A4.contentType, body: A4.body, created: EXPIRES.getTime() / 1000 });
    const a = await s.send(late);
    assert.equal(a.status, 410);
    assert.equal(a.json.twm_error, 'expired');
    assert.deepEqual(s.hooks.fetches, []);
    assert.deepEqual(s.hooks.refused, [['fetch', 'expired']]);
  }));

test('a receipt after the grace -> 404 unknown-id; within it -> 204', () =>
  withServer(async (s) => {
    const at = (t: number) => signed({ signer: 'b.example', path: A5.path, host: A5.authority, contentType: A5.contentType, body: A5.body, created: t / 1000 });
    s.clock.now = EXPIRES.getTime() + 23 * 3_600_000;
    assert.equal((await s.send(at(s.clock.now))).status, 204);
    s.clock.now = EXPIRES.getTime() + 25 * 3_600_000;
    assert.equal((await s.send(at(s.clock.now))).json.twm_error, 'unknown-id');
    assert.equal(s.hooks.receipts.length, 1);
  }));

test('a hook failing with a plain Error or an SMTP ReplyError -> 503 temporarily-unavailable; the cause is not sent', () =>
  withServer(async (s) => {
    s.hooks.fail.notice = new Error('SQLITE_BUSY: secret internals');
    const a = await s.send(vector(A3));
    assert.equal(a.status, 503);
    assert.equal(a.json.twm_error, 'temporarily-unavailable');
    assert.equal(a.headers['retry-after'], '60');
    assert.equal(a.json.retry_after, 60);
    assert.doesNotMatch(a.body.toString(), /SQLITE|secret/);
    s.hooks.fail.notice = new ReplyError(550, '5.1.1', 'No such user bob');
    const b = await s.send(signedNotice());
    assert.equal(b.status, 503);
    assert.doesNotMatch(b.body.toString(), /bob/);
    assert.deepEqual(s.hooks.refused, [['notice', 'temporarily-unavailable'], ['notice', 'temporarily-unavailable']]);
  }));

// --- Routing -----------------------------------------------------------------------------------

test('other methods -> 405 with Allow: POST; unknown paths -> 404 problem; both no-store', () =>
  withServer(async (s) => {
    for (const [method, path] of [['GET', A3.path], ['PUT', A5.path], ['DELETE', A4.path], ['HEAD', A3.path], ['OPTIONS', A3.path]] as const) {
      const a = await s.raw(method, path, { host: A3.authority });
      assert.equal(a.status, 405, `${method} ${path}`);
      assert.equal(a.headers.allow, 'POST');
      assert.equal(a.headers['cache-control'], 'no-store');
    }
    const nf = await s.raw('POST', '/.well-known/twm/v1/other?secret=1', { host: A3.authority });
    assert.equal(nf.status, 404);
    assert.match(String(nf.headers['content-type']), /^application\/problem\+json/);
    assert.equal(nf.json.status, 404);
    assert.doesNotMatch(String(nf.json.detail), /secret/);
    assert.equal(nf.headers['cache-control'], 'no-store');
    assert.equal((await s.raw('GET', '/', {})).status, 404);
    assert.deepEqual(s.hooks.refused, []);
  }));

test('the notice result of a deferred recipient carries retry_after', () =>
  withServer(async (s) => {
    s.hooks.notice = async (n) => ({ id: n.id, results: n.to.map((rcpt) => ({ rcpt, status: 'deferred' as const, retryAfter: 30 })) });
    const a = await s.send(vector(A3));
    assert.deepEqual(a.json.results, [
      { rcpt: 'bob@b.example', status: 'deferred', retry_after: 30 },
      { rcpt: 'carol@b.example', status: 'deferred', retry_after: 30 },
    ]);
  }));

// --- The direct path (direct.ts) ---------------------------------------------------------------

test('the direct path answers every endpoint exactly as fastify does: statuses, headers, bodies, refusal counts', async () => {
  const exchange = async (direct: boolean) => {
    const answers: unknown[] = [];
    let counted: unknown;
    await withServer(
      async (s) => {
        const keep = (a: Answer) => {
          const { date: _date, ...headers } = a.headers;
          answers.push({ status: a.status, headers, body: a.body.toString() });
        };
        keep(await s.send(vector(A3)));
        keep(await s.send(vector(A3))); // replay
        keep(await s.send(signedNotice({ from: 'mallory@c.example' }))); // wrong-domain, before verification
        keep(await s.send(signedNotice({}, 'a.example', { authority: 'twm.c.example' }))); // bad-signature
        keep(await s.send({ ...vector(A3), headers: { ...vector(A3).headers, signature: undefined as unknown as string } })); // unsigned
        keep(await s.send({ ...vector(A3), body: Buffer.alloc(16_385, 0x20) })); // too-large, declared
        keep(await s.send({ ...vector(A3), body: Buffer.from('{"id": 1') })); // digest-mismatch
        keep(await s.send(signedNotice({ expires: '2020-01-01T00:00:00Z' }))); // expired, after verification
        s.hooks.fail.notice = new Error('internal');
        keep(await s.send(signedNotice())); // 503 with Retry-After
        s.hooks.fail.notice = undefined;
        s.clock.now = (A4.created + 2) * 1000;
        keep(await s.send(vector(A4))); // the message
        keep(await s.send(signedFetch(['dave@b.example']))); // not-listed
        keep(await s.send(signedFetch(['bob@b.example'], 'b.example', 'A'.repeat(22)))); // unknown-id
        s.clock.now = (A5.created + 2) * 1000;
        keep(await s.send(vector(A5))); // 204
        for (let i = 0; i < 3; i++) keep(await s.send(signedReceipt([{ rcpt: 'bob@b.example', status: 'delivered' }]))); // 204, then 429
        // The nonces of the requests signed here are random: compared as present, not by value.
        counted = { refused: s.hooks.refused, by: s.hooks.refusedBy, state: s.hooks.snapshot().replace(/ [A-Za-z0-9_-]{22,43}"/g, ' nonce"') };
      },
      { direct, clientRate: { perSecond: 0.001, burst: 14 } },
    );
    return { answers, counted };
  };
  const viaFastify = await exchange(false);
  const direct = await exchange(true);
  assert.equal(viaFastify.answers.length, 16);
  // Both 429s and a 204 among them: the rate limit applied on both paths alike.
  assert.deepEqual(
    viaFastify.answers.slice(-3).map((a) => (a as { status: number }).status),
    [204, 429, 429],
  );
  for (let i = 0; i < direct.answers.length; i++) assert.deepEqual(direct.answers[i], viaFastify.answers[i], `answer ${i}`);
  assert.deepEqual(direct.counted, viaFastify.counted);
});

test('a notice hook that takes the nonce (noticeWithNonce): step 12 is its; a refusal before it still remembers the nonce, so the replay is replay', () =>
  withServer(async (s) => {
    const taken: TwmNonce[] = [];
    const hooks = s.hooks as MapHooks & Pick<TwmServerHooks, 'noticeWithNonce'>;
    hooks.noticeWithNonce = async (notice, signer, digest, nonce) => {
      taken.push(nonce);
      // As the inbox does: the nonce with the notice (here: remembered, then the notice).
      if (!(await hooks.rememberNonce(nonce.keyid, nonce.nonce, nonce.until, nonce.created))) throw twmError('replay', 'seen');
      return hooks.notice(notice, signer, digest);
    };
    const a = await s.send(vector(A3));
    assert.equal(a.status, 200);
    assert.deepEqual(taken, [{ keyid: 's1._twoway.a.example', nonce: 'ZU4sh9eCDL6xtbVQ9DFmVA', until: new Date((1796119500 + 300) * 1000), created: new Date(A3.created * 1000) }]);
    assert.equal((await s.send(vector(A3))).json.twm_error, 'replay');
    // Refused by the endpoint's own checks (expired) before the hook: the nonce is remembered all the same.
    s.clock.now = EXPIRES.getTime();
    const late = signed({ signer: 'a.example', path: A3.path, host: A3.authority, contentType: A3.contentType, body: A3.body, created: EXPIRES.getTime() / 1000 });
    assert.equal((await s.send(late)).json.twm_error, 'expired');
    assert.equal((await s.send(late)).json.twm_error, 'replay');
    assert.equal(taken.length, 2);
    assert.deepEqual(s.hooks.refused, [['notice', 'replay'], ['notice', 'expired'], ['notice', 'replay']]);
  }));
