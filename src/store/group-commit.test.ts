/** GroupCommit in isolation: batching, ordering of results, fallback. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { GroupCommit } from './group-commit.ts';

function fakeCommit(opts: { failOn?: number } = {}) {
  const batches: number[][] = [];
  const commit = async (items: number[]): Promise<string[]> => {
    batches.push([...items]);
    await sleep(5); // a transaction takes time; calls arriving meanwhile must queue up
    if (opts.failOn !== undefined && items.includes(opts.failOn)) throw new Error(`bad ${opts.failOn}`);
    return items.map((i) => `r${i}`);
  };
  return { batches, commit };
}

test('calls made while a transaction runs share the next one', async () => {
  const { batches, commit } = fakeCommit();
  const gc = new GroupCommit(commit);
  const first = Array.from({ length: 100 }, (_, i) => gc.submit([i]));
  await sleep(1);
  const second = Array.from({ length: 100 }, (_, i) => gc.submit([100 + i, 200 + i]));
  const results = await Promise.all([...first, ...second]);
  assert.deepEqual(results[0], ['r0']);
  assert.deepEqual(results[150], ['r150', 'r250']);
  assert.equal(batches.length, 2, 'two transactions for 200 calls');
  assert.equal(batches[0]!.length, 100);
  assert.equal(batches[1]!.length, 200);
});

test('maxItems bounds a transaction, never splitting a caller', async () => {
  const { batches, commit } = fakeCommit();
  const gc = new GroupCommit(commit, 10);
  await Promise.all(Array.from({ length: 7 }, (_, i) => gc.submit([i * 10, i * 10 + 1, i * 10 + 2])));
  assert.deepEqual(
    batches.map((b) => b.length),
    [9, 9, 3],
  );
  const big = await gc.submit(Array.from({ length: 25 }, (_, i) => i));
  assert.equal(big.length, 25, 'a caller larger than maxItems still commits in one go');
});

test('a failed batch is retried per caller so only the bad caller fails', async () => {
  const { batches, commit } = fakeCommit({ failOn: 3 });
  const gc = new GroupCommit(commit);
  const settled = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => gc.submit([i])));
  assert.deepEqual(
    settled.map((s) => s.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
  );
  assert.deepEqual(batches[0], [0, 1, 2, 3, 4, 5]);
  assert.equal(batches.length, 7);
});

test('drain waits for everything queued', async () => {
  const { commit } = fakeCommit();
  const gc = new GroupCommit(commit);
  let done = 0;
  for (let i = 0; i < 5; i++) void gc.submit([i]).then(() => done++);
  await gc.drain();
  assert.equal(done, 5);
  assert.deepEqual(await gc.submit([]), []);
});

/** A commit that records when each round ran, and a sync whose answers the test releases. */
function withSync() {
  const log: string[] = [];
  const syncs: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  const commit = async (items: number[]): Promise<string[]> => {
    log.push(`commit ${items.join(',')}`);
    if (items.includes(99)) throw new Error('bad 99');
    return items.map((i) => `r${i}`);
  };
  const sync = () =>
    new Promise<void>((resolve, reject) => {
      log.push(`sync ${syncs.length}`);
      syncs.push({ resolve, reject });
    });
  return { log, syncs, commit, sync };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('with a sync step, the next round waits for the previous fsync', async () => {
  const { log, syncs, commit, sync } = withSync();
  const gc = new GroupCommit(commit, 500, sync);
  const a = gc.submit([1]);
  await settle();
  const b = gc.submit([2]);
  await settle();
  assert.deepEqual(log, ['commit 1', 'sync 0'], 'the second round waits');
  syncs[0]!.resolve();
  assert.deepEqual(await a, ['r1']);
  await settle();
  await settle();
  assert.deepEqual(log, ['commit 1', 'sync 0', 'commit 2', 'sync 1']);
  syncs[1]!.resolve();
  assert.deepEqual(await b, ['r2']);
});

test('with a sync step, a failed fsync fails its whole round: the committed items are not stored again', async () => {
  const { log, syncs, commit, sync } = withSync();
  const gc = new GroupCommit(commit, 500, sync);
  const all = Promise.allSettled([gc.submit([1]), gc.submit([2])]);
  await settle();
  syncs[0]!.reject(new Error('EIO'));
  const settled = await all;
  assert.deepEqual(
    settled.map((s) => s.status),
    ['rejected', 'rejected'],
  );
  assert.deepEqual(log, ['commit 1,2', 'sync 0']);
});

test('with a sync step, a failed shared transaction is retried per caller, each retry synced', async () => {
  const { log, syncs, commit, sync } = withSync();
  const gc = new GroupCommit(commit, 500, sync);
  const all = Promise.allSettled([gc.submit([1]), gc.submit([99]), gc.submit([3])]);
  for (let i = 0; i < 6; i++) {
    await settle();
    for (const s of syncs) s.resolve();
  }
  const settled = await all;
  assert.deepEqual(
    settled.map((s) => s.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.deepEqual(log, ['commit 1,99,3', 'commit 1', 'sync 0', 'commit 99', 'commit 3', 'sync 1']);
});
