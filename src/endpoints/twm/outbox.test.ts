/**
 * The sender's side after the notice (docs/protocol.md 7.2-7.5) on a real
 * store with a controlled clock: fetches before and after expiry, receipts
 * where the first final state wins, `expired` and `unconfirmed` (which need
 * a day to pass), one status message per expiry, and the body dropped when
 * nobody can fetch it any more.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TwmError } from '../../core/twm-types.ts';
import { testBackends, type TestBackend } from '../../store/test-backends.ts';
import type { Store } from '../../store/types.ts';
import { createTwmOutbox } from './outbox.ts';

const HOUR = 3_600_000;
const signer = { keyid: 'twm1._twoway.b.test', domain: 'b.test' };

describe('TWM outbox', () => {
  // SQLite only: the logic under test sits above the store, whose own suite runs on both backends.
  let backend: TestBackend;
  let store: Store;
  let clock = new Date('2026-11-30T10:00:00Z');
  const sent: Array<{ to: string; raw: string }> = [];

  before(async () => {
    backend = (await testBackends()).find((b) => b.name === 'sqlite')!;
    store = await backend.open();
  });
  after(async () => {
    await store.close();
    await backend.cleanup();
  });

  /** The outbox's writes, so that a test can wait for one the hooks do not wait for (the fetch's `fetched`). */
  const writes: Array<Promise<unknown>> = [];
  const recorded = () =>
    new Proxy(store.twmOut, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key);
        if (typeof value !== 'function') return value;
        if (key !== 'transition') return value.bind(target);
        return (...args: unknown[]) => {
          const write = (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          writes.push(write);
          return write;
        };
      },
    });
  const outbox = () =>
    createTwmOutbox({
      outbox: recorded(),
      hostname: 'mx.a.test',
      notifyUser: async (to, raw) => void sent.push({ to, raw: raw.toString() }),
      now: () => clock,
    });

  async function notice(id: string, recipients: string[]) {
    const createdAt = clock;
    await store.twmOut.create({
      notice: {
        id,
        messageId: `m-${id}`,
        sender: 'ann@a.test',
        domain: 'b.test',
        content: Buffer.from('{}'),
        subject: `subject ${id}`,
        messageIdHeader: `<${id}@a.test>`,
        size: 5,
        sha256: '0'.repeat(64),
        createdAt,
        expiresAt: new Date(createdAt.getTime() + 2 * HOUR),
      },
      recipients,
      raw: Buffer.from('hello'),
    });
    await store.twmOut.transition(id, recipients, { from: ['queued'], to: 'pending' }, clock);
  }
  const states = async (id: string) => Object.fromEntries((await store.twmOut.get(id))!.recipients.map((r) => [r.recipient, r.state]));

  it('serves the body until expiry, marking recipients fetched; after expiry 410', async () => {
    await notice('n1aaaaaaaaaaaaaaaaaaaa', ['bea@b.test', 'ben@b.test']);
    const body = await outbox().hooks.fetch('n1aaaaaaaaaaaaaaaaaaaa', { rcpt: ['bea@b.test'] }, signer);
    assert.equal(body.toString(), 'hello');
    await Promise.all(writes);
    assert.deepEqual(await states('n1aaaaaaaaaaaaaaaaaaaa'), { 'bea@b.test': 'fetched', 'ben@b.test': 'pending' });
    clock = new Date(clock.getTime() + 3 * HOUR);
    await assert.rejects(outbox().hooks.fetch('n1aaaaaaaaaaaaaaaaaaaa', { rcpt: ['ben@b.test'] }, signer), (e: unknown) => e instanceof TwmError && e.problemCode === 'expired');
  });

  it('serves the body without waiting for the `fetched` write to commit; the write is made before the answer', async () => {
    await notice('n9aaaaaaaaaaaaaaaaaaaa', ['bea@b.test']);
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let called = 0;
    const slow = new Proxy(store.twmOut, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key);
        if (typeof value !== 'function') return value;
        if (key !== 'transition') return value.bind(target);
        return async (...args: unknown[]) => {
          called++;
          // A commit that takes as long as the test wants (a slow fsync).
          await held;
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const hooks = createTwmOutbox({ outbox: slow, hostname: 'mx.a.test', notifyUser: async () => undefined, now: () => clock }).hooks;
    const served = await Promise.race([
      hooks.fetch('n9aaaaaaaaaaaaaaaaaaaa', { rcpt: ['bea@b.test'] }, signer),
      new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2000)),
    ]);
    assert.notEqual(served, 'waited', 'the body waited for the commit of `fetched`');
    assert.equal(served.toString(), 'hello');
    assert.equal(called, 1, 'the `fetched` write was started before the body was served');
    assert.deepEqual(await states('n9aaaaaaaaaaaaaaaaaaaa'), { 'bea@b.test': 'pending' });
    release();
    for (let i = 0; i < 100 && (await states('n9aaaaaaaaaaaaaaaaaaaa'))['bea@b.test'] !== 'fetched'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await states('n9aaaaaaaaaaaaaaaaaaaa'), { 'bea@b.test': 'fetched' });
  });

  it('expiry: open recipients expire at once, fetched ones are unconfirmed a day later; one status message', async () => {
    sent.length = 0;
    await outbox().sweep();
    assert.deepEqual(await states('n1aaaaaaaaaaaaaaaaaaaa'), { 'bea@b.test': 'fetched', 'ben@b.test': 'expired' });
    assert.equal(sent.length, 0, 'not yet: bea may still send a receipt');
    clock = new Date(clock.getTime() + 24 * HOUR);
    await outbox().sweep();
    assert.deepEqual(await states('n1aaaaaaaaaaaaaaaaaaaa'), { 'bea@b.test': 'unconfirmed', 'ben@b.test': 'expired' });
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.to, 'ann@a.test');
    assert.match(sent[0]!.raw, /Subject: =\?UTF-8\?B\?/);
    assert.match(sent[0]!.raw, /bea@b\.test: fetched, not confirmed/);
    assert.match(sent[0]!.raw, /ben@b\.test: expired/);
    assert.match(sent[0]!.raw, /Original Message-ID: <n1aaaaaaaaaaaaaaaaaaaa@a\.test>/);
    await outbox().sweep();
    assert.equal(sent.length, 1, 'only one');
    assert.equal((await store.twmOut.get('n1aaaaaaaaaaaaaaaaaaaa'))!.bodyRemoved, true);
  });

  it('receipts: the first final state wins; failed ones get a status message; the body goes with the last', async () => {
    sent.length = 0;
    await notice('n2aaaaaaaaaaaaaaaaaaaa', ['bea@b.test', 'ben@b.test']);
    const o = outbox();
    await o.hooks.receipt({ id: 'n2aaaaaaaaaaaaaaaaaaaa', results: [{ rcpt: 'bea@b.test', status: 'delivered' }] }, signer);
    await o.hooks.receipt({ id: 'n2aaaaaaaaaaaaaaaaaaaa', results: [{ rcpt: 'bea@b.test', status: 'declined' }] }, signer);
    assert.equal((await states('n2aaaaaaaaaaaaaaaaaaaa'))['bea@b.test'], 'delivered');
    assert.equal((await store.twmOut.get('n2aaaaaaaaaaaaaaaaaaaa'))!.bodyRemoved, false, 'ben can still fetch');
    await o.hooks.receipt({ id: 'n2aaaaaaaaaaaaaaaaaaaa', results: [{ rcpt: 'ben@b.test', status: 'failed', error: 'digest-mismatch' }] }, signer);
    assert.deepEqual(await states('n2aaaaaaaaaaaaaaaaaaaa'), { 'bea@b.test': 'delivered', 'ben@b.test': 'failed' });
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.raw, /could not be delivered/);
    assert.match(sent[0]!.raw, /ben@b\.test: failed \(the recipient server could not use the message: digest-mismatch\)/);
    assert.equal((await store.twmOut.get('n2aaaaaaaaaaaaaaaaaaaa'))!.bodyRemoved, true);
  });

  it('an unknown id is refused for fetches, and unknown to the endpoint for receipts', async () => {
    await assert.rejects(outbox().hooks.fetch('nosuchidnosuchidnosuch', { rcpt: ['bea@b.test'] }, signer), (e: unknown) => e instanceof TwmError && e.problemCode === 'unknown-id');
    // The endpoint refuses unknown ids with 404 before the receipt hook (step 9, outboundNotice).
    assert.equal(await outbox().hooks.outboundNotice('nosuchidnosuchidnosuch'), undefined);
  });
});
