/**
 * Bad input on the IMAP listener: a seeded fuzz of the command parser
 * (mutated commands, 8-bit and NUL octets, unbalanced parentheses, huge
 * sequence sets, deep BODY[] sections, literals that lie about their size,
 * commands before login and in the wrong state), and a counted security
 * battery: nothing another user sends reaches alice's mailboxes.
 * Every refusal is a tagged NO or BAD with an RFC 5530 code; the server
 * keeps serving. FUZZ_SEED and FUZZ_ITERATIONS reproduce or widen a run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { RawImap, serverCa } from './helpers/raw-imap.ts';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText, type Rng } from './helpers/fuzz.ts';
import { SecurityTally } from './helpers/security-tally.ts';

const MARK = 'ALICE-SECRET-7f3a';
const TAGGED = /^(\S+) (OK|NO|BAD)( \[([A-Z-]+)[^\]]*\])?/;

const TEMPLATES = [
  'CAPABILITY',
  'NOOP',
  'SELECT INBOX',
  'EXAMINE "INBOX"',
  'SELECT INBOX (CONDSTORE)',
  'FETCH 1:* (FLAGS UID ENVELOPE)',
  'UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODYSTRUCTURE)',
  'FETCH 1 (BODY[1.2.3.MIME]<0.100>)',
  'FETCH 4294967295 (FLAGS)',
  'UID FETCH 4294967295:* (FLAGS)',
  'FETCH 1:* (BINARY[1] BINARY.SIZE[1])',
  'FETCH 1:* (FLAGS) (CHANGEDSINCE 1)',
  'SEARCH OR FROM a (NOT SUBJECT "b") UID 1:*',
  'SEARCH RETURN (MIN MAX COUNT ALL) CHARSET UTF-8 TEXT "x"',
  'UID SEARCH MODSEQ 1 SINCE 1-Jan-2020',
  'STORE 1:* +FLAGS.SILENT (\\Seen $Label)',
  'UID STORE 1:* (UNCHANGEDSINCE 1) -FLAGS (\\Seen)',
  'COPY 1:* Trash',
  'UID MOVE 1:* Junk',
  'EXPUNGE',
  'UID EXPUNGE 1:*',
  'LIST "" "*"',
  'LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN STATUS (MESSAGES SIZE))',
  'LSUB "" "%"',
  'STATUS INBOX (MESSAGES UIDNEXT SIZE HIGHESTMODSEQ)',
  'CREATE "Fuzz/Folder"',
  'RENAME "Fuzz/Folder" "Fuzz/Other"',
  'DELETE "Fuzz/Other"',
  'SUBSCRIBE INBOX',
  'ENABLE QRESYNC UTF8=ACCEPT',
  'NAMESPACE',
  'ID ("name" "fuzz")',
  'UNSELECT',
  'CLOSE',
  'CHECK',
  'APPEND INBOX (\\Seen) "01-Jan-2024 00:00:00 +0000" {12+}\r\nSubject: x\r\n',
];

interface Exchange {
  line: string;
  closed: boolean;
}

/** Sends one command and plays along with continuations until its tagged reply (or the connection closes). */
async function exchange(c: RawImap, tag: string, bytes: Buffer): Promise<Exchange> {
  c.write(bytes);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const text = await c.waitFor(new RegExp(`(^|\\r\\n)(${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (OK|NO|BAD)[^\\r\\n]*|\\+ [^\\r\\n]*)\\r\\n`), 1500);
      const tagged = new RegExp(`(^|\\r\\n)(${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (OK|NO|BAD)[^\\r\\n]*)\\r\\n`).exec(text);
      if (tagged) {
        await c.until(tag, 100);
        return { line: tagged[2]!, closed: false };
      }
      // A continuation: end IDLE, cancel AUTHENTICATE, feed a synchronizing literal.
      await c.until('\\+ [^\\r\\n]*', 100).catch(() => undefined);
      c.write('DONE\r\n*\r\n\r\n');
    } catch (err) {
      if (c.closed) return { line: '', closed: true };
      if (Date.now() > deadline) throw err;
      c.write('\r\n');
    }
  }
}

function mutate(rng: Rng, template: string): Buffer {
  // Literals stay honest here (the lying ones have their own test): mutate the line, then add the literal.
  const brace = template.indexOf('{');
  if (brace >= 0) {
    const head = rng.bool(0.7) ? mutateText(rng, template.slice(0, brace), 3).replace(/[\r\n{}]/g, ' ') : template.slice(0, brace);
    const body = rng.bool(0.5) ? Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), rng.bytes(rng.range(0, 64))]) : Buffer.from('Subject: x\r\n');
    return Buffer.concat([Buffer.from(`${head}{${body.length}+}\r\n`, 'latin1'), body]);
  }
  let text = rng.bool(0.7) ? mutateText(rng, template, 3) : template;
  if (rng.bool(0.15)) text += ' ' + '('.repeat(rng.range(1, 80));
  if (rng.bool(0.1)) text += ')'.repeat(rng.range(1, 5));
  if (rng.bool(0.1)) text = text.replace(/\d+/, String(rng.pick(['0', '4294967295', '4294967296', '99999999999999999999', '*'])));
  if (rng.bool(0.1)) text = text.replace('FETCH 1', `FETCH 1 (BODY[${Array.from({ length: rng.range(1, 60) }, () => rng.range(1, 9)).join('.')}])`);
  let bytes = Buffer.from(text, 'latin1');
  if (rng.bool(0.15)) {
    const noise = rng.bytes(rng.range(1, 12)).map((b) => (b === 0x0a || b === 0x0d ? 0x00 : b));
    const at = rng.int(bytes.length + 1);
    bytes = Buffer.concat([bytes.subarray(0, at), noise, bytes.subarray(at)]);
  }
  // Line breaks inside would make several commands; a `{n}` at the end would start a literal.
  bytes = Buffer.from(bytes.toString('latin1').replace(/[\r\n]/g, ' ').replace(/\}$/, '} '), 'latin1');
  return bytes;
}

describe('IMAP bad input', () => {
  let t: TestServer;
  let ca: string;
  let aliceId: number;
  const tally = new SecurityTally('imap');

  const connect = () => RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
  const login = async (user: string) => {
    const c = await connect();
    const r = await c.cmd('l', `LOGIN ${user} ${user.split('@')[0]}-password-1`);
    assert.match(r, /l OK/);
    return c;
  };
  /** Alice's mail as the store has it: names, counts, flags and the bodies' marks. */
  const aliceState = async () => {
    const s = t.server.store;
    const boxes = await s.imap.mailboxes(aliceId);
    const parts: string[] = [];
    for (const b of boxes) {
      const msgs = await s.imap.messages(b.id);
      parts.push(`${b.name}:${b.subscribed}:${msgs.map((m) => `${m.uid}/${m.flags.join(',')}`).join(';')}`);
    }
    return parts.sort().join('\n');
  };

  before(async () => {
    t = await startTestServer();
    ca = serverCa(t);
    aliceId = (await t.server.services.accounts.add('alice@example.test', 'alice-password-1', 'open')).id;
    await t.server.services.accounts.add('bob@example.test', 'bob-password-1', 'open');
    const a = await login('alice@example.test');
    await a.cmd('c', 'CREATE Secret');
    for (const box of ['INBOX', 'Secret']) {
      const msg = `From: alice@example.test\r\nSubject: ${MARK}\r\n\r\n${MARK} in ${box}\r\n`;
      assert.match(await a.cmd('a', Buffer.from(`APPEND ${box} {${msg.length}+}\r\n${msg}\r\n`)), /a OK/);
    }
    a.close();
    const b = await login('bob@example.test');
    const msg = 'From: bob@example.test\r\nSubject: bob\r\n\r\nbob\r\n';
    assert.match(await b.cmd('a', Buffer.from(`APPEND INBOX {${msg.length}+}\r\n${msg}\r\n`)), /a OK/);
    b.close();
  });
  after(() => t?.close());

  it('seeded fuzz of the command parser: every reply is tagged OK/NO/BAD, refusals carry a code, nothing hangs or crashes', async () => {
    const seed = fuzzSeed();
    const n = fuzzIterations(400);
    let c = await login('bob@example.test');
    const counts = { OK: 0, NO: 0, BAD: 0, closed: 0 };
    await forEachCase(seed, n, async (rng, i) => {
      if (c.closed) c = await login('bob@example.test');
      const template = rng.pick(TEMPLATES);
      const tag = `f${i}`;
      const bytes = Buffer.concat([Buffer.from(`${tag} `), mutate(rng, template), Buffer.from('\r\n')]);
      const r = await exchange(c, tag, bytes).catch((err: Error) => {
        err.message += `\nsent: ${JSON.stringify(bytes.toString('latin1').slice(0, 300))}`;
        throw err;
      });
      if (r.closed) {
        counts.closed++;
        return;
      }
      const m = TAGGED.exec(r.line);
      assert.ok(m, `untagged or malformed reply to ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}: ${r.line}`);
      counts[m[2] as 'OK']++;
      if (m[2] !== 'OK') assert.ok(m[4], `refusal without an RFC 5530 code: ${r.line}`);
      assert.notEqual(m[4], 'SERVERBUG', `internal error for ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}: ${r.line}`);
    });
    assert.ok(counts.BAD > 0 && counts.OK > 0, JSON.stringify(counts));
    // Still serving: a fresh session works.
    const fresh = await login('bob@example.test');
    assert.match(await fresh.cmd('z', 'SELECT INBOX'), /z OK/);
    fresh.close();
    c.close();
  });

  it('literals that lie about their size, and oversized ones, are refused or consumed; the session goes on', async () => {
    const c = await login('bob@example.test');
    // Claims 40 octets, sends 5 and a new command: the server takes the next octets as the literal, as the protocol says.
    c.write('a APPEND INBOX {40+}\r\nshort\r\nb NOOP\r\n');
    c.write(`${'x'.repeat(40 - 'short\r\nb NOOP\r\n'.length)}\r\n`);
    assert.match(await c.until('a'), /a (OK|NO|BAD) \[[A-Z-]+/);
    assert.match(await c.cmd('d', 'FETCH 1 (BODY[]) {99999999}'), /d BAD \[TOOBIG\]/);
    assert.match(await c.cmd('e', `SELECT {${2 * 1024 * 1024}}`), /e BAD \[TOOBIG\]/);
    assert.match(await c.cmd('f', 'NOOP'), /f OK/);
    // A client that promises a literal and vanishes costs nothing lasting.
    const quitter = await login('bob@example.test');
    quitter.write('q APPEND INBOX {1000+}\r\nonly a little');
    quitter.close();
    assert.match(await c.cmd('g', 'SELECT INBOX'), /g OK/);
    assert.match(await c.cmd('h', 'FETCH 1:* (UID)'), /h OK/);
    // A non-synchronizing literal over the limit is on its way already: refused, and the connection ends.
    const big = await c.cmd('i', 'APPEND INBOX {4294967295+}');
    assert.match(big, /i BAD \[TOOBIG\]/);
    await c.waitFor(/\* BYE \[TOOBIG\]/);
    c.close();
  });

  it('huge sequence sets on an empty mailbox, 4294967295 and beyond, deep sections', async () => {
    const c = await login('bob@example.test');
    await c.cmd('c', 'CREATE Empty');
    await c.cmd('s', 'SELECT Empty');
    assert.match(await c.cmd('a', 'UID FETCH 1:* (FLAGS)'), /^a OK/);
    assert.match(await c.cmd('b', 'FETCH 1:* (FLAGS)'), /b BAD \[CLIENTBUG\]/);
    assert.match(await c.cmd('d', 'UID FETCH 4294967295 (FLAGS)'), /^d OK/);
    assert.match(await c.cmd('e', 'UID FETCH 4294967296 (FLAGS)'), /e BAD \[CLIENTBUG\]/);
    assert.match(await c.cmd('f', 'UID STORE 1:4294967295 +FLAGS (\\Seen)'), /^f OK/);
    assert.match(await c.cmd('g', 'SEARCH 1:*'), /g OK/);
    await c.cmd('s2', 'SELECT INBOX');
    assert.match(await c.cmd('h', `FETCH 1 (BODY[${Array(200).fill(1).join('.')}])`), /h BAD \[CLIENTBUG\]/);
    assert.match(await c.cmd('i', `FETCH 1 (BODY[${Array(30).fill(1).join('.')}])`), /i OK/);
    assert.match(await c.cmd('j', `SEARCH ${'NOT '.repeat(500)}ALL`), /j BAD \[CLIENTBUG\]/);
    assert.match(await c.cmd('k', `SEARCH ${'('.repeat(100)}ALL${')'.repeat(100)}`), /k BAD \[CLIENTBUG\]/);
    c.close();
  });

  it('commands before login and in the wrong state are refused with a code', async () => {
    const c = await connect();
    for (const cmd of ['SELECT INBOX', 'LIST "" "*"', 'STATUS INBOX (MESSAGES)', 'APPEND INBOX {1+}\r\nx', 'CREATE x', 'FETCH 1 (FLAGS)', 'UID FETCH 1 (FLAGS)', 'ENABLE QRESYNC', 'IDLE', 'COMPRESS DEFLATE', 'EXPUNGE', 'NAMESPACE']) {
      const r = await c.cmd('p', cmd);
      tally.expectRefused(`before login: ${cmd.split('\r')[0]}`, /p BAD \[CLIENTBUG\]/.test(r) && !r.includes(MARK), r);
    }
    assert.match(await c.cmd('l', 'LOGIN bob@example.test bob-password-1'), /l OK/);
    for (const cmd of ['FETCH 1 (FLAGS)', 'STORE 1 +FLAGS (\\Seen)', 'EXPUNGE', 'SEARCH ALL', 'COPY 1 INBOX', 'MOVE 1 INBOX', 'CLOSE', 'UNSELECT']) {
      assert.match(await c.cmd('w', cmd), /w BAD \[CLIENTBUG\]/, cmd);
    }
    assert.match(await c.cmd('x', 'LOGIN bob@example.test bob-password-1'), /x BAD \[CLIENTBUG\]/);
    assert.match(await c.cmd('y', 'STARTTLS'), /y BAD \[CLIENTBUG\]/);
    c.close();
  });

  it("security battery: nothing bob sends reaches alice's mail", async () => {
    const before = await aliceState();
    const b = await login('bob@example.test');
    const names = ['Secret', '"Secret"', '../alice@example.test/INBOX', 'alice@example.test/Secret', '~alice/Secret', '#shared/alice/INBOX', '/Secret', 'INBOX/../Secret', '"alice@example.test"', 'user.alice.Secret', '&AC4ALg-/Secret'];
    for (const name of names) {
      for (const cmd of [`SELECT ${name}`, `EXAMINE ${name}`, `STATUS ${name} (MESSAGES UIDNEXT)`, `DELETE ${name}`, `RENAME ${name} Mine`, `SUBSCRIBE ${name}`]) {
        const r = await b.cmd('s', cmd);
        tally.expectRefused(`bob: ${cmd}`, /s NO \[(NONEXISTENT|CANNOT)\]/.test(r) && !r.includes(MARK), r);
      }
      await b.cmd('sel', 'SELECT INBOX');
      for (const cmd of [`COPY 1:* ${name}`, `MOVE 1:* ${name}`]) {
        const r = await b.cmd('m', cmd);
        tally.expectRefused(`bob: ${cmd}`, /m NO \[(TRYCREATE|CANNOT)\]/.test(r), r);
      }
      const msg = 'Subject: planted\r\n\r\nplanted\r\n';
      const r = await b.cmd('a', Buffer.from(`APPEND ${name} {${msg.length}+}\r\n${msg}\r\n`));
      tally.expectRefused(`bob: APPEND ${name}`, /a NO \[(TRYCREATE|CANNOT)\]/.test(r), r);
    }
    await b.cmd('sel', 'SELECT INBOX');
    for (const cmd of ['UID FETCH 1:4294967295 (BODY.PEEK[] ENVELOPE)', 'FETCH 1:* (RFC822)', `UID SEARCH TEXT "${MARK}"`, `SEARCH SUBJECT "${MARK}"`, 'UID FETCH 1:* (EMAILID)', 'LIST "" "*"', 'LIST "../" "*"', 'LIST "" "%/%"', 'LSUB "" "*"', 'LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))']) {
      const r = await b.cmd('f', cmd);
      tally.expectRefused(`bob reads: ${cmd}`, /f OK/.test(r) && !r.includes(MARK) && !r.includes('Secret'), r);
    }
    // Alice's EMAILIDs do not open her messages for bob.
    const r = await b.cmd('e', 'UID SEARCH EMAILID M1');
    tally.expectRefused('bob: SEARCH EMAILID of alice', /e OK/.test(r) && !/ESEARCH[^\r]*ALL|\* SEARCH \d/.test(r), r);
    const plain = Buffer.from('alice@example.test\0bob@example.test\0bob-password-1').toString('base64');
    const other = await connect();
    const auth = await other.cmd('x', `AUTHENTICATE PLAIN ${plain}`);
    tally.expectRefused('authorization identity of another user', /x NO \[AUTHORIZATIONFAILED\]/.test(auth), auth);
    const wrong = await other.cmd('y', 'LOGIN alice@example.test bob-password-1');
    tally.expectRefused("bob's password for alice", /y NO \[AUTHENTICATIONFAILED\]/.test(wrong), wrong);
    other.close();
    b.close();
    tally.expectRefused("alice's mail unchanged", (await aliceState()) === before, `${before}\n---\n${await aliceState()}`);
  });

  it('reports the security battery', (ctx) => {
    tally.report((line) => ctx.diagnostic(line));
  });

  // Last: it locks 127.0.0.1 out for this server.
  it('password guessing over IMAP meets the shared per-client throttle (the one of SMTP and the API)', async () => {
    const c = await connect();
    // Five failures within the window lock the client out (the battery above may have spent one).
    const replies: string[] = [];
    while (replies.length < 6 && replies.at(-1) !== 'UNAVAILABLE') {
      replies.push(/NO \[([A-Z]+)\]/.exec(await c.cmd(`g${replies.length}`, 'LOGIN alice@example.test wrong-guess', 20_000))?.[1] ?? 'none');
    }
    assert.ok(replies.length >= 5 && replies.length <= 6, replies.join(' '));
    assert.deepEqual(new Set(replies.slice(0, -1)), new Set(['AUTHENTICATIONFAILED']));
    assert.equal(replies.at(-1), 'UNAVAILABLE');
    assert.match(await c.cmd('r', 'LOGIN alice@example.test alice-password-1'), /r NO \[UNAVAILABLE\]/);
    await assert.rejects(t.server.services.accounts.authenticate('alice@example.test', 'alice-password-1', '127.0.0.1'), { name: 'DomainError', kind: 'throttled' });
    c.close();
  });
});
