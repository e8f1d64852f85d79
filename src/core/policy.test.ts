import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classifySender,
  decide,
  STRICT_REFUSAL,
  type MatchAction,
  type PolicyInput,
  type PolicyMatches,
  type ReasonCode,
  type Verdict,
} from './policy.ts';
import { MODES, type Mode } from './types.ts';

const CHANNELS = ['smtp', 'twm'] as const;

/** Some facts of a PolicyInput; unnamed matches default to null. */
type Facts = Omit<Partial<PolicyInput>, 'matches'> & { matches?: Partial<PolicyMatches> };

function input(overrides: Facts = {}): PolicyInput {
  const { matches, ...rest } = overrides;
  return {
    mode: 'open',
    channel: 'smtp',
    origin: 'remote',
    from: 'alice@example.org',
    authenticated: true,
    listAuthenticated: false,
    autoSubmitted: false,
    ownershipConfirmation: false,
    expected: 'none',
    spam: null,
    ...rest,
    matches: { address: null, domain: null, list: null, ...matches },
  };
}

/** What a row expects: the verdict kind, plus the first-contact mark for inbox. */
type Outcome = 'inbox' | 'inbox-first-contact' | 'screen' | 'refuse' | 'drop' | 'junk' | 'screen-likely-spam' | 'refuse-spam' | 'greylist';

function assertOutcome(verdict: Verdict, expected: Outcome, reason: ReasonCode, label: string): void {
  const kind =
    expected === 'inbox-first-contact' ? 'inbox'
    : expected === 'screen-likely-spam' ? 'screen'
    : expected === 'refuse-spam' || expected === 'greylist' ? 'refuse'
    : expected;
  assert.equal(verdict.kind, kind, `${label}: kind`);
  if (verdict.kind === 'inbox') {
    assert.equal(verdict.firstContact, expected === 'inbox-first-contact', `${label}: firstContact`);
  }
  if (verdict.kind === 'screen') assert.equal(verdict.likelySpam, expected === 'screen-likely-spam', `${label}: likelySpam`);
  if (verdict.kind === 'refuse' && expected === 'refuse-spam') {
    assert.deepEqual(verdict.reply, { code: 550, enhanced: '5.7.1', text: 'Message refused as spam' }, `${label}: reply`);
  } else if (verdict.kind === 'refuse' && expected === 'greylist') {
    assert.equal(verdict.reply.code, 451, `${label}: reply code`);
    assert.equal(verdict.reply.enhanced, '4.7.1', `${label}: enhanced code`);
  } else if (verdict.kind === 'refuse') {
    assert.equal(verdict.reply.code, 550, `${label}: reply code`);
    assert.equal(verdict.reply.enhanced, '5.7.1', `${label}: enhanced code`);
    assert.match(verdict.reply.text, /contacts/, `${label}: reply text explains how to get in`);
  }
  const codes = verdict.reasons.map((r) => r.code);
  assert.ok(codes.includes(reason), `${label}: reasons ${JSON.stringify(codes)} should include ${reason}`);
  for (const r of verdict.reasons) assert.ok(r.detail.length > 0, `${label}: reason ${r.code} has a detail`);
}

/**
 * Sender classes: the facts that put a sender in a class, the reason code
 * the verdict must carry, and the expected outcome for every (mode, channel).
 */
interface SenderCase {
  facts: Facts;
  reason: ReasonCode;
  expect: Record<Mode, Record<(typeof CHANNELS)[number], Outcome>>;
}

const ALLOWED = {
  open: { smtp: 'inbox', twm: 'inbox' },
  screen: { smtp: 'inbox', twm: 'inbox' },
  strict: { smtp: 'inbox', twm: 'inbox' },
} as const;
const BLOCKED = {
  open: { smtp: 'drop', twm: 'drop' },
  screen: { smtp: 'drop', twm: 'drop' },
  strict: { smtp: 'refuse', twm: 'drop' },
} as const;
const STRANGER = {
  open: { smtp: 'inbox-first-contact', twm: 'inbox-first-contact' },
  screen: { smtp: 'screen', twm: 'screen' },
  strict: { smtp: 'refuse', twm: 'screen' },
} as const;

const EXPECTED = {
  open: { smtp: 'inbox-first-contact', twm: 'inbox-first-contact' },
  screen: { smtp: 'inbox-first-contact', twm: 'inbox-first-contact' },
  strict: { smtp: 'inbox-first-contact', twm: 'inbox-first-contact' },
} as const;

const SENDERS: Record<string, SenderCase> = {
  'expected sender, marked, authenticated': {
    facts: { ownershipConfirmation: true, expected: 'marker-required' },
    reason: 'expected-sender',
    expect: EXPECTED,
  },
  'expected sender, marked, auto-submitted': {
    facts: { ownershipConfirmation: true, expected: 'marker-required', autoSubmitted: true },
    reason: 'expected-sender',
    expect: EXPECTED,
  },
  'expected sender, but blocked address': {
    facts: { ownershipConfirmation: true, expected: 'marker-required', matches: { address: 'block' } },
    reason: 'blocked-address',
    expect: BLOCKED,
  },
  'expected sender, but blocked domain': {
    facts: { ownershipConfirmation: true, expected: 'marker-required', matches: { domain: 'block' } },
    reason: 'blocked-domain',
    expect: BLOCKED,
  },
  'marker without a matching entry': { facts: { ownershipConfirmation: true, expected: 'none' }, reason: 'stranger', expect: STRANGER },
  'entry requiring the marker, message without it': { facts: { ownershipConfirmation: false, expected: 'marker-required' }, reason: 'stranger', expect: STRANGER },
  'entry not requiring the marker, message without it': {
    facts: { ownershipConfirmation: false, expected: 'marker-optional' },
    reason: 'expected-sender',
    expect: EXPECTED,
  },
  'entry not requiring the marker, marked message': {
    facts: { ownershipConfirmation: true, expected: 'marker-optional' },
    reason: 'expected-sender',
    expect: EXPECTED,
  },
  'entry not requiring the marker, unauthenticated': {
    facts: { expected: 'marker-optional', authenticated: false },
    reason: 'stranger',
    expect: STRANGER,
  },
  'entry not requiring the marker, but blocked domain': {
    facts: { expected: 'marker-optional', matches: { domain: 'block' } },
    reason: 'blocked-domain',
    expect: BLOCKED,
  },
  'expected sender, marked, unauthenticated': {
    facts: { ownershipConfirmation: true, expected: 'marker-required', authenticated: false },
    reason: 'stranger',
    expect: STRANGER,
  },
  'allowed address with marker and entry': {
    facts: { ownershipConfirmation: true, expected: 'marker-required', matches: { address: 'allow' } },
    reason: 'allowed-address',
    expect: ALLOWED,
  },
  'allowed address': { facts: { matches: { address: 'allow' } }, reason: 'allowed-address', expect: ALLOWED },
  'allowed domain': { facts: { matches: { domain: 'allow' } }, reason: 'allowed-domain', expect: ALLOWED },
  'allowed list, authenticated': {
    facts: { authenticated: false, listAuthenticated: true, matches: { list: 'allow' } },
    reason: 'allowed-list',
    expect: ALLOWED,
  },
  'blocked address': { facts: { matches: { address: 'block' } }, reason: 'blocked-address', expect: BLOCKED },
  'blocked address, unauthenticated': {
    facts: { authenticated: false, matches: { address: 'block' } },
    reason: 'blocked-address',
    expect: BLOCKED,
  },
  'blocked domain': { facts: { matches: { domain: 'block' } }, reason: 'blocked-domain', expect: BLOCKED },
  'blocked domain, unauthenticated': {
    facts: { authenticated: false, matches: { domain: 'block' } },
    reason: 'blocked-domain',
    expect: BLOCKED,
  },
  'blocked list': { facts: { matches: { list: 'block' } }, reason: 'blocked-list', expect: BLOCKED },
  'stranger, authenticated': { facts: {}, reason: 'stranger', expect: STRANGER },
  'stranger, unauthenticated': { facts: { authenticated: false }, reason: 'stranger', expect: STRANGER },
  'stranger without From:': { facts: { from: null, authenticated: false }, reason: 'stranger', expect: STRANGER },
  'forged allowed address': {
    facts: { authenticated: false, matches: { address: 'allow' } },
    reason: 'unauthenticated-allowed',
    expect: STRANGER,
  },
  'forged allowed domain': {
    facts: { authenticated: false, matches: { domain: 'allow' } },
    reason: 'unauthenticated-allowed',
    expect: STRANGER,
  },
  'allowed list, not authenticated': {
    facts: { listAuthenticated: false, matches: { list: 'allow' } },
    reason: 'unauthenticated-list',
    expect: STRANGER,
  },
};

test('policy table: every mode x channel x sender class', () => {
  let rows = 0;
  for (const [name, sender] of Object.entries(SENDERS)) {
    for (const mode of MODES) {
      for (const channel of CHANNELS) {
        for (const origin of ['remote', 'local'] as const) {
          const label = `${name} / ${mode} / ${channel} / ${origin}`;
          const verdict = decide(input({ ...sender.facts, mode, channel, origin }));
          assertOutcome(verdict, sender.expect[mode][channel], sender.reason, label);
          rows++;
        }
      }
    }
  }
  assert.equal(rows, Object.keys(SENDERS).length * 3 * 2 * 2);
});

test('forged allowed senders never reach the inbox in screen or strict mode', () => {
  for (const mode of ['screen', 'strict'] as const) {
    for (const channel of CHANNELS) {
      for (const matches of [{ address: 'allow' }, { domain: 'allow' }, { address: 'allow', domain: 'allow' }] as const) {
        const verdict = decide(input({ mode, channel, authenticated: false, matches }));
        assert.notEqual(verdict.kind, 'inbox', `${mode}/${channel}/${JSON.stringify(matches)}`);
        assert.ok(verdict.reasons.some((r) => r.code === 'unauthenticated-allowed'));
        assert.match(verdict.reasons.find((r) => r.code === 'unauthenticated-allowed')?.detail ?? '', /forged/);
      }
    }
  }
});

test('a message without one undisputed From: address is never allowed (ambiguous-from)', () => {
  const rows: Array<[Mode, 'smtp' | 'twm', Outcome]> = [
    ['open', 'smtp', 'inbox-first-contact'],
    ['screen', 'smtp', 'screen'],
    ['strict', 'smtp', 'refuse'],
    ['open', 'twm', 'inbox-first-contact'],
    ['screen', 'twm', 'screen'],
    ['strict', 'twm', 'screen'],
  ];
  const allowing: Facts[] = [
    { matches: { address: 'allow' } },
    { matches: { domain: 'allow' } },
    { matches: { list: 'allow' }, listAuthenticated: true },
    { ownershipConfirmation: true, expected: 'marker-required' },
  ];
  for (const [mode, channel, expected] of rows) {
    for (const facts of allowing) {
      for (const from of ['friend@friends.test', null]) {
        const label = `${mode}/${channel}/${JSON.stringify(facts)}/${from}`;
        const allowedWithout = decide(input({ ...facts, mode, channel, from }));
        assert.equal(allowedWithout.kind, 'inbox', `${label}: the same facts without a problem are allowed`);
        const verdict = decide(input({ ...facts, mode, channel, from, fromProblem: 'several mailboxes in From:' }));
        assertOutcome(verdict, expected, 'ambiguous-from', label);
        assert.match(verdict.reasons.find((r) => r.code === 'ambiguous-from')?.detail ?? '', /several mailboxes/);
      }
    }
  }
  // Blocks still apply.
  assert.equal(decide(input({ mode: 'screen', fromProblem: 'x', matches: { domain: 'block' } })).kind, 'drop');
  assert.equal(decide(input({ mode: 'screen', fromProblem: 'x', matches: { list: 'block' } })).kind, 'drop');
});

interface PrecedenceRow {
  name: string;
  facts: Facts;
  mode: Mode;
  expected: Outcome;
  reason: ReasonCode;
}

test('precedence: address beats domain; blocks beat list allows', () => {
  const rows: PrecedenceRow[] = [
    { name: 'allowed address in blocked domain', facts: { matches: { address: 'allow', domain: 'block' } }, mode: 'strict', expected: 'inbox', reason: 'allowed-address' },
    { name: 'allowed address in blocked domain, open', facts: { matches: { address: 'allow', domain: 'block' } }, mode: 'open', expected: 'inbox', reason: 'allowed-address' },
    { name: 'blocked address in allowed domain', facts: { matches: { address: 'block', domain: 'allow' } }, mode: 'screen', expected: 'drop', reason: 'blocked-address' },
    { name: 'blocked address in allowed domain, strict', facts: { matches: { address: 'block', domain: 'allow' } }, mode: 'strict', expected: 'refuse', reason: 'blocked-address' },
    // An unverified copy of an explicitly allowed address is screened, not dropped by the domain block.
    { name: 'forged allowed address in blocked domain', facts: { authenticated: false, matches: { address: 'allow', domain: 'block' } }, mode: 'screen', expected: 'screen', reason: 'unauthenticated-allowed' },
    { name: 'blocked address posting to allowed list', facts: { listAuthenticated: true, matches: { address: 'block', list: 'allow' } }, mode: 'screen', expected: 'drop', reason: 'blocked-address' },
    { name: 'blocked domain posting to allowed list', facts: { listAuthenticated: true, matches: { domain: 'block', list: 'allow' } }, mode: 'screen', expected: 'drop', reason: 'blocked-domain' },
    { name: 'allowed address posting to blocked list', facts: { matches: { address: 'allow', list: 'block' } }, mode: 'screen', expected: 'drop', reason: 'blocked-list' },
    { name: 'allowed domain posting to blocked list', facts: { matches: { domain: 'allow', list: 'block' } }, mode: 'open', expected: 'drop', reason: 'blocked-list' },
    { name: 'stranger posting to allowed list', facts: { authenticated: false, listAuthenticated: true, matches: { list: 'allow' } }, mode: 'strict', expected: 'inbox', reason: 'allowed-list' },
    { name: 'forged address via authenticated allowed list', facts: { authenticated: false, listAuthenticated: true, matches: { address: 'allow', list: 'allow' } }, mode: 'strict', expected: 'inbox', reason: 'allowed-list' },
    { name: 'allowed address and allowed domain', facts: { matches: { address: 'allow', domain: 'allow' } }, mode: 'strict', expected: 'inbox', reason: 'allowed-address' },
    { name: 'list allow not authenticated, domain allow authenticated', facts: { matches: { domain: 'allow', list: 'allow' } }, mode: 'strict', expected: 'inbox', reason: 'allowed-domain' },
    { name: 'list allow and forged domain, neither authenticated', facts: { authenticated: false, matches: { domain: 'allow', list: 'allow' } }, mode: 'screen', expected: 'screen', reason: 'unauthenticated-list' },
  ];
  for (const row of rows) {
    const verdict = decide(input({ ...row.facts, mode: row.mode }));
    assertOutcome(verdict, row.expected, row.reason, row.name);
  }
});

test('auto-submitted messages', () => {
  const rows: Array<PrecedenceRow & { channel: 'smtp' | 'twm' }> = [
    // The backscatter rule: strict SMTP drops instead of refusing.
    { name: 'stranger, strict smtp', channel: 'smtp', facts: {}, mode: 'strict', expected: 'drop', reason: 'auto-submitted' },
    { name: 'stranger, strict smtp, also stranger', channel: 'smtp', facts: {}, mode: 'strict', expected: 'drop', reason: 'stranger' },
    { name: 'blocked, strict smtp', channel: 'smtp', facts: { matches: { address: 'block' } }, mode: 'strict', expected: 'drop', reason: 'auto-submitted' },
    { name: 'forged allowed, strict smtp', channel: 'smtp', facts: { authenticated: false, matches: { address: 'allow' } }, mode: 'strict', expected: 'drop', reason: 'unauthenticated-allowed' },
    // Elsewhere the flag is recorded but changes nothing.
    { name: 'stranger, strict twm', channel: 'twm', facts: {}, mode: 'strict', expected: 'screen', reason: 'auto-submitted' },
    { name: 'stranger, screen smtp', channel: 'smtp', facts: {}, mode: 'screen', expected: 'screen', reason: 'auto-submitted' },
    { name: 'stranger, open smtp', channel: 'smtp', facts: {}, mode: 'open', expected: 'inbox-first-contact', reason: 'auto-submitted' },
    { name: 'allowed, strict smtp', channel: 'smtp', facts: { matches: { address: 'allow' } }, mode: 'strict', expected: 'inbox', reason: 'allowed-address' },
  ];
  for (const row of rows) {
    const verdict = decide(input({ ...row.facts, mode: row.mode, channel: row.channel, autoSubmitted: true }));
    assertOutcome(verdict, row.expected, row.reason, row.name);
  }
  // Not auto-submitted: no such reason.
  const plain = decide(input({ mode: 'strict' }));
  assert.ok(!plain.reasons.some((r) => r.code === 'auto-submitted'));
});

/**
 * The spam judgement as one more fact: for each judgement and sender, the
 * outcome in every (mode, channel). Allowed senders are never junked.
 */
type Grid = Record<Mode, Record<(typeof CHANNELS)[number], Outcome>>;
const grid = (open: Outcome, screenSmtp: Outcome, strictSmtp: Outcome, twm: { open: Outcome; screen: Outcome; strict: Outcome }): Grid => ({
  open: { smtp: open, twm: twm.open },
  screen: { smtp: screenSmtp, twm: twm.screen },
  strict: { smtp: strictSmtp, twm: twm.strict },
});
const SPAM_ROWS: Array<{ name: string; facts: Facts; reason: ReasonCode; expect: Grid }> = [
  { name: 'stranger, clean', facts: { spam: 'clean' }, reason: 'stranger', expect: STRANGER },
  { name: 'stranger, unscanned', facts: { spam: null }, reason: 'stranger', expect: STRANGER },
  {
    name: 'stranger, reject',
    facts: { spam: 'reject' },
    reason: 'spam',
    expect: grid('refuse-spam', 'refuse-spam', 'refuse-spam', { open: 'refuse-spam', screen: 'refuse-spam', strict: 'refuse-spam' }),
  },
  {
    name: 'stranger, reject, automatic: never refused',
    facts: { spam: 'reject', autoSubmitted: true },
    reason: 'spam',
    expect: grid('junk', 'screen-likely-spam', 'drop', { open: 'junk', screen: 'screen-likely-spam', strict: 'screen-likely-spam' }),
  },
  {
    name: 'stranger, likely',
    facts: { spam: 'likely' },
    reason: 'stranger',
    expect: grid('junk', 'screen-likely-spam', 'refuse', { open: 'junk', screen: 'screen-likely-spam', strict: 'screen-likely-spam' }),
  },
  {
    name: 'stranger, greylist',
    facts: { spam: 'greylist' },
    reason: 'stranger',
    expect: grid('greylist', 'greylist', 'refuse', { open: 'inbox-first-contact', screen: 'screen', strict: 'screen' }),
  },
  {
    name: 'stranger, greylist, automatic: still greylisted (temporary, no bounce)',
    facts: { spam: 'greylist', autoSubmitted: true },
    reason: 'auto-submitted',
    expect: grid('greylist', 'greylist', 'drop', { open: 'inbox-first-contact', screen: 'screen', strict: 'screen' }),
  },
  { name: 'allowed address, reject', facts: { spam: 'reject', matches: { address: 'allow' } }, reason: 'allowed-address', expect: ALLOWED },
  { name: 'allowed domain, likely', facts: { spam: 'likely', matches: { domain: 'allow' } }, reason: 'allowed-domain', expect: ALLOWED },
  { name: 'allowed list, greylist', facts: { spam: 'greylist', listAuthenticated: true, matches: { list: 'allow' } }, reason: 'allowed-list', expect: ALLOWED },
  { name: 'forged allowed address, likely', facts: { spam: 'likely', authenticated: false, matches: { address: 'allow' } }, reason: 'unauthenticated-allowed', expect: grid('junk', 'screen-likely-spam', 'refuse', { open: 'junk', screen: 'screen-likely-spam', strict: 'screen-likely-spam' }) },
  { name: 'blocked, likely', facts: { spam: 'likely', matches: { address: 'block' } }, reason: 'blocked-address', expect: BLOCKED },
  { name: 'blocked, greylist', facts: { spam: 'greylist', matches: { domain: 'block' } }, reason: 'blocked-domain', expect: BLOCKED },
  {
    name: 'blocked, reject',
    facts: { spam: 'reject', matches: { address: 'block' } },
    reason: 'blocked-address',
    expect: grid('refuse-spam', 'refuse-spam', 'refuse-spam', { open: 'refuse-spam', screen: 'refuse-spam', strict: 'refuse-spam' }),
  },
  { name: 'expected sender, likely', facts: { spam: 'likely', ownershipConfirmation: true, expected: 'marker-required' }, reason: 'expected-sender', expect: EXPECTED },
  {
    name: 'expected sender, reject',
    facts: { spam: 'reject', ownershipConfirmation: true, expected: 'marker-required' },
    reason: 'spam',
    expect: grid('refuse-spam', 'refuse-spam', 'refuse-spam', { open: 'refuse-spam', screen: 'refuse-spam', strict: 'refuse-spam' }),
  },
];

test('spam judgement table: every judgement x sender x mode x channel', () => {
  let rows = 0;
  for (const row of SPAM_ROWS) {
    for (const mode of MODES) {
      for (const channel of CHANNELS) {
        for (const origin of ['remote', 'local'] as const) {
          const label = `${row.name} / ${mode} / ${channel} / ${origin}`;
          assertOutcome(decide(input({ ...row.facts, mode, channel, origin })), row.expect[mode][channel], row.reason, label);
          rows++;
        }
      }
    }
  }
  assert.equal(rows, SPAM_ROWS.length * 12);
});

test('spam verdicts say why', () => {
  const codes = (f: Facts) => decide(input(f)).reasons.map((r) => r.code);
  assert.deepEqual(codes({ spam: 'likely', mode: 'open' }), ['stranger', 'likely-spam']);
  assert.deepEqual(codes({ spam: 'likely', mode: 'screen' }), ['stranger', 'likely-spam']);
  assert.deepEqual(codes({ spam: 'greylist', mode: 'screen' }), ['stranger', 'greylisted']);
  assert.deepEqual(codes({ spam: 'reject', mode: 'open' }), ['stranger', 'spam']);
  assert.deepEqual(codes({ spam: 'reject', mode: 'open', autoSubmitted: true }), ['stranger', 'auto-submitted', 'spam', 'likely-spam']);
});

test('system notices are never judged as spam', () => {
  for (const spam of ['reject', 'likely', 'greylist'] as const) {
    const v = decide(input({ origin: 'system', spam, mode: 'strict', authenticated: false }));
    assertOutcome(v, 'inbox', 'system', `system / ${spam}`);
  }
});

test('system notices always reach the inbox', () => {
  const worst = { address: 'block', domain: 'block', list: 'block' } as const;
  for (const mode of MODES) {
    for (const channel of CHANNELS) {
      for (const autoSubmitted of [false, true]) {
        const verdict = decide(input({ mode, channel, origin: 'system', from: null, authenticated: false, autoSubmitted, matches: worst }));
        assertOutcome(verdict, 'inbox', 'system', `system / ${mode} / ${channel} / auto=${autoSubmitted}`);
        assert.deepEqual(verdict.reasons.map((r) => r.code), ['system']);
      }
    }
  }
});

test('the strict refusal is a fresh copy of STRICT_REFUSAL', () => {
  const v = decide(input({ mode: 'strict' }));
  assert.equal(v.kind, 'refuse');
  if (v.kind !== 'refuse') return;
  assert.deepEqual(v.reply, { ...STRICT_REFUSAL });
  assert.notEqual(v.reply, STRICT_REFUSAL);
  assert.ok(Object.isFrozen(STRICT_REFUSAL));
  // Blocked and stranger refusals are indistinguishable to the sender.
  const blocked = decide(input({ mode: 'strict', matches: { address: 'block' } }));
  assert.equal(blocked.kind, 'refuse');
  if (blocked.kind === 'refuse') assert.deepEqual(blocked.reply, v.reply);
});

test('reason details name the sender', () => {
  const v = decide(input({ from: 'bob@example.net', mode: 'screen' }));
  assert.match(v.reasons.find((r) => r.code === 'stranger')?.detail ?? '', /bob@example\.net/);
  const none = decide(input({ from: null, mode: 'screen' }));
  assert.match(none.reasons.find((r) => r.code === 'stranger')?.detail ?? '', /no From/);
});

test('an expected sender is not an allowed one: no allow reason, first contact', () => {
  const v = decide(input({ mode: 'strict', ownershipConfirmation: true, expected: 'marker-required' }));
  assert.equal(v.kind, 'inbox');
  if (v.kind === 'inbox') assert.equal(v.firstContact, true);
  assert.deepEqual(v.reasons.map((r) => r.code), ['stranger', 'expected-sender']);
  assert.equal(classifySender(input({ ownershipConfirmation: true, expected: 'marker-required' })).senderClass, 'stranger');
});

test('classifySender exposes the class', () => {
  assert.equal(classifySender(input({ matches: { address: 'allow' } })).senderClass, 'allowed');
  assert.equal(classifySender(input({ matches: { domain: 'block' } })).senderClass, 'blocked');
  assert.equal(classifySender(input({ authenticated: false, matches: { domain: 'allow' } })).senderClass, 'stranger');
});

test('invariants over every combination of inputs', () => {
  const actions: MatchAction[] = [null, 'allow', 'block'];
  let count = 0;
  for (const mode of MODES)
    for (const channel of CHANNELS)
      for (const origin of ['remote', 'local', 'system'] as const)
        for (const address of actions)
          for (const domain of actions)
            for (const list of actions)
              for (const authenticated of [false, true])
                for (const listAuthenticated of [false, true])
                  for (const autoSubmitted of [false, true])
                  for (const spam of [null, 'clean', 'likely', 'greylist', 'reject'] as const) {
                    const i = input({ mode, channel, origin, authenticated, listAuthenticated, autoSubmitted, spam, matches: { address, domain, list } });
                    const v = decide(i);
                    const label = JSON.stringify(i);
                    count++;
                    assert.ok(v.reasons.length > 0, label);
                    if (origin === 'system') {
                      assert.equal(v.kind, 'inbox', label);
                      continue;
                    }
                    // Nothing unauthenticated reaches the inbox outside open mode.
                    if (mode !== 'open' && !authenticated && !listAuthenticated) assert.notEqual(v.kind, 'inbox', label);
                    // Blocks hold against every allow except the address-over-domain rule.
                    if (address === 'block' || list === 'block') assert.notEqual(v.kind, 'inbox', label);
                    if (domain === 'block' && address !== 'allow') assert.notEqual(v.kind, 'inbox', label);
                    // Permanent refusals only in strict SMTP or for rejected spam, never for automatic mail;
                    // temporary ones only for greylisted SMTP.
                    if (v.kind === 'refuse' && v.reply.code === 550) {
                      assert.ok((mode === 'strict' && channel === 'smtp') || spam === 'reject', label);
                      assert.ok(!autoSubmitted, label);
                    } else if (v.kind === 'refuse') {
                      assert.deepEqual([v.reply.code, spam, channel], [451, 'greylist', 'smtp'], label);
                    }
                    // Contacts (allowed senders) are never junked, refused or screened, whatever the filter says.
                    const allowed = classifySender(i).senderClass === 'allowed';
                    if (allowed) assert.equal(v.kind, 'inbox', label);
                    // Junk only in open mode, only for spam.
                    if (v.kind === 'junk') assert.ok(mode === 'open' && (spam === 'likely' || spam === 'reject'), label);
                    if (v.kind === 'screen' && v.likelySpam) assert.ok(spam === 'likely' || spam === 'reject', label);
                    // First contact only in open mode (expected senders: see their own test).
                    if (v.kind === 'inbox' && v.firstContact) assert.equal(mode, 'open', label);
                    // Screening never happens in open mode.
                    if (v.kind === 'screen') assert.notEqual(mode, 'open', label);
                  }
  assert.equal(count, 3 * 2 * 3 * 27 * 8 * 5);
});
