/**
 * The policy for a message a mailing list or forwarder relayed over TWM
 * (docs/protocol.md 7.6), as a table: the address-book entries a user has,
 * and the verdict in every mode. The facts go through the same pure steps
 * ingest uses (decisionFactsFor, probesFor, matchesFrom, listAuthenticated,
 * decide); only the store's index lookup is replaced by an exact match on
 * (kind, value), which is what it is.
 *
 * The point of the table: the list's or forwarder's own entries decide
 * (its List-Id, address or domain); the author's never do, neither an allow
 * nor a block, since the author's domain signed nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, type ReasonCode, type VerdictKind } from '../core/policy.ts';
import type { ContactEntry } from '../core/types.ts';
import { MODES, type Mode } from '../core/types.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { listAuthenticated, matchesFrom, probesFor } from './contact-matches.ts';
import { decisionFactsFor } from './ingest-steps.ts';
import type { IngestMessage } from './ingest.ts';

const SIGNER = 'lists.a.test';
const LIST = 'dev@lists.a.test';
const LIST_ID = 'dev.lists.a.test';
const AUTHOR = 'alice@author.test';
const FORWARDER = 'fwd@lists.a.test';

type Outcome = 'inbox' | 'first-contact' | 'screen' | 'drop';
const ALLOWED: Record<Mode, Outcome> = { open: 'inbox', screen: 'inbox', strict: 'inbox' };
const STRANGER: Record<Mode, Outcome> = { open: 'first-contact', screen: 'screen', strict: 'screen' };
const BLOCKED: Record<Mode, Outcome> = { open: 'drop', screen: 'drop', strict: 'drop' };

/** A relayed message as the fetch check hands it to ingest: From: the author, Sender: the relay. */
function relayed(sender: string, listId: string | null, relayedBy: string | null = sender): { message: IngestMessage; raw: Buffer } {
  const raw = Buffer.from(
    `From: Alice <${AUTHOR}>\r\nSender: ${sender}\r\nTo: dev@lists.a.test\r\n${listId ? `List-Id: Developers <${listId}>\r\n` : ''}Subject: a post\r\n\r\nHello list.\r\n`,
  );
  const message: IngestMessage = {
    channel: 'twm',
    origin: 'remote',
    envelopeFrom: sender,
    recipients: [],
    raw,
    prepend: '',
    auth: { identity: sender, alignedDomain: SIGNER, authenticatedDomains: [SIGNER] },
    ...(relayedBy === null ? {} : { relayedBy }),
  };
  return { message, raw };
}

const entry = (kind: ContactEntry['kind'], value: string, action: ContactEntry['action'] = 'allow'): ContactEntry => ({ kind, value, action });

interface Row {
  book: ContactEntry[];
  sender?: string;
  listId?: string | null;
  /** The message says it was relayed (the fetch check found Sender: = the notice's from). Default true. */
  relayed?: boolean;
  reason: ReasonCode;
  expect: Record<Mode, Outcome>;
}

const ROWS: Record<string, Row> = {
  'the list allowed (X-TWOWAY-LIST)': { book: [entry('list', LIST_ID)], reason: 'allowed-list', expect: ALLOWED },
  "the list's address allowed": { book: [entry('address', LIST)], reason: 'allowed-address', expect: ALLOWED },
  "the list's domain allowed": { book: [entry('domain', 'a.test')], reason: 'allowed-domain', expect: ALLOWED },
  'only the author allowed: not the list': { book: [entry('address', AUTHOR)], reason: 'stranger', expect: STRANGER },
  "only the author's domain allowed": { book: [entry('domain', 'author.test')], reason: 'stranger', expect: STRANGER },
  'the author blocked: the list still reaches the user': { book: [entry('address', AUTHOR, 'block')], reason: 'stranger', expect: STRANGER },
  'the list allowed, the author blocked': { book: [entry('list', LIST_ID), entry('address', AUTHOR, 'block')], reason: 'allowed-list', expect: ALLOWED },
  'the list blocked': { book: [entry('list', LIST_ID, 'block')], reason: 'blocked-list', expect: BLOCKED },
  "the list's address blocked, the author allowed": {
    book: [entry('address', LIST, 'block'), entry('address', AUTHOR)],
    reason: 'blocked-address',
    expect: BLOCKED,
  },
  'an empty address book': { book: [], reason: 'stranger', expect: STRANGER },
  'a forwarder allowed as itself': { book: [entry('address', FORWARDER)], sender: FORWARDER, listId: null, reason: 'allowed-address', expect: ALLOWED },
  'a forwarder, only the author allowed': { book: [entry('address', AUTHOR)], sender: FORWARDER, listId: null, reason: 'stranger', expect: STRANGER },
  "a forwarder relaying another domain's list, that list allowed": {
    book: [entry('list', 'news.other.test')],
    sender: FORWARDER,
    listId: 'news.other.test',
    reason: 'unauthenticated-list',
    expect: STRANGER,
  },
  'not declared relayed: the author allowed, but the signer authenticated someone else': {
    book: [entry('address', AUTHOR)],
    relayed: false,
    reason: 'ambiguous-from',
    expect: STRANGER,
  },
};

function outcome(kind: VerdictKind, firstContact: boolean): Outcome {
  if (kind === 'inbox') return firstContact ? 'first-contact' : 'inbox';
  if (kind === 'screen' || kind === 'drop') return kind;
  throw new Error(`unexpected verdict ${kind}`);
}

test('relayed TWM mail: the list or forwarder decides, never the author (every mode)', () => {
  let rows = 0;
  for (const [name, row] of Object.entries(ROWS)) {
    const sender = row.sender ?? LIST;
    const { message, raw } = relayed(sender, row.listId === undefined ? LIST_ID : row.listId, row.relayed === false ? null : sender);
    const facts = decisionFactsFor(message, messageFacts(parseHeaders(raw)), new Date(0));
    const probes = probesFor({ from: facts.from, listId: facts.listId });
    if (row.relayed !== false) {
      assert.equal(facts.from, sender, `${name}: decided on the relay`);
      assert.ok(!probes.some((p) => p.value === AUTHOR || p.value === 'author.test'), `${name}: the author is not even looked up`);
    }
    const found = row.book.filter((e) => probes.some((p) => p.kind === e.kind && p.value === e.value));
    for (const mode of MODES) {
      const verdict = decide({
        mode,
        channel: 'twm',
        origin: 'remote',
        from: facts.from,
        fromProblem: facts.fromProblem,
        authenticated: facts.alignedDomain !== null,
        matches: matchesFrom(found),
        listAuthenticated: listAuthenticated(facts.listId, facts.authenticatedDomains),
        autoSubmitted: facts.autoSubmitted,
        ownershipConfirmation: false,
        expected: 'none',
        spam: null,
      });
      const label = `${name} / ${mode}`;
      assert.equal(outcome(verdict.kind, verdict.kind === 'inbox' && verdict.firstContact), row.expect[mode], `${label}: outcome`);
      const codes = verdict.reasons.map((r) => r.code);
      assert.ok(codes.includes(row.reason), `${label}: reasons ${JSON.stringify(codes)} should include ${row.reason}`);
      rows++;
    }
  }
  assert.equal(rows, Object.keys(ROWS).length * MODES.length);
});
