/**
 * CPU per delivered message of the queue worker with a backlog at one busy destination, two
 * checkouts side by side: the worker's polls, claims, reads, outcomes and body drops on a real
 * SQLite store, with a transport that answers 250 after `BENCH_DELAY_MS` (the SMTP relay's
 * situation: submissions outpace delivery to one domain at its concurrency limit).
 *
 *   BENCH_TREES=/tmp/base,. npx tsx bench/queue-worker-cpu.ts
 *
 * Each tree needs this file and bench/lib/ (copy them into a base tree that predates them). Per tree, a child process
 * (this file in child mode, importing that tree's src/) queues `BENCH_BACKLOG` messages for one
 * domain, starts the worker (20 calls per domain, 100 recipients in flight, as configured by
 * default), and queues one more message for each one delivered until `BENCH_MESSAGES` were
 * delivered; CPU (process.cpuUsage) is counted over that phase. The children run one after
 * another, in `BENCH_PAIRS` alternating pairs.
 */
import { childOrParent, median, runTreePairs } from './lib/tree-pairs.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const messages = Number(process.env.BENCH_MESSAGES ?? 3000);
const backlog = Number(process.env.BENCH_BACKLOG ?? 300);
const delayMs = Number(process.env.BENCH_DELAY_MS ?? 2);
const pairs = Number(process.env.BENCH_PAIRS ?? 3);

interface Sample {
  cpuMsPerMsg: number;
  seconds: number;
}

async function child(): Promise<void> {
  const { openStore } = (await import('../src/store/open.ts')) as typeof import('../src/store/open.ts');
  const { startQueueWorker } = (await import('../src/delivery/queue-worker.ts')) as typeof import('../src/delivery/queue-worker.ts');
  const { queueMessageId } = (await import('../src/services/outbound.ts')) as typeof import('../src/services/outbound.ts');
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-queue-worker-'));
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  const raw = Buffer.from(`From: <ann@a.test>\r\nTo: <bea@b.test>\r\nSubject: bench\r\n\r\n${'x'.repeat(78)}\r\n`.padEnd(10 * 1024, 'y'));
  const rcpt = 'bea@b.test';
  let delivered = 0;
  let queued = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => (done = r));
  const enqueue = async () => {
    queued++;
    const now = new Date();
    await store.queue.enqueue({ messageId: queueMessageId(now), sender: 'ann@a.test', recipients: [rcpt], raw, at: now });
  };
  for (let i = 0; i < backlog; i++) await enqueue();
  const transport = {
    async deliver(_domain: string, _message: unknown, recipients: string[]) {
      await new Promise((r) => setTimeout(r, delayMs));
      return recipients.map((recipient) => ({ recipient, status: 'delivered' as const, reply: { code: 250, enhanced: '2.0.0', text: 'Ok' } }));
    },
  };
  let measuring = false;
  let cpu0 = process.cpuUsage();
  let t0 = process.hrtime.bigint();
  const worker = startQueueWorker({
    queue: store.queue,
    route: () => transport as never,
    perDomainConcurrency: 20,
    maxActive: 100,
    reportingMta: 'a.test',
    notify: async () => undefined,
    log: (obj, msg) => {
      if (msg === 'recipient delivered') {
        delivered++;
        if (!measuring && delivered >= backlog) {
          measuring = true;
          delivered = 0;
          cpu0 = process.cpuUsage();
          t0 = process.hrtime.bigint();
        }
        if (measuring && delivered >= messages) done();
        else if (queued < backlog * 2 + messages) void enqueue().then(() => worker.kick([rcpt]));
      } else if (/fail|could not|refused/.test(msg)) process.stderr.write(`${msg} ${JSON.stringify(obj)}\n`);
    },
  });
  await finished;
  const cpu = process.cpuUsage(cpu0);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await worker.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify({ cpuMsPerMsg: (cpu.user + cpu.system) / 1000 / messages, seconds } satisfies Sample)}\n`);
}

function parent(): void {
  const samples = runTreePairs<Sample>('queue-worker-cpu.ts', pairs, (s) => `CPU ${s.cpuMsPerMsg.toFixed(3)} ms/msg, ${(messages / s.seconds).toFixed(0)} msg/s`);
  process.stdout.write(`# queue worker per delivered message, backlog ${backlog} at one domain, ${messages} measured, transport ${delayMs} ms, ${pairs} alternating pair(s), medians\n\n`);
  process.stdout.write('| tree | CPU ms/msg | msg/s |\n|---|---:|---:|\n');
  for (const [tree, ss] of samples) {
    process.stdout.write(`| ${tree} | ${median(ss.map((s) => s.cpuMsPerMsg)).toFixed(3)} | ${median(ss.map((s) => messages / s.seconds)).toFixed(0)} |\n`);
  }
}

childOrParent(import.meta.url, child, parent);
