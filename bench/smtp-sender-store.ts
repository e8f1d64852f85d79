/**
 * CPU and write system calls per SMTP-relayed message of the sending server's store work alone,
 * two checkouts side by side (bench/smtp-relay.ts measures the whole relay, where both servers,
 * the driver and whatever else runs on the machine share its cores; this runs only the
 * statements).
 *
 *   BENCH_TREES=/tmp/base,. npx tsx bench/smtp-sender-store.ts
 *
 * Each tree needs this file and bench/lib/ (copy them into a base tree that predates them). Per tree, a child process
 * (this file in child mode, importing that tree's src/) opens a fresh SQLite store and runs, per
 * message, what the sending server's store does for one SMTP recipient: enqueue with the Sent
 * copy (services/outbound.ts), the worker's claim and read of the message (queue-worker.ts,
 * queue-round.ts), the remote transport's look for a TWM notice, the `delivered` state and the
 * body drop (with the outcome where the tree's `update` takes `dropBodyOf`, else on its own). `BENCH_CONCURRENCY` messages at a time, so group commits batch as on a server. The
 * children run one after another, in `BENCH_PAIRS` alternating pairs, each a warm-up then
 * `BENCH_MESSAGES` measured.
 *
 * Output: per tree the median of its pairs: CPU ms per message (process.cpuUsage) and write
 * system calls and KB per message (/proc/self/io).
 */
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
  const { openStore } = (await import('../src/store/open.ts')) as typeof import('../src/store/open.ts');
  const { queueMessageId } = (await import('../src/services/outbound.ts')) as typeof import('../src/services/outbound.ts');
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-smtp-sender-store-'));
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  const user = await store.users.create({ address: 'ann@a.test', passwordHash: 'x', mode: 'open' });
  const raw = Buffer.from(`From: <ann@a.test>\r\nTo: <bea@b.test>\r\nSubject: bench\r\n\r\n${'x'.repeat(78)}\r\n`.padEnd(10 * 1024, 'y'));
  const rcpt = 'bea@b.test';
  const owner = 'bench/1:0';
  const dropsWithOutcome = store.queue.update.length >= 4;
  const one = async (): Promise<void> => {
    const now = new Date();
    const messageId = queueMessageId(now);
    const copy = { userId: user.id, mailbox: 'Sent' as const, raw, flags: ['\\Seen'], sender: 'ann@a.test', from: 'ann@a.test', subject: 'bench', receivedAt: now, firstContact: false };
    await store.queue.enqueue({ messageId, sender: 'ann@a.test', recipients: [rcpt], raw, at: now, copy });
    // The worker claims what is due, leaving out the entries it has in flight: here, as many as run at once.
    const claimed = await store.queue.claim(new Date(), 1, { owner, until: new Date(Date.now() + 120_000) });
    for (const entry of claimed) {
      const message = await store.queue.message(entry.messageId);
      if (message?.raw.length !== raw.length) throw new Error('the message was not read back');
      await store.twmOut.findByMessage(entry.messageId, 'b.test');
      // As the tree's worker does it: the body drop in the outcome's commit (update's 4th parameter), or on its own after it.
      if (dropsWithOutcome) {
        await store.queue.update(entry.id, { state: 'delivered', deliveredAt: new Date(), reply: '250 2.0.0 Ok' }, owner, entry.messageId);
      } else {
        await store.queue.update(entry.id, { state: 'delivered', deliveredAt: new Date(), reply: '250 2.0.0 Ok' }, owner);
        await (store.queue as unknown as OlderQueue).removeMessageIfDone(entry.messageId);
      }
    }
  };
  const sample = await measureStoreWork(one, { warmup, messages, concurrency });
  const left = await store.queue.list({ state: 'scheduled' });
  if (left.length > 0) throw new Error(`${left.length} entries left undelivered`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(sample)}\n`);
}

function parent(): void {
  reportStoreWork('smtp-sender-store.ts', pairs, `sender store work per SMTP message: ${messages} messages after ${warmup}, ${concurrency} at a time`);
}

childOrParent(import.meta.url, child, parent);
