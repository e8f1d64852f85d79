/**
 * Fuzzing the From:/Sender: check of a fetched TWM body (docs/protocol.md
 * 7.6, 8.4 rule 3) and what ingest then decides on: generated header blocks
 * with zero to two From:, Sender: and List-Id fields (mutated addresses,
 * display names, comments, groups, several mailboxes, control bytes) against
 * a list's notice (`from` dev@lists.a.test, with or without a `list_id`).
 *
 * Properties, for every case:
 * - a body that passes is either the notice's author (From: is the notice's
 *   `from`, nothing relayed) or relayed by exactly the notice's `from`, read
 *   from the one Sender: field;
 * - a passing body with a `list_id` carries that List-Id, and a relayed one
 *   only a `list_id` under the signer domain;
 * - ingest decides a relayed body on the relay, never on a From: address:
 *   the only address it looks up is the notice's `from`.
 * A control case first proves the harness sees a relayed pass.
 *
 * Seeded: FUZZ_SEED repeats a run; FUZZ_ITERATIONS makes it longer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DEFAULT_HEADER_LIMITS } from '../src/core/header-limits.ts';
import { listIdUnder, normaliseListId } from '../src/core/screener-keys.ts';
import { checkFetchedBody } from '../src/delivery/twm-fetch-check.ts';
import { probesFor } from '../src/ingest/contact-matches.ts';
import { decisionFactsFor } from '../src/ingest/ingest-steps.ts';
import { senderIdentity } from '../src/mail/from.ts';
import { parseHeaders } from '../src/mail/headers.ts';
import type { TwmInNotice } from '../src/store/types.ts';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText, type Rng } from './helpers/fuzz.ts';

const LIST = 'dev@lists.a.test';
const SIGNER = 'lists.a.test';
const ADDRESSES = [LIST, 'DEV@Lists.A.test', 'dev@lists.a.test.', '"dev"@lists.a.test', 'dev+x@lists.a.test', 'alice@author.test', 'mallory@lists.a.test', 'dev@a.test', 'dev@lists.a.test.evil.test'];
const LIST_IDS = ['dev.lists.a.test', 'Dev.Lists.A.Test', 'other.lists.a.test', 'dev.other.test', 'lists.a.test', 'dev.lists.a.test.evil'];

function mailbox(rng: Rng): string {
  let a = rng.pick(ADDRESSES);
  if (rng.bool(0.3)) a = mutateText(rng, a, 2);
  switch (rng.int(6)) {
    case 0:
      return `Name <${a}>`;
    case 1:
      return `"Dev, List" <${a}> (comment)`;
    case 2:
      return `${a}, ${rng.pick(ADDRESSES)}`;
    case 3:
      return `group: ${a};`;
    default:
      return a;
  }
}

function fields(rng: Rng, name: string, value: () => string): string[] {
  const n = rng.pick([0, 1, 1, 1, 2]);
  return Array.from({ length: n }, () => `${name}: ${value()}`);
}

function notice(body: Buffer, listId: string | null): TwmInNotice {
  return {
    senderDomain: SIGNER,
    id: 'AAAAAAAAAAAAAAAAAAAAAA',
    contentSha256: '0'.repeat(64),
    from: LIST,
    to: ['bea@b.test'],
    size: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    createdAt: new Date(0),
    expiresAt: new Date(1),
    intro: null,
    purpose: null,
    listId,
    receivedAt: new Date(0),
  };
}

/** Checks one body; returns whether it was relayed (for the control case). */
function checkCase(body: Buffer, listId: string | null, where: string): 'relayed' | 'direct' | 'refused' {
  const result = checkFetchedBody(notice(body, listId), { body, truncated: false, headers: {} }, DEFAULT_HEADER_LIMITS);
  if (!('facts' in result)) return 'refused';
  const headers = parseHeaders(body);
  const { facts, relayedBy } = result;
  if (listId !== null) assert.equal(normaliseListId(facts.listId ?? ''), listId, `${where}: List-Id is the list_id`);
  if (relayedBy === null) {
    assert.equal(facts.from, LIST, `${where}: a direct pass is the notice's author`);
    return 'direct';
  }
  assert.equal(relayedBy, LIST, `${where}: relayed by the notice's from`);
  assert.equal(senderIdentity(headers).address, LIST, `${where}: read from the one Sender:`);
  if (listId !== null) assert.ok(listIdUnder(listId, SIGNER), `${where}: a relayed list_id is the signer's`);
  const decision = decisionFactsFor(
    {
      channel: 'twm',
      origin: 'remote',
      envelopeFrom: LIST,
      recipients: [],
      raw: body,
      prepend: '',
      auth: { identity: relayedBy, alignedDomain: SIGNER, authenticatedDomains: [SIGNER] },
      relayedBy,
    },
    facts,
    new Date(0),
  );
  assert.equal(decision.from, LIST, `${where}: decided on the relay`);
  assert.equal(decision.fromProblem, null, `${where}: no author problem for a relay`);
  const looked = probesFor({ from: decision.from, listId: decision.listId }).filter((p) => p.kind === 'address');
  assert.deepEqual(looked.map((p) => p.value), [LIST], `${where}: only the relay's address is looked up`);
  return 'relayed';
}

describe('fuzzing the TWM From:/Sender: check', () => {
  it('a clean list post passes as relayed (control)', () => {
    const body = Buffer.from(`From: Alice <alice@author.test>\r\nSender: ${LIST}\r\nList-Id: Devs <dev.lists.a.test>\r\nSubject: x\r\n\r\nHi.\r\n`);
    assert.equal(checkCase(body, 'dev.lists.a.test', 'control'), 'relayed');
  });

  it('generated header blocks: a pass is the author or exactly the notice from, decided as such', async () => {
    const seed = fuzzSeed();
    const count = fuzzIterations(3000);
    const seen = { relayed: 0, direct: 0, refused: 0 };
    await forEachCase(seed, count, (rng, i) => {
      const lines = [
        ...fields(rng, rng.bool(0.9) ? 'From' : 'from', () => mailbox(rng)),
        ...fields(rng, rng.bool(0.9) ? 'Sender' : 'SENDER', () => mailbox(rng)),
        ...fields(rng, 'List-Id', () => `Devs <${rng.pick(LIST_IDS)}>`),
      ];
      for (let j = lines.length - 1; j > 0; j--) {
        const k = rng.int(j + 1);
        [lines[j], lines[k]] = [lines[k]!, lines[j]!];
      }
      const body = Buffer.from(`${lines.join('\r\n')}${lines.length ? '\r\n' : ''}Subject: case ${i}\r\n\r\nBody.\r\n`);
      const listId = rng.bool(0.6) ? normaliseListId(rng.pick(LIST_IDS)) : null;
      seen[checkCase(body, listId, `case ${i} (FUZZ_SEED=${seed}): ${JSON.stringify(lines)} list_id ${listId}`)]++;
    });
    // The generator reaches every outcome, or the properties above were never exercised.
    assert.ok(seen.relayed > 0 && seen.direct > 0 && seen.refused > 0, JSON.stringify(seen));
  });
});
