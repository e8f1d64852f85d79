/**
 * The queue worker against a real SQLite store and a scripted transport
 * (unit tier: no sockets; real SMTP delivery is covered by integration tests).
 * Time is controlled through `now`; the poll timer is set far out, so only
 * kick() makes the worker look at the queue.
 */
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PostalMime, { type Email } from 'postal-mime';
import type { QueueEntry } from '../core/types.ts';
import { openStore } from '../store/open.ts';
import type { QueueRepository, Store } from '../store/types.ts';
import { parseReply } from '../core/reply.ts';
import { startQueueWorker, type DeliveryStatusNotice, type QueueWorker, type QueueWorkerOptions } from './queue-worker.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = new Date('2024-06-01T12:00:00.000Z');

type Script = (call: { domain: string; message: OutboundMessage; recipients: string[]; index: number }) => RecipientResult[] | Error;

/** A Transport that answers from a script, records every call and measures concurrency. */
class ScriptedTransport implements Transport {
  readonly calls: Array<{ domain: string; messageId: string; sender: string | null; recipients: string[] }> = [];
  /** Calls and recipients in flight right now, and the most ever seen. */
  active = 0;
  activeRecipients = 0;
  maxActiveRecipients = 0;
  readonly activeByDomain = new Map<string, number>();
  readonly maxByDomain = new Map<string, number>();
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(private readonly script: Script) {}

  /** Holds every call until open() (to observe calls in flight). */
  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  open(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  async deliver(domain: string, message: OutboundMessage, recipients: string[]): Promise<RecipientResult[]> {
    const index = this.calls.push({ domain, messageId: message.messageId, sender: message.sender, recipients }) - 1;
    this.active++;
    this.activeRecipients += recipients.length;
    this.maxActiveRecipients = Math.max(this.maxActiveRecipients, this.activeRecipients);
    const inDomain = (this.activeByDomain.get(domain) ?? 0) + 1;
    this.activeByDomain.set(domain, inDomain);
    this.maxByDomain.set(domain, Math.max(this.maxByDomain.get(domain) ?? 0, inDomain));
    try {
      await this.gate;
      await new Promise((resolve) => setImmediate(resolve)); // calls overlap, as real ones do
      const outcome = this.script({ domain, message, recipients, index });
      if (outcome instanceof Error) throw outcome;
      return outcome;
    } finally {
      this.active--;
      this.activeRecipients -= recipients.length;
      this.activeByDomain.set(domain, (this.activeByDomain.get(domain) ?? 1) - 1);
    }
  }
}

const all =
  (status: RecipientResult['status'], reply: string): Script =>
  ({ recipients }) =>
    recipients.map((recipient) => ({ recipient, status, reply: parseReply(reply) }));

/** Per-recipient answers by address; anything unlisted is delivered. */
const byRecipient =
  (answers: Record<string, [RecipientResult['status'], string]>): Script =>
  ({ recipients }) =>
    recipients.map((recipient) => {
      const [status, reply] = answers[recipient] ?? ['delivered', '250 2.0.0 ok'];
      return { recipient, status, reply: parseReply(reply) };
    });

function raw(subject: string): Buffer {
  return Buffer.from(`From: Alice <alice@example.org>\r\nTo: x@y\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.org>\r\n\r\nbody of ${subject}\r\n`);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A delivery-status part as field groups (names lower-cased, folded lines joined). */
function statusGroups(email: Email): Array<Record<string, string>> {
  const part = email.attachments.find((a) => a.mimeType === 'message/delivery-status');
  assert.ok(part && typeof part.content === 'string', 'a message/delivery-status part');
  return part.content
    .replace(/\r\n/g, '\n')
    .replace(/\n[ \t]+/g, ' ')
    .split(/\n\n+/)
    .filter((g) => g.trim() !== '')
    .map((g) => Object.fromEntries(g.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
}

describe('queue worker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-worker-'));
  let n = 0;
  let store: Store;
  let now: Date;
  let dsns: DeliveryStatusNotice[];
  let workers: QueueWorker[];

  beforeEach(async () => {
    store = await openStore(`sqlite:${join(dir, `queue-${++n}.db`)}`);
    now = T0;
    dsns = [];
    workers = [];
  });
  afterEach(async () => {
    for (const w of workers) await w.stop();
    await store.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function start(transport: Transport, overrides: Partial<QueueWorkerOptions> = {}): QueueWorker {
    const worker = startQueueWorker({
      queue: store.queue,
      route: () => transport,
      now: () => now,
      random: () => 0.5, // the middle of the jitter band: waits are exactly base * 2^(n-1)
      pollIntervalMs: HOUR,
      reportingMta: 'mx.example.org',
      notify: async (dsn) => {
        dsns.push(dsn);
      },
      ...overrides,
    });
    workers.push(worker);
    return worker;
  }

  async function enqueue(id: string, recipients: string[], sender = 'alice@example.org'): Promise<QueueEntry[]> {
    return store.queue.enqueue({ messageId: `<${id}@example.org>`, sender, recipients, raw: raw(id), at: now, createdAt: now });
  }

  async function states(): Promise<Record<string, string>> {
    return Object.fromEntries((await store.queue.list()).map((e) => [e.recipient, e.status.state]));
  }

  async function run(worker: QueueWorker, at?: Date): Promise<void> {
    if (at) now = at;
    worker.kick();
    await worker.idle();
  }

  test('delivered: one call per (message, domain); the body is dropped, the rows stay; no DSN', async () => {
    await enqueue('m1', ['a@one.test', 'b@one.test', 'c@two.test']);
    const transport = new ScriptedTransport(all('delivered', '250 2.0.0 queued as X'));
    const worker = start(transport);
    await worker.idle();
    assert.deepEqual(
      transport.calls.map((c) => [c.domain, c.messageId, c.sender, c.recipients]).sort(),
      [
        ['one.test', '<m1@example.org>', 'alice@example.org', ['a@one.test', 'b@one.test']],
        ['two.test', '<m1@example.org>', 'alice@example.org', ['c@two.test']],
      ],
    );
    const entries = await store.queue.list();
    assert.deepEqual(
      entries.map((e) => e.status),
      entries.map(() => ({ state: 'delivered', deliveredAt: T0, reply: '250 2.0.0 queued as X' })),
    );
    assert.equal(await store.queue.raw('<m1@example.org>'), undefined);
    assert.deepEqual(dsns, []);
  });

  test('deferred, then delivered on the retry once its time has come', async () => {
    const [entry] = await enqueue('m1', ['a@one.test']);
    const transport = new ScriptedTransport(({ index }) =>
      index === 0 ? [{ recipient: 'a@one.test', status: 'deferred', reply: parseReply('451 4.7.1 greylisted') }] : [{ recipient: 'a@one.test', status: 'delivered', reply: parseReply('250 ok') }],
    );
    const worker = start(transport, { schedule: { baseMs: 5 * MIN } });
    await worker.idle();
    assert.deepEqual((await store.queue.get(entry!.id))?.status, {
      state: 'deferred',
      nextAttemptAt: new Date(T0.getTime() + 5 * MIN),
      attempts: 1,
      lastError: '451 4.7.1 greylisted',
      warnedAt: null,
    });
    assert.ok(await store.queue.raw('<m1@example.org>'), 'the body stays while a recipient is pending');
    await run(worker, new Date(T0.getTime() + 5 * MIN - 1));
    assert.equal(transport.calls.length, 1, 'not before its time');
    await run(worker, new Date(T0.getTime() + 5 * MIN));
    assert.equal(transport.calls.length, 2);
    assert.deepEqual((await store.queue.get(entry!.id))?.status, { state: 'delivered', deliveredAt: now, reply: '250 ok' });
    assert.equal(await store.queue.raw('<m1@example.org>'), undefined);
    assert.deepEqual(dsns, []);
  });

  test('an entry claimed between its round writing it and letting go of it is retried, not left leased', async () => {
    // A slow commit (an fsync on a loaded disk) can finish after the entry is due again: a poll then
    // runs before the round's write returns, while the entry is still in flight here.
    const [entry] = await enqueue('m1', ['a@one.test']);
    const transport = new ScriptedTransport(({ index }) =>
      index === 0 ? [{ recipient: 'a@one.test', status: 'deferred', reply: parseReply('451 4.4.2 no answer') }] : [{ recipient: 'a@one.test', status: 'delivered', reply: parseReply('250 ok') }],
    );
    const queue: QueueRepository = Object.create(store.queue);
    let claimed: (() => void) | undefined;
    queue.claim = async (...args) => {
      const entries = await store.queue.claim(...args);
      claimed?.();
      return entries;
    };
    let raced = false;
    queue.update = async (id, state, owner) => {
      const written = await store.queue.update(id, state, owner);
      if (!raced) {
        raced = true;
        now = new Date(T0.getTime() + 5 * MIN); // due again before the round let go of it
        const polled = new Promise<void>((resolve) => (claimed = resolve));
        worker.kick();
        await polled;
      }
      return written;
    };
    const worker = start(transport, { queue, schedule: { baseMs: 5 * MIN } });
    await worker.idle();
    assert.ok(raced, 'a poll ran while the write was returning');
    assert.equal(transport.calls.length, 1);
    await run(worker, new Date(T0.getTime() + 5 * MIN + 1));
    assert.equal(transport.calls.length, 2, 'retried at the next poll, not after the lease');
    assert.deepEqual((await store.queue.get(entry!.id))?.status, { state: 'delivered', deliveredAt: now, reply: '250 ok' });
  });

  test('backoff doubles per attempt up to the maximum', async () => {
    const [entry] = await enqueue('m1', ['a@one.test']);
    const worker = start(new ScriptedTransport(all('deferred', '421 busy')), { schedule: { baseMs: 5 * MIN, maxMs: 15 * MIN } });
    await worker.idle();
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      const status = (await store.queue.get(entry!.id))!.status;
      assert.equal(status.state, 'deferred');
      if (status.state !== 'deferred') return;
      assert.equal(status.attempts, i + 1);
      waits.push((status.nextAttemptAt.getTime() - now.getTime()) / MIN);
      await run(worker, status.nextAttemptAt);
    }
    assert.deepEqual(waits, [5, 10, 15, 15]);
  });

  test('failed: one DSN to the sender, with every field, and the recipient failed', async () => {
    const [entry] = await enqueue('m1', ['bob@one.test']);
    const reply = '550 5.1.1 <bob@one.test>: no such user';
    const worker = start(new ScriptedTransport(all('failed', reply)));
    await worker.idle();
    assert.deepEqual((await store.queue.get(entry!.id))?.status, { state: 'failed', failedAt: T0, lastError: reply });
    assert.equal(await store.queue.raw('<m1@example.org>'), undefined);
    assert.equal(dsns.length, 1);
    assert.equal(dsns[0]!.kind, 'failed');
    assert.equal(dsns[0]!.sender, 'alice@example.org');
    const email = await PostalMime.parse(dsns[0]!.raw, { attachmentEncoding: 'utf8' });
    assert.deepEqual(email.from, { address: 'MAILER-DAEMON@mx.example.org', name: 'Mail Delivery System' });
    assert.deepEqual(email.to, [{ address: 'alice@example.org', name: '' }]);
    assert.equal(email.subject, 'Undelivered Mail Returned to Sender');
    assert.equal(email.headers.find((h) => h.key === 'auto-submitted')?.value, 'auto-replied');
    assert.equal(email.date, T0.toISOString());
    assert.match(email.text ?? '', /<m1@example\.org>/);
    assert.deepEqual(statusGroups(email), [
      { 'reporting-mta': 'dns; mx.example.org', 'arrival-date': 'Sat, 01 Jun 2024 12:00:00 +0000' },
      {
        'final-recipient': 'rfc822; bob@one.test',
        action: 'failed',
        status: '5.1.1',
        'diagnostic-code': `smtp; ${reply}`,
        'last-attempt-date': 'Sat, 01 Jun 2024 12:00:00 +0000',
      },
    ]);
    const headers = email.attachments.find((a) => a.mimeType === 'text/rfc822-headers')?.content;
    assert.match(String(headers), /Subject: m1/);
    assert.doesNotMatch(String(headers), /body of m1/);
  });

  test('mixed results for one message: one combined DSN for every failure of the round', async () => {
    await enqueue('m1', ['a@one.test', 'b@one.test', 'c@two.test', 'd@two.test', 'e@three.test']);
    const transport = new ScriptedTransport(
      byRecipient({
        'b@one.test': ['failed', '550 5.1.1 no such user'],
        'c@two.test': ['failed', '554 5.7.1 rejected by policy'],
        'd@two.test': ['deferred', '452 4.2.2 mailbox full'],
      }),
    );
    const worker = start(transport);
    await worker.idle();
    assert.equal(transport.calls.length, 3);
    assert.deepEqual(await states(), { 'a@one.test': 'delivered', 'b@one.test': 'failed', 'c@two.test': 'failed', 'd@two.test': 'deferred', 'e@three.test': 'delivered' });
    assert.equal(dsns.length, 1);
    const groups = statusGroups(await PostalMime.parse(dsns[0]!.raw, { attachmentEncoding: 'utf8' }));
    assert.deepEqual(
      groups.slice(1).map((g) => [g['final-recipient'], g.action, g.status]).sort(),
      [
        ['rfc822; b@one.test', 'failed', '5.1.1'],
        ['rfc822; c@two.test', 'failed', '5.7.1'],
      ],
    );
    assert.ok(await store.queue.raw('<m1@example.org>'), 'd@two.test is still pending');
  });

  test('give-up after the configured time: failed, with a DSN that says so; the last retry is at the deadline', async () => {
    const [entry] = await enqueue('m1', ['a@one.test']);
    const worker = start(new ScriptedTransport(all('deferred', '4.4.1 connection refused by mx.one.test[192.0.2.1]:25')), {
      schedule: { baseMs: 10 * MIN, maxMs: HOUR, giveUpAfterMs: HOUR, delayWarningAfterMs: 0 },
    });
    await worker.idle();
    const nextTimes: number[] = [];
    for (;;) {
      const status = (await store.queue.get(entry!.id))!.status;
      if (status.state !== 'deferred') break;
      nextTimes.push((status.nextAttemptAt.getTime() - T0.getTime()) / MIN);
      await run(worker, status.nextAttemptAt);
    }
    // 10, then 10 + 20 = 30, then 30 + 40 = 70 clamped to the deadline at 60.
    assert.deepEqual(nextTimes, [10, 30, 60]);
    const status = (await store.queue.get(entry!.id))!.status;
    assert.equal(status.state, 'failed');
    assert.match(status.state === 'failed' ? status.lastError : '', /^gave up after 4 attempts over 1 hour; last reply: 4\.4\.1 connection refused/);
    assert.equal(dsns.length, 1);
    assert.equal(dsns[0]!.kind, 'failed');
    const email = await PostalMime.parse(dsns[0]!.raw, { attachmentEncoding: 'utf8' });
    assert.match((email.text ?? '').replace(/\s+/g, ' '), /The mail system gave up after 4 attempts over 1 hour\./);
    assert.deepEqual(statusGroups(email)[1], {
      'final-recipient': 'rfc822; a@one.test',
      action: 'failed',
      status: '4.4.7',
      'diagnostic-code': 'X-Twoway; 4.4.1 connection refused by mx.one.test[192.0.2.1]:25',
      'last-attempt-date': 'Sat, 01 Jun 2024 13:00:00 +0000',
    });
    assert.equal(await store.queue.raw('<m1@example.org>'), undefined);
  });

  test('delayed: one warning per recipient, with the give-up time; none after it', async () => {
    const [entry] = await enqueue('m1', ['a@one.test', 'b@one.test']);
    let deliverA = false;
    const transport = new ScriptedTransport(({ recipients }) =>
      recipients.map((recipient) =>
        deliverA && recipient === 'a@one.test' ? { recipient, status: 'delivered', reply: parseReply('250 ok') } : { recipient, status: 'deferred', reply: parseReply('451 4.3.0 try later') },
      ),
    );
    const worker = start(transport, { schedule: { baseMs: 20 * MIN, maxMs: 20 * MIN, delayWarningAfterMs: 30 * MIN, giveUpAfterMs: DAY } });
    await worker.idle();
    await run(worker, new Date(T0.getTime() + 20 * MIN));
    assert.equal(dsns.length, 0, 'not before the warning time');
    await run(worker, new Date(T0.getTime() + 40 * MIN));
    assert.equal(dsns.length, 1);
    assert.equal(dsns[0]!.kind, 'delayed');
    const email = await PostalMime.parse(dsns[0]!.raw, { attachmentEncoding: 'utf8' });
    assert.equal(email.subject, 'Delayed Mail (still being retried)');
    assert.deepEqual(
      statusGroups(email).slice(1).map((g) => [g['final-recipient'], g.action, g.status, g['will-retry-until']]),
      [
        ['rfc822; a@one.test', 'delayed', '4.3.0', 'Sun, 02 Jun 2024 12:00:00 +0000'],
        ['rfc822; b@one.test', 'delayed', '4.3.0', 'Sun, 02 Jun 2024 12:00:00 +0000'],
      ],
    );
    const status = (await store.queue.get(entry!.id))!.status;
    assert.deepEqual(status.state === 'deferred' ? status.warnedAt : null, new Date(T0.getTime() + 40 * MIN));
    await run(worker, new Date(T0.getTime() + 60 * MIN));
    deliverA = true;
    await run(worker, new Date(T0.getTime() + 80 * MIN));
    assert.equal(dsns.length, 1, 'warned once only');
    assert.deepEqual(await states(), { 'a@one.test': 'delivered', 'b@one.test': 'deferred' });
  });

  test('null sender: never a DSN (failed, delayed or given up)', async () => {
    await enqueue('m1', ['a@one.test', 'b@one.test'], '');
    const worker = start(new ScriptedTransport(byRecipient({ 'a@one.test': ['failed', '550 no'], 'b@one.test': ['deferred', '451 later'] })), {
      schedule: { baseMs: 10 * MIN, maxMs: 10 * MIN, delayWarningAfterMs: 5 * MIN, giveUpAfterMs: 30 * MIN },
    });
    await worker.idle();
    for (let t = 10; t <= 30; t += 10) await run(worker, new Date(T0.getTime() + t * MIN));
    assert.deepEqual(await states(), { 'a@one.test': 'failed', 'b@one.test': 'failed' });
    assert.deepEqual(dsns, []);
    assert.equal(await store.queue.raw('<m1@example.org>'), undefined);
  });

  test('per-domain concurrency and the active set are bounded; the rest waits and then goes', async () => {
    for (let i = 0; i < 6; i++) await enqueue(`busy${i}`, [`r${i}@busy.test`]);
    await enqueue('multi', ['a@other.test', 'b@other.test', 'c@other.test', 'd@other.test']);
    const transport = new ScriptedTransport(all('delivered', '250 ok'));
    transport.hold();
    const worker = start(transport, { perDomainConcurrency: 2, maxActive: 5 });
    await until(() => transport.active === 3, 'three calls in flight');
    assert.equal(transport.activeByDomain.get('busy.test'), 2);
    assert.equal(transport.activeRecipients, 5, 'two busy.test recipients and three of the four at other.test');
    worker.kick(); // a poll now must not start anything: the active set is full
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(transport.calls.length, 3);
    transport.open();
    await worker.idle();
    assert.equal(transport.maxByDomain.get('busy.test'), 2);
    assert.ok(transport.maxActiveRecipients <= 5, `at most 5 recipients in flight, saw ${transport.maxActiveRecipients}`);
    assert.ok(Object.values(await states()).every((s) => s === 'delivered'));
    const other = transport.calls.filter((c) => c.domain === 'other.test').map((c) => c.recipients.length);
    assert.equal(other.reduce((a, b) => a + b, 0), 4);
    assert.ok(other.length >= 2, 'the message was split to fit the active set');
  });

  test('a saturated domain does not hold back the others (head-of-line)', async () => {
    for (let i = 0; i < 5; i++) await enqueue(`busy${i}`, [`r${i}@busy.test`]);
    now = new Date(T0.getTime() + 1); // queued later, so last in due order
    await enqueue('free', ['x@free.test']);
    const free = new ScriptedTransport(all('delivered', '250 ok'));
    const busy = new ScriptedTransport(all('delivered', '250 ok'));
    busy.hold();
    const worker = start(busy, { route: (domain) => (domain === 'busy.test' ? busy : free), perDomainConcurrency: 1, batchSize: 2 });
    await until(() => busy.active === 1, 'one busy.test call');
    worker.kick();
    await until(() => free.calls.length === 1, 'the free.test message to go');
    assert.equal(busy.calls.length, 1);
    busy.open();
    await worker.idle();
    assert.equal(busy.calls.length, 5);
    assert.equal(busy.maxByDomain.get('busy.test'), 1);
  });

  test('a backlog for a domain with one free call: each poll claims what starts, none claimed only to be released', async () => {
    for (let i = 0; i < 6; i++) await enqueue(`m${i}`, [`r${i}@busy.test`]);
    await enqueue('two', ['a@busy.test', 'b@busy.test']);
    const busy = new ScriptedTransport(all('delivered', '250 ok'));
    let claimed = 0;
    let released = 0;
    const queue = Object.create(store.queue) as typeof store.queue;
    queue.claim = async (...args) => {
      const entries = await store.queue.claim(...args);
      claimed += entries.length;
      return entries;
    };
    queue.release = (ids, owner) => {
      released += ids.length;
      return store.queue.release(ids, owner);
    };
    const worker = start(busy, { queue, perDomainConcurrency: 1, batchSize: 50 });
    await worker.idle();
    assert.deepEqual(
      busy.calls.map((c) => c.recipients),
      [['r0@busy.test'], ['r1@busy.test'], ['r2@busy.test'], ['r3@busy.test'], ['r4@busy.test'], ['r5@busy.test'], ['a@busy.test', 'b@busy.test']],
      'one call at a time, oldest first, the last message in one call',
    );
    assert.equal(claimed, 8);
    assert.equal(released, 0);
    assert.ok(Object.values(await states()).every((s) => s === 'delivered'));
  });

  test('a kick for a message whose domains are all busy polls nothing; the call that ends takes it', async () => {
    await enqueue('first', ['r1@busy.test']);
    const busy = new ScriptedTransport(all('delivered', '250 ok'));
    const free = new ScriptedTransport(all('delivered', '250 ok'));
    busy.hold();
    let claims = 0;
    // The real store, its claims counted: a skipped poll is one that never reaches it.
    const queue = Object.create(store.queue) as typeof store.queue;
    queue.claim = (...args) => {
      claims++;
      return store.queue.claim(...args);
    };
    const worker = start(busy, { queue, route: (domain) => (domain === 'busy.test' ? busy : free), perDomainConcurrency: 1 });
    await until(() => busy.active === 1, 'one busy.test call');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const before = claims;
    await enqueue('second', ['r2@BUSY.test']);
    worker.kick(['r2@BUSY.test']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(claims, before, 'no poll while busy.test is at its limit');
    await enqueue('third', ['x@free.test', 'r3@busy.test']);
    worker.kick(['x@free.test', 'r3@busy.test']);
    await until(() => free.calls.length === 1, 'a kick with a free domain to poll');
    assert.equal(busy.calls.length, 1);
    busy.open();
    await worker.idle();
    assert.deepEqual(busy.calls.flatMap((c) => c.recipients).sort(), ['r1@busy.test', 'r2@BUSY.test', 'r3@busy.test']);
    assert.ok(Object.values(await states()).every((s) => s === 'delivered'));
  });

  test('a transport that rejects, or a route that throws: every recipient of the call deferred', async () => {
    await enqueue('m1', ['a@one.test', 'b@one.test', 'c@two.test']);
    const broken = new ScriptedTransport(() => new Error('disk full'));
    const worker = start(broken, {
      route: (domain) => {
        if (domain === 'two.test') throw new Error('no route');
        return broken;
      },
    });
    await worker.idle();
    const entries = await store.queue.list();
    assert.deepEqual(
      entries.map((e) => [e.recipient, e.status.state, e.status.state === 'deferred' ? e.status.lastError : '']),
      [
        ['a@one.test', 'deferred', '4.3.0 local delivery error: disk full'],
        ['b@one.test', 'deferred', '4.3.0 local delivery error: disk full'],
        ['c@two.test', 'deferred', '4.3.0 local delivery error: no route'],
      ],
    );
    assert.deepEqual(dsns, []);
  });

  test('a recipient the transport leaves out is deferred, not lost', async () => {
    await enqueue('m1', ['a@one.test', 'B@one.test']);
    const worker = start(new ScriptedTransport(() => [{ recipient: 'b@one.test', status: 'delivered', reply: parseReply('250 ok') }]));
    await worker.idle();
    assert.deepEqual(await states(), { 'a@one.test': 'deferred', 'B@one.test': 'delivered' });
  });

  test('notify failing: the failed recipient is deferred and reported on a later round', async () => {
    const [entry] = await enqueue('m1', ['a@one.test']);
    let failNotify = true;
    const worker = start(new ScriptedTransport(all('failed', '550 5.1.1 no')), {
      schedule: { baseMs: 5 * MIN },
      notify: async (dsn) => {
        if (failNotify) throw new Error('mailbox store down');
        dsns.push(dsn);
      },
    });
    await worker.idle();
    const status = (await store.queue.get(entry!.id))!.status;
    assert.equal(status.state, 'deferred');
    assert.ok(await store.queue.raw('<m1@example.org>'));
    failNotify = false;
    await run(worker, new Date(T0.getTime() + 5 * MIN));
    assert.equal((await store.queue.get(entry!.id))!.status.state, 'failed');
    assert.equal(dsns.length, 1);
  });

  test('stop() waits for the deliveries in flight, then takes no new work; a new worker resumes', async () => {
    await enqueue('m1', ['a@one.test']);
    const transport = new ScriptedTransport(all('delivered', '250 ok'));
    transport.hold();
    const worker = start(transport);
    await until(() => transport.active === 1, 'a call in flight');
    let stopped = false;
    const stopping = worker.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(stopped, false, 'stop waits for the call');
    transport.open();
    await stopping;
    assert.deepEqual(await states(), { 'a@one.test': 'delivered' });

    await enqueue('m2', ['b@one.test']);
    worker.kick();
    await worker.idle();
    assert.equal(transport.calls.length, 1, 'a stopped worker takes nothing');
    // What was due when the last worker stopped is picked up by the next one at start.
    const next = start(transport);
    await next.idle();
    assert.deepEqual(await states(), { 'a@one.test': 'delivered', 'b@one.test': 'delivered' });
  });

  test('several workers on one store (other processes): every entry delivered once', async () => {
    for (let i = 0; i < 30; i++) await enqueue(`w${i}`, [`r${i}@one.test`]);
    const transports = [0, 1, 2].map(() => new ScriptedTransport(all('delivered', '250 ok')));
    const peers = transports.map((t, i) => start(t, { owner: `node-${i}`, maxActive: 4, perDomainConcurrency: 2 }));
    for (let round = 0; round < 20 && Object.values(await states()).some((s) => s !== 'delivered'); round++) {
      for (const w of peers) w.kick();
      await Promise.all(peers.map((w) => w.idle()));
    }
    const calls = transports.flatMap((t) => t.calls.map((c) => c.messageId));
    assert.equal(calls.length, 30, 'one transport call per message, over all workers');
    assert.equal(new Set(calls).size, 30);
    assert.ok(Object.values(await states()).every((s) => s === 'delivered'));
  });

  test('a worker that hangs past its lease loses the entry to another; its late write is refused', async () => {
    await enqueue('m1', ['a@one.test']);
    const hung = new ScriptedTransport(all('deferred', '451 4.4.1 too late'));
    hung.hold();
    const logs: string[] = [];
    const a = start(hung, { owner: 'node-a', leaseMs: MIN, log: (_obj, msg) => logs.push(msg) });
    await until(() => hung.active === 1, 'node-a delivering');
    const fast = new ScriptedTransport(all('delivered', '250 ok'));
    const b = start(fast, { owner: 'node-b', leaseMs: MIN });
    await run(b);
    assert.equal(fast.calls.length, 0, "node-a's lease holds");
    await run(b, new Date(T0.getTime() + 2 * MIN));
    assert.equal(fast.calls.length, 1, 'taken over after the lease expired');
    assert.deepEqual(await states(), { 'a@one.test': 'delivered' });
    hung.open();
    await a.idle();
    assert.deepEqual(await states(), { 'a@one.test': 'delivered' }, "node-a's late outcome is not recorded");
    assert.ok(logs.some((m) => m.startsWith('late write refused')), 'and it is logged');
  });

  test('options are checked at start', () => {
    const transport = new ScriptedTransport(all('delivered', '250'));
    assert.throws(() => start(transport, { maxActive: 0 }), RangeError);
    assert.throws(() => start(transport, { perDomainConcurrency: 1.5 }), RangeError);
    assert.throws(() => start(transport, { schedule: { baseMs: -1 } }), RangeError);
  });
});
