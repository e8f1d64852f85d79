/**
 * CPU and write system calls per TWM message of the sender's store work alone, two checkouts side
 * by side (bench/twm-delivery.ts measures the whole exchange, where both servers, the driver and
 * whatever else runs on the machine share its cores; this runs only the statements).
 *
 *   BENCH_TREES=/tmp/base,. npx tsx bench/twm-sender-store.ts
 *
 * Each tree needs this file and bench/lib/ (copy them into a base tree that predates them). Per tree, a child process
 * (this file in child mode, importing that tree's src/) opens a fresh SQLite store and runs, per
 * message, what the sending server's store does for one TWM recipient: enqueue (the queue's copy),
 * the router's lookup of notices, the notice's create (its body, or since migration 0022 the
 * queue's), `accepted`, the queue entry `delivered` and its body drop, the fetch (servable,
 * `fetched`), the receipt (facts, `delivered`, which drops the body). `BENCH_CONCURRENCY`
 * messages at a time, so group commits batch as on a server. The children run one after another,
 * in `BENCH_PAIRS` alternating pairs, each a warm-up then `BENCH_MESSAGES` measured.
 *
 * Output: per tree the median of its pairs: CPU ms per message (process.cpuUsage) and write
 * system calls and KB per message (/proc/self/io).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureStoreWork, reportStoreWork, type OlderQueue } from './lib/store-work.ts';
import { childOrParent } from './lib/tree-pairs.ts';

const messages = Number(process.env.BENCH_MESSAGES ?? 2000);
const warmup = Number(process.env.BENCH_WARMUP ?? 2000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
const pairs = Number(process.env.BENCH_PAIRS ?? 3);

async function child(): Promise<void> {
  // This tree's code: the store, and the queue message id if the tree has one of its own.
  const { openStore } = (await import('../src/store/open.ts')) as typeof import('../src/store/open.ts');
  const outbound = (await import('../src/services/outbound.ts')) as Record<string, unknown>;
  const idOf = typeof outbound.queueMessageId === 'function' ? (outbound.queueMessageId as (at: Date) => string) : () => randomBytes(12).toString('hex');
  const { noticeId } = (await import('../src/delivery/twm-transport.ts')) as typeof import('../src/delivery/twm-transport.ts');
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-sender-store-'));
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  const raw = Buffer.from(`From: <ann@a.test>\r\nTo: <bea@b.test>\r\nSubject: bench\r\n\r\n${'x'.repeat(78)}\r\n`.padEnd(10 * 1024, 'y'));
  const rcpt = 'bea@b.test';
  const dropsWithOutcome = store.queue.update.length >= 4;
  const one = async (): Promise<void> => {
    const now = new Date();
    const messageId = idOf(now);
    const [entry] = await store.queue.enqueue({ messageId, sender: 'ann@a.test', recipients: [rcpt], raw, at: now });
    await store.twmOut.findByMessage(messageId, 'b.test');
    const id = noticeId(now);
    const created = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const input = {
      notice: { id, messageId, sender: 'ann@a.test', domain: 'b.test', content: Buffer.from(`{"id":"${id}"}`), subject: 'bench', messageIdHeader: null, size: raw.length, sha256: 'ab'.repeat(32), createdAt: created, expiresAt: new Date(created.getTime() + 7 * 86_400_000) },
      recipients: [rcpt],
      raw,
      bodyInQueue: true,
    };
    await store.twmOut.create(input);
    await store.twmOut.transition(id, [rcpt], { from: ['queued'], to: 'accepted' }, new Date());
    // As the tree's worker does it: the body drop in the outcome's commit (update's 4th parameter), or on its own after it.
    await store.queue.update(entry!.id, { state: 'delivered', deliveredAt: new Date(), reply: '250 TWM' }, undefined, messageId);
    if (!dropsWithOutcome) await (store.queue as unknown as OlderQueue).removeMessageIfDone(messageId);
    const served = await store.twmOut.servable(id);
    if (served?.body?.length !== raw.length) throw new Error('the body was not served');
    await store.twmOut.transition(id, [rcpt], { from: ['queued', 'accepted', 'pending'], to: 'fetched' }, new Date());
    await store.twmOut.facts(id);
    await store.twmOut.transition(id, [rcpt], { from: ['queued', 'accepted', 'pending', 'fetched'], to: 'delivered' }, new Date());
  };
  const sample = await measureStoreWork(one, { warmup, messages, concurrency });
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(sample)}\n`);
}

function parent(): void {
  reportStoreWork('twm-sender-store.ts', pairs, `sender store work per TWM message: ${messages} messages after ${warmup}, ${concurrency} at a time`);
}

childOrParent(import.meta.url, child, parent);
