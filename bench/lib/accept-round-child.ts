/**
 * One run of bench/accept-round.ts against the checkout given as the first argument (its
 * src/ is imported, so a base checkout runs its own store code). Prints one JSON line:
 * main-thread CPU per round and per message (/proc's schedstat of this thread: nanoseconds on
 * a CPU), WAL pages per round (bytes this thread wrote, from /proc's per-thread io: the main
 * thread writes nothing but WAL frames here) and wall time per round.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { NewMessage, Store } from '../../src/store/types.ts';
import type { PreparedBody } from '../../src/core/prepared-body.ts';

const tree = resolve(process.argv[2] ?? '.');
const batch = Number(process.env.BENCH_BATCH ?? 3);
const rounds = Number(process.env.BENCH_ROUNDS ?? 1500);
const warmup = Number(process.env.BENCH_WARMUP ?? 1500);
/** A WAL frame: its 24-byte header and one 4,096-byte page (open.ts keeps SQLite's default page size). */
const FRAME_BYTES = 24 + 4096;

const { openStore } = (await import(pathToFileURL(join(tree, 'src/store/open.ts')).href)) as { openStore: (url: string) => Promise<Store> };
const { prepareBody } = (await import(pathToFileURL(join(tree, 'src/core/prepared-body.ts')).href)) as { prepareBody: (raw: Buffer) => PreparedBody };

const task = `/proc/self/task/${process.pid}`;
const cpuNs = () => Number(readFileSync(`${task}/schedstat`, 'utf8').split(' ')[0]);
const written = () => Number(/^wchar: (\d+)/m.exec(readFileSync(`${task}/io`, 'utf8'))![1]);

const dir = mkdtempSync(join(tmpdir(), 'twoway-accept-round-'));
const store = await openStore(`sqlite:${join(dir, 'round.db')}`);
const user = await store.users.create({ address: 'bench@bench.test', passwordHash: 'h', mode: 'open' });
const filler = 'X'.repeat(76);
const bodyLines: string[] = ['From: <sender@source.test>', 'To: <bench@bench.test>', 'Subject: round', 'Date: Sat, 05 Dec 2026 12:00:00 +0000', ''];
for (let i = 0; bodyLines.join('\r\n').length < 10_240; i++) bodyLines.push(`${i}${filler}`);
const body = Buffer.from(`${bodyLines.join('\r\n')}\r\n`);
let serial = 0;

/** A message like smtp-source's: a Received header of its own (so every body differs), then the same 10 KB. */
function message(): NewMessage {
  const n = ++serial;
  const prepared = prepareBody(Buffer.concat([Buffer.from(`Received: from client.source.test by mx.bench.test with ESMTP id ${n.toString(16).padStart(8, '0')}\r\n`), body]));
  return {
    userId: user.id,
    mailbox: 'INBOX',
    raw: prepared.raw,
    flags: [],
    sender: 'sender@source.test',
    from: 'sender@source.test',
    subject: `round ${n}`,
    receivedAt: new Date(),
    firstContact: true,
    prepared: { sha256: prepared.sha256, columns: prepared.columns },
    request: { sender: 'sender@source.test', authDomain: 'source.test', subject: `round ${n}`, spamScore: null, likelySpam: false, dmarc: { result: 'pass', policy: 'none' } },
  };
}

/** `count` rounds, each of `batch` messages submitted separately in one turn (as concurrent sessions do). */
async function runRounds(count: number): Promise<number> {
  let cpu = 0;
  for (let r = 0; r < count; r++) {
    // Built outside the measured part: in the server the worker prepares the stored form.
    const items = Array.from({ length: batch }, message);
    const before = cpuNs();
    await Promise.all(items.map((m) => store.messages.deliver([m])));
    cpu += cpuNs() - before;
  }
  return cpu;
}

await runRounds(warmup);
const bytes0 = written();
const t0 = performance.now();
const cpu = await runRounds(rounds);
const wall = performance.now() - t0;
const pages = (written() - bytes0) / FRAME_BYTES;
await store.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  `${JSON.stringify({ cpuMsPerRound: cpu / 1e6 / rounds, cpuMsPerMessage: cpu / 1e6 / rounds / batch, pagesPerRound: pages / rounds, wallMsPerRound: wall / rounds })}\n`,
);
