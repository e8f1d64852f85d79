/**
 * Differential fuzzing of the From: field (issue 17, item 2): generated
 * From: fields (groups, comments, encoded words, control bytes, quoted
 * local parts, several addresses and fields, obsolete syntax, IDN, trailing
 * dots, folding, random mutations) go through the production MX path
 * (createInboundHooks: mailauth over the embedded DNS, then the one ingest
 * and the policy, on a real SQLite store) without the sockets, so many
 * cases fit in a few seconds.
 *
 * The sender is the attacker: 127.0.0.2, MAIL FROM eve@evil.test (SPF
 * passes there), sometimes DKIM-signing as evil.test. The recipients allow
 * friend@friends.test, the domain friends.test, or expect a confirmation
 * from friends.test. Properties, for every case:
 * - the identity whose alignment was checked (AuthOutcome.identity) is null
 *   or exactly the policy's From: address (MessageFacts.from);
 * - nothing is "allowed" (INBOX as a known sender) and no expected-sender
 *   use is granted: evil.test is not an allowed sender, so any such verdict
 *   is a forgery that got through.
 * A control case first proves the harness can see an allowed verdict.
 *
 * Seeded: FUZZ_SEED repeats a run; FUZZ_ITERATIONS makes it longer (`npm run soak`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createResolver } from '../src/dns/resolver.ts';
import { createIngest, type RecipientOutcome } from '../src/ingest/ingest.ts';
import { createInboundHooks } from '../src/endpoints/mx/hooks.ts';
import { createAuthenticator, type AuthOutcome } from '../src/mail/authenticate.ts';
import { messageFacts, parseHeaders } from '../src/mail/headers.ts';
import type { SmtpSessionInfo } from '../src/protocols/smtp/server.ts';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText, type Rng } from './helpers/fuzz.ts';
import { senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const ADDRESSES = [
  'friend@friends.test',
  'FRIEND@Friends.Test',
  'friend@friends.test.',
  'friend@mail.friends.test',
  '"friend"@friends.test',
  '"fr iend"@friends.test',
  '"eve@evil.test"@friends.test',
  'friend@bücher.test',
  'friend@xn--bcher-kva.test',
  'eve@evil.test',
  'Eve@EVIL.test.',
  'eve@mail.evil.test',
  '"eve"@evil.test',
  'eve+friend@evil.test',
  'friend@friends.test@evil.test',
  'friend%friends.test@evil.test',
  'friend@[127.0.0.1]',
  'friend＠friends.test',
  '=?utf-8?q?friend=40friends.test?=@evil.test',
  'ｆriend@friends.test',
];
const NAMES = [
  'Friend',
  '"Friend, The"',
  '"friend@friends.test"',
  '=?utf-8?q?friend=40friends.test?=',
  '=?utf-8?b?ZnJpZW5kQGZyaWVuZHMudGVzdA==?=',
  '=?iso-8859-1?q?J=F6rg?=',
  'J. R. "Bob" Dobbs',
  '(comment) Friend',
  'Frïend',
];
const COMMENTS = ['(friend@friends.test)', '((nested) comment)', '(eve@evil.test', '(\\) escaped)', '()'];
const CONTROLS = ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x1f', '\x7f', '\u0085', '\u009f', '\r', '\n', '\t'];

function mailbox(rng: Rng): string {
  let address = rng.pick(ADDRESSES);
  // A control byte inside the address itself: some parsers drop the address, others the byte.
  if (rng.bool(0.15)) {
    const at = rng.int(address.length + 1);
    address = address.slice(0, at) + rng.pick(CONTROLS.filter((c) => c !== '\r' && c !== '\n')) + address.slice(at);
  }
  switch (rng.int(7)) {
    case 0:
      return address;
    case 1:
      return `<${address}>`;
    case 2:
      return `${rng.pick(NAMES)} <${address}>`;
    case 3:
      return `${address} ${rng.pick(COMMENTS)}`;
    case 4: // obsolete route
      return `<@evil.test,@friends.test:${address}>`;
    case 5: // obsolete CFWS inside the addr-spec
      return address.replace('@', rng.pick([' @ ', '(c)@', '@ ', ' @']));
    default:
      return `${rng.pick(COMMENTS)} ${address}`;
  }
}

const FRIENDS = ADDRESSES.slice(0, 9);
const EVILS = ADDRESSES.slice(9, 15);

/** A decoy (evil.test, which the attacker authenticates) and a payload (the friend) combined so that parsers may pick differently. */
function attackShaped(rng: Rng): string {
  let decoy = rng.pick(EVILS);
  if (rng.bool(0.6)) {
    const at = rng.int(decoy.indexOf('@') + 1);
    decoy = decoy.slice(0, at) + rng.pick(CONTROLS.filter((c) => c !== '\r' && c !== '\n')) + decoy.slice(at);
  }
  const payload = rng.bool(0.7) ? rng.pick(FRIENDS) : mailbox(rng);
  const shapes = [
    `${decoy}, g: ${payload};`,
    `g: ${payload};, ${decoy}`,
    `${decoy}, g: ${payload};, h:;`,
    `${decoy} ${payload}`,
    `${payload} (${decoy})`,
    `${decoy}, ${payload}`,
    `${payload}, ${decoy}`,
    `"${payload}" <${decoy}>`,
    `<${decoy}> ${payload}`,
    `${decoy}\r\nFrom: g: ${payload};`,
    `${decoy}\r\nFrom: ${payload}`,
  ];
  return rng.pick(shapes);
}

function fromValue(rng: Rng): string {
  if (rng.bool(0.4)) return attackShaped(rng);
  const parts: string[] = [];
  const n = rng.pick([1, 1, 1, 1, 1, 2, 3]);
  for (let i = 0; i < n; i++) {
    if (rng.bool(n > 1 ? 0.35 : 0.1)) {
      const members = Array.from({ length: rng.int(3) + (rng.bool(0.7) ? 1 : 0) }, () => mailbox(rng)).join(', ');
      parts.push(`${rng.pick(['g', 'undisclosed-recipients', '"a group"'])}: ${members};`);
    } else {
      parts.push(mailbox(rng));
    }
  }
  let value = parts.join(rng.pick([', ', ',', ' ', '; ', ' , ']));
  if (rng.bool(0.15)) {
    const at = rng.int(value.length + 1);
    value = value.slice(0, at) + rng.pick(CONTROLS) + value.slice(at);
  }
  if (rng.bool(0.15)) value = value.replace(/ /g, () => (rng.bool(0.5) ? '\r\n ' : ' ')); // folding
  if (rng.bool(0.1)) value = mutateText(rng, value, 2);
  return value;
}

function messageFor(rng: Rng, i: number): Buffer {
  const fields: string[] = [];
  const count = rng.pick([1, 1, 1, 1, 1, 1, 1, 2, 0]);
  for (let k = 0; k < count; k++) fields.push(`${rng.pick(['From', 'from', 'FROM', 'From '])}: ${fromValue(rng)}`);
  const extra = rng.bool(0.3) ? 'TWM-Purpose: ownership-confirmation\r\n' : '';
  const head = [...fields, 'To: screen@example.test', `Subject: case ${i}`, `Message-ID: <case-${i}@fuzz.test>`, 'Date: Fri, 04 Dec 2026 12:00:00 +0000']
    .sort(() => (rng.bool(0.2) ? -1 : 0))
    .join('\r\n');
  return Buffer.from(`${head}\r\n${extra}\r\nBody of case ${i}.\r\n`, 'utf8');
}

describe('fuzz: From: identity, policy vs authentication', () => {
  const friends = senderDomain('friends.test');
  const evil = senderDomain('evil.test', 'ev');
  evil.records[0] = { name: 'evil.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' };
  let t: TestServer;
  let hooks: ReturnType<typeof createInboundHooks>;
  let lastAuth: AuthOutcome | null = null;
  let outcomes: RecipientOutcome[] = [];

  before(async () => {
    t = await startTestServer({
      records: [...friends.records, ...evil.records, { name: 'xn--bcher-kva.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }],
    });
    const { accounts, contacts } = t.server.services;
    const screen = await accounts.add('screen@example.test', 'password-1', 'screen');
    await contacts.allow(screen.id, 'friend@friends.test');
    await contacts.allow(screen.id, 'friend@bücher.test');
    const domain = await accounts.add('domain@example.test', 'password-1', 'screen');
    await contacts.allow(domain.id, '@friends.test');
    const expect = await accounts.add('expect@example.test', 'password-1', 'screen');
    await contacts.expect(expect.id, 'friends.test', { forMs: 3_600_000, uses: 9999 });
    const authenticate = createAuthenticator(createResolver({ servers: [t.dns.address] }));
    hooks = createInboundHooks({
      hostname: 'mx.example.test',
      domains: ['example.test'],
      ingest: createIngest({ store: t.server.store, maxReceivedHeaders: 30 }),
      authenticate: async (input) => (lastAuth = await authenticate(input)),
      onDelivered: (o) => (outcomes = o),
    });
  });
  after(() => t.close());

  const session = (ip: string): SmtpSessionInfo => ({ id: 'fuzz', remoteAddress: ip, clientHostname: ip, helo: 'client.test', secure: false, tlsProtocol: null, recipients: [], user: null });
  const RCPTS = ['screen@example.test', 'domain@example.test', 'expect@example.test'];

  async function deliver(raw: Buffer, ip: string, mailFrom: string): Promise<{ outcomes: RecipientOutcome[]; auth: AuthOutcome; error: unknown }> {
    outcomes = [];
    lastAuth = null;
    let error: unknown = null;
    try {
      await hooks.onMessage({ from: mailFrom, to: RCPTS, resolved: [] }, raw, session(ip));
    } catch (err) {
      error = err;
    }
    return { outcomes, auth: lastAuth!, error };
  }

  const allowed = (o: RecipientOutcome) => o.verdict.kind === 'inbox' && (!o.verdict.firstContact || o.verdict.reasons.some((r) => r.code === 'expected-sender'));

  it('the policy\'s address and the authenticated address agree, or the message is not allowed', async (tc) => {
    // Control: the real friend, from friends.test's own address, is allowed for all three.
    const control = await deliver(await friends.sign(Buffer.from('From: Friend <friend@friends.test>\r\nTo: screen@example.test\r\nSubject: control\r\nTWM-Purpose: ownership-confirmation\r\n\r\nHi.\r\n')), '127.0.0.1', 'friend@friends.test');
    assert.equal(control.error, null);
    assert.deepEqual(control.outcomes.map(allowed), [true, true, true], JSON.stringify(control.outcomes.map((o) => o.verdict)));

    const seed = fuzzSeed();
    const count = fuzzIterations(200);
    tc.diagnostic(`seed ${seed} (FUZZ_SEED=${seed}), ${count} cases`);
    const began = Date.now();
    const tally = { identity: 0, noIdentity: 0, aligned: 0, parsersDisagree: 0, refused: 0 };
    await forEachCase(seed, count, async (rng, i) => {
      let raw = messageFor(rng, i);
      if (rng.bool(0.2)) raw = await evil.sign(raw);
      const { outcomes: out, auth, error } = await deliver(raw, '127.0.0.2', 'eve@evil.test');
      const facts = messageFacts(parseHeaders(raw));
      const where = `case ${i} (FUZZ_SEED=${seed}): From: ${JSON.stringify(raw.toString('utf8').split('\r\n\r\n')[0])}`;
      if (error !== null) {
        // The one refusal here is a header that is no message at all (no recipients stored nothing).
        tally.refused++;
        assert.ok(error instanceof Error && /^5\d\d /.test(error.message), `${where}: ${String(error)}`);
        return;
      }
      assert.ok(auth, `${where}: not authenticated at all`);
      if (facts.from === null) tally.noIdentity++;
      else tally.identity++;
      if (auth.fromProblem !== null) tally.parsersDisagree++;
      if (auth.alignedDomain !== null) tally.aligned++;
      assert.ok(auth.identity === null || auth.identity === facts.from, `${where}: aligned ${JSON.stringify(auth.identity)}, policy ${JSON.stringify(facts.from)}`);
      for (const o of out) {
        assert.ok(!allowed(o), `${where}: ${o.user.address} got ${JSON.stringify(o.verdict)} (policy ${JSON.stringify(facts.from)}, aligned ${JSON.stringify(auth.identity)} via ${JSON.stringify(auth.alignedDomain)})`);
      }
    });
    tc.diagnostic(`result: ${JSON.stringify(tally)} in ${Date.now() - began} ms`);
  });
});
