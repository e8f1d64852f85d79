import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseListId, senderKey } from './screener-keys.ts';

test('senderKey prefers the header From, then the envelope sender', () => {
  assert.equal(senderKey('alice@example.org', 'bounces@lists.example.org'), 'alice@example.org');
  assert.equal(senderKey(null, 'Bounces@Example.ORG'), 'bounces@example.org');
  assert.equal(senderKey(' Alice@Example.org ', null), 'alice@example.org');
  assert.equal(senderKey(null, null), 'unknown');
  // The null reverse-path and empty values count as absent.
  assert.equal(senderKey('', ''), 'unknown');
  assert.equal(senderKey(null, ''), 'unknown');
  assert.equal(senderKey('', 'x@y.org'), 'x@y.org');
});

test('normaliseListId extracts the id from List-Id header values', () => {
  const cases: Array<[string, string | null]> = [
    ['Developers <dev.lists.example.org>', 'dev.lists.example.org'],
    ['<Dev.Lists.Example.ORG>', 'dev.lists.example.org'],
    ['dev.lists.example.org', 'dev.lists.example.org'],
    ['  dev.lists.example.org  ', 'dev.lists.example.org'],
    ['"The <best> list" <best.example.org>', 'best.example.org'],
    ['Folded\r\n <folded.example.org>', 'folded.example.org'],
    ["<a+b_c-d.list-id.example.org>", 'a+b_c-d.list-id.example.org'],
    ['List <  spaced.example.org  >', 'spaced.example.org'],
    // RFC 2919: unqualified ids use the "localhost" namespace, still dotted.
    ['<mylist.localhost>', 'mylist.localhost'],
    ['', null],
    ['   ', null],
    ['<>', null],
    ['nodots', null],
    ['<nodots>', null],
    ['Name <unterminated.example.org', null],
    ['two words.example.org', null],
    ['<a..b.org>', null],
    ['<.a.b.org>', null],
    ['<a.b.org.>', null],
    ['<a b.org>', null],
    [`<${'a'.repeat(250)}.example.org>`, null],
  ];
  for (const [header, expected] of cases) assert.equal(normaliseListId(header), expected, JSON.stringify(header));
});

test('standingOf reads a verdict as allowed, blocked or undecided, whatever the mode', async () => {
  const { decide } = await import('./policy.ts');
  const { standingOf } = await import('./screener-keys.ts');
  const none = { address: null, domain: null, list: null } as const;
  const base = { channel: 'smtp', origin: 'remote', from: 'x@y.org', authenticated: true, matches: none, listAuthenticated: false, autoSubmitted: false, ownershipConfirmation: false, expected: 'none', fromProblem: null, spam: null } as const;
  const cases: Array<[string, Parameters<typeof decide>[0], string]> = [
    ['allowed address, screen', { ...base, mode: 'screen', matches: { ...none, address: 'allow' } }, 'allowed'],
    ['allowed domain, strict', { ...base, mode: 'strict', matches: { ...none, domain: 'allow' } }, 'allowed'],
    ['allowed list, open', { ...base, mode: 'open', matches: { ...none, list: 'allow' }, listAuthenticated: true }, 'allowed'],
    ['allowed but not authenticated', { ...base, mode: 'screen', authenticated: false, matches: { ...none, address: 'allow' } }, 'undecided'],
    ['stranger in open mode (inbox, first contact)', { ...base, mode: 'open' }, 'undecided'],
    ['stranger in screen mode', { ...base, mode: 'screen' }, 'undecided'],
    ['stranger in strict mode (refused)', { ...base, mode: 'strict' }, 'undecided'],
    ['expected sender', { ...base, mode: 'strict', channel: 'twm', ownershipConfirmation: true, expected: 'marker-required' }, 'undecided'],
    ['blocked address, open', { ...base, mode: 'open', matches: { ...none, address: 'block' } }, 'blocked'],
    ['blocked domain, strict (refused)', { ...base, mode: 'strict', matches: { ...none, domain: 'block' } }, 'blocked'],
    ['blocked address beats an allowed domain', { ...base, mode: 'screen', matches: { ...none, address: 'block', domain: 'allow' } }, 'blocked'],
    ['unauthenticated block still blocks', { ...base, mode: 'screen', authenticated: false, matches: { ...none, address: 'block' } }, 'blocked'],
  ];
  for (const [name, input, want] of cases) assert.equal(standingOf(decide(input)), want, name);
});
