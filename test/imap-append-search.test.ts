/**
 * MULTIAPPEND (RFC 3502), TEXT search inside forwarded messages, and FETCH of
 * ENVELOPE / BODYSTRUCTURE answered from the listener's wire cache
 * (src/protocols/imap/wire-cache.ts), over a real TLS connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawImap, serverCa } from './helpers/raw-imap.ts';
import { rawMessage, startTestServer, type TestServer } from './helpers/server.ts';

/** Small enough that two messages of 40 KB together go over it, one does not. */
const LIMIT = 64 * 1024;

const FORWARD = Buffer.from(
  [
    'From: alice@example.test',
    'To: bob@example.test',
    'Subject: see below',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain',
    '',
    'Forwarding this.',
    '--b',
    'Content-Type: message/rfc822',
    '',
    'From: zebra-keeper@zoo.test',
    'Subject: about the giraffes',
    '',
    'Inner text only.',
    '--b--',
    '',
  ].join('\r\n'),
);

describe('IMAP MULTIAPPEND, TEXT in forwarded headers, the wire cache', () => {
  let t: TestServer;
  let ca: string;
  const conns: RawImap[] = [];
  const login = async () => {
    const r = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
    await r.cmd('l', 'LOGIN alice@example.test alice-password-1');
    conns.push(r);
    return r;
  };
  const count = async (r: RawImap, box: string) => Number(/MESSAGES (\d+)/.exec(await r.cmd('st', `STATUS ${box} (MESSAGES)`))![1]);

  before(async () => {
    t = await startTestServer({ edit: (toml) => toml.replace('message_size = 26214400', `message_size = ${LIMIT}`) });
    ca = serverCa(t);
    await t.server.services.accounts.add('alice@example.test', 'alice-password-1', 'open');
    await t.server.services.accounts.add('bob@example.test', 'bob-password-1', 'open');
  });
  after(async () => {
    for (const c of conns) c.close();
    await t.close();
  });

  it('advertises MULTIAPPEND and stores several messages in one APPEND, flags and dates each, with an APPENDUID set', async () => {
    const r = await login();
    assert.match(await r.cmd('c', 'CAPABILITY'), /\* CAPABILITY [^\r\n]*\bMULTIAPPEND\b/);
    assert.match(await r.cmd('cr', 'CREATE Multi'), /cr OK/);
    const [m1, m2, m3] = ['one', 'two', 'three'].map((s) => rawMessage('carol@sender.test', 'alice@example.test', `multi ${s}`));
    // A synchronizing literal, then LITERAL+ ones: the continuation comes for the first only.
    r.write(`a APPEND Multi (\\Seen) {${m1!.length}}\r\n`);
    await r.waitFor(/\+ [^\r\n]*\r\n$/);
    r.write(Buffer.concat([m1!, Buffer.from(` (\\Flagged $Work) "01-Feb-2024 10:00:00 +0000" {${m2!.length}+}\r\n`), m2!, Buffer.from(` {${m3!.length}+}\r\n`), m3!, Buffer.from('\r\n')]));
    const ok = await r.until('a');
    const m = /a OK \[APPENDUID (\d+) (\d+):(\d+)\]/.exec(ok);
    assert.ok(m, ok);
    assert.equal(Number(m[3]) - Number(m[2]), 2);
    assert.match(await r.cmd('s', 'SELECT Multi'), /\* 3 EXISTS/);
    const f = await r.cmd('f', 'FETCH 1:3 (FLAGS INTERNALDATE ENVELOPE)');
    assert.match(f, /\* 1 FETCH \(FLAGS \(\\Seen\)[^\r\n]*"multi one"/);
    assert.match(f, /\* 2 FETCH \(FLAGS \(\\Flagged \$Work\) INTERNALDATE "01-Feb-2024 10:00:00 \+0000"[^\r\n]*"multi two"/);
    assert.match(f, /\* 3 FETCH \(FLAGS \(\)[^\r\n]*"multi three"/);
    assert.match(await r.cmd('u', `UID SEARCH UID ${m[2]}:${m[3]}`), new RegExp(`\\* SEARCH ${m[2]} ${Number(m[2]) + 1} ${m[3]}\\r\\n`));
  });

  it('a MULTIAPPEND with one bad message stores none of them (RFC 3502 3)', async () => {
    const r = await login();
    const before = await count(r, 'INBOX');
    const good = rawMessage('carol@sender.test', 'alice@example.test', 'good one');
    const res = await r.cmd('b', Buffer.concat([Buffer.from(`APPEND INBOX {${good.length}+}\r\n`), good, Buffer.from(' {0+}\r\n\r\n')]));
    assert.match(res, /b NO \[CANNOT\] An empty message cannot be appended \(message 2\); nothing was appended/);
    const res2 = await r.cmd('d', Buffer.concat([Buffer.from(`APPEND INBOX {${good.length}+}\r\n`), good, Buffer.from(' "99-Foo-2024 10:00:00 +0000" {3+}\r\nabc\r\n')]));
    assert.match(res2, /d BAD \[CLIENTBUG\] Bad APPEND date-time/);
    assert.equal(await count(r, 'INBOX'), before);
    // And into a mailbox that does not exist: TRYCREATE, nothing stored anywhere.
    assert.match(await r.cmd('e', Buffer.concat([Buffer.from(`APPEND Nowhere {${good.length}+}\r\n`), good, Buffer.from(` {${good.length}+}\r\n`), good, Buffer.from('\r\n')])), /e NO \[TRYCREATE\]/);
    assert.equal(await count(r, 'INBOX'), before);
  });

  it('the literals of one MULTIAPPEND together stay under the APPEND limit ([TOOBIG]); each alone is fine', async () => {
    const r = await login();
    const before = await count(r, 'INBOX');
    const big = Buffer.concat([rawMessage('carol@sender.test', 'alice@example.test', 'big'), Buffer.alloc(40 * 1024, 'x')]);
    r.write(`a APPEND INBOX {${big.length}}\r\n`);
    await r.waitFor(/\+ [^\r\n]*\r\n$/);
    r.write(Buffer.concat([big, Buffer.from(` {${big.length}}\r\n`)]));
    assert.match(await r.until('a'), /a BAD \[TOOBIG\] The literals of one command are over the limit of 65536 octets together/);
    // The connection goes on: the second literal was never invited.
    assert.match(await r.cmd('b', Buffer.concat([Buffer.from(`APPEND INBOX {${big.length}+}\r\n`), big, Buffer.from('\r\n')])), /b OK \[APPENDUID/);
    assert.equal(await count(r, 'INBOX'), before + 1);
  });

  it('SEARCH TEXT matches the header of a forwarded message/rfc822 part; BODY and HEADER do not', async () => {
    const r = await login();
    assert.match(await r.cmd('cr', 'CREATE Fwd'), /cr OK/);
    assert.match(await r.cmd('a', Buffer.concat([Buffer.from(`APPEND Fwd {${FORWARD.length}+}\r\n`), FORWARD, Buffer.from('\r\n')])), /a OK/);
    const plain = rawMessage('carol@sender.test', 'alice@example.test', 'nothing forwarded');
    assert.match(await r.cmd('a2', Buffer.concat([Buffer.from(`APPEND Fwd {${plain.length}+}\r\n`), plain, Buffer.from('\r\n')])), /a2 OK/);
    await r.cmd('s', 'SELECT Fwd');
    assert.match(await r.cmd('t1', 'SEARCH TEXT zebra-keeper'), /\* SEARCH 1\r\n/);
    assert.match(await r.cmd('t2', 'SEARCH TEXT giraffes'), /\* SEARCH 1\r\n/);
    assert.match(await r.cmd('t3', 'SEARCH TEXT "inner text"'), /\* SEARCH 1\r\n/);
    assert.match(await r.cmd('t4', 'SEARCH BODY giraffes'), /\* SEARCH\r\n/);
    assert.match(await r.cmd('t5', 'SEARCH SUBJECT giraffes'), /\* SEARCH\r\n/);
    assert.match(await r.cmd('t6', 'SEARCH TEXT hippo'), /\* SEARCH\r\n/);
  });

  it('FETCH ENVELOPE BODYSTRUCTURE answers the same from the wire cache as the first time, in another session too, and mixes with BODY and sections', async () => {
    const r = await login();
    assert.match(await r.cmd('cr', 'CREATE Cache'), /cr OK/);
    for (let i = 0; i < 30; i++) {
      const m = i % 3 === 0 ? FORWARD : rawMessage(`s${i}@sender.test`, 'alice@example.test', `cached ${i}`);
      assert.match(await r.cmd(`a${i}`, Buffer.concat([Buffer.from(`APPEND Cache {${m.length}+}\r\n`), m, Buffer.from('\r\n')])), /OK/);
    }
    await r.cmd('s', 'EXAMINE Cache');
    const first = await r.cmd('f1', 'FETCH 1:* (ENVELOPE FLAGS BODYSTRUCTURE)');
    assert.equal(first.match(/^\* \d+ FETCH /gm)?.length, 30);
    assert.match(first, /\* 1 FETCH \(ENVELOPE \(NIL "see below" \(\(NIL NIL "alice" "example.test"\)\)[^\r\n]* BODYSTRUCTURE \(\("text" "plain"[^\r\n]*"message" "rfc822"[^\r\n]*"about the giraffes"/);
    const again = await r.cmd('f1', 'FETCH 1:* (ENVELOPE FLAGS BODYSTRUCTURE)');
    assert.equal(again, first);
    const other = await login();
    await other.cmd('s', 'EXAMINE Cache');
    assert.equal(await other.cmd('f1', 'FETCH 1:* (ENVELOPE FLAGS BODYSTRUCTURE)'), first);
    // BODY (no extension data) and a section next to cached items.
    const mixed = await other.cmd('f2', 'FETCH 1 (BODYSTRUCTURE BODY BODY.PEEK[2.HEADER])');
    assert.match(mixed, /BODYSTRUCTURE \(\("text" "plain" \("charset" "us-ascii"\) NIL NIL "7BIT" 16 0 NIL NIL NIL NIL\)/);
    assert.match(mixed, / BODY \(\("text" "plain" \("charset" "us-ascii"\) NIL NIL "7BIT" 16 0\)\("message"/);
    assert.match(mixed, /BODY\[2\.HEADER\] \{\d+\}\r\nFrom: zebra-keeper@zoo\.test\r\nSubject: about the giraffes\r\n\r\n\)/);
  });

  it('a large FETCH streams: every response arrives, in order, and the session answers the next command', async () => {
    const r = await login();
    assert.match(await r.cmd('cr', 'CREATE Big'), /cr OK/);
    const body = Buffer.concat([rawMessage('carol@sender.test', 'alice@example.test', 'bulk'), Buffer.alloc(30 * 1024, 'y')]);
    for (let i = 0; i < 80; i++) await r.cmd(`a${i}`, Buffer.concat([Buffer.from(`APPEND Big {${body.length}+}\r\n`), body, Buffer.from('\r\n')]));
    await r.cmd('s', 'EXAMINE Big');
    // About 2.5 MB of bodies: more than the socket buffers, so the server waits for drain between batches.
    const all = await r.cmd('f', 'FETCH 1:* (UID BODY.PEEK[])', 60_000);
    const seqs = [...all.matchAll(/^\* (\d+) FETCH \(UID \d+ BODY\[\] \{(\d+)\}/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.deepEqual(seqs.map(([s]) => s), Array.from({ length: 80 }, (_, i) => i + 1));
    assert.ok(seqs.every(([, n]) => n === body.length));
    assert.match(await r.cmd('n', 'NOOP'), /n OK/);
  });
});
