/**
 * The common half of the store-work benches (smtp-sender-store.ts, twm-sender-store.ts): in the
 * child, one message's store work run `concurrency` at a time, a warm-up and then the measured
 * messages, counted as CPU (process.cpuUsage) and write system calls and KB (/proc/self/io) per
 * message; in the parent, the trees side by side (tree-pairs.ts) and one table of medians.
 */
import { writeCounters } from './proc-cpu.ts';
import { median, runTreePairs } from './tree-pairs.ts';

export interface StoreWorkSample {
  cpuMsPerMsg: number;
  writesPerMsg: number;
  writeKbPerMsg: number;
}

/** A tree from before the body drop moved into the outcome's commit (update's `dropBodyOf`) had a call of its own for it. */
export interface OlderQueue {
  removeMessageIfDone(messageId: string): Promise<boolean>;
}

export interface StoreWorkLoad {
  warmup: number;
  messages: number;
  concurrency: number;
}

/** `one` run for the warm-up, then measured for `messages`; `one` throws if its work went wrong. */
export async function measureStoreWork(one: () => Promise<void>, load: StoreWorkLoad): Promise<StoreWorkSample> {
  const run = async (n: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: load.concurrency }, async () => {
        while (next < n) {
          next++;
          await one();
        }
      }),
    );
  };
  await run(load.warmup);
  const cpu0 = process.cpuUsage();
  const io0 = writeCounters(process.pid);
  await run(load.messages);
  const cpu1 = process.cpuUsage(cpu0);
  const io1 = writeCounters(process.pid);
  return {
    cpuMsPerMsg: (cpu1.user + cpu1.system) / 1000 / load.messages,
    writesPerMsg: io0 && io1 ? (io1.calls - io0.calls) / load.messages : NaN,
    writeKbPerMsg: io0 && io1 ? (io1.bytes - io0.bytes) / 1024 / load.messages : NaN,
  };
}

/** The parent: `script` of every tree in BENCH_TREES, `pairs` alternating pairs, a table of medians under `heading`. */
export function reportStoreWork(script: string, pairs: number, heading: string): void {
  const samples = runTreePairs<StoreWorkSample>(script, pairs, (s) => `CPU ${s.cpuMsPerMsg.toFixed(3)} ms/msg, ${s.writesPerMsg.toFixed(1)} writes (${s.writeKbPerMsg.toFixed(1)} KB)/msg`);
  process.stdout.write(`# ${heading}, ${pairs} alternating pair(s), medians\n\n`);
  process.stdout.write('| tree | CPU ms/msg | write calls/msg | KB written/msg |\n|---|---:|---:|---:|\n');
  for (const [tree, ss] of samples) {
    process.stdout.write(`| ${tree} | ${median(ss.map((s) => s.cpuMsPerMsg)).toFixed(3)} | ${median(ss.map((s) => s.writesPerMsg)).toFixed(1)} | ${median(ss.map((s) => s.writeKbPerMsg)).toFixed(1)} |\n`);
  }
}
