/**
 * Where a stranger's notice's CPU goes at the recipient, by thread and by
 * user/system time, and what the recipient spends idle (timers, sweeps) in
 * the same span of time, so an idle cost is not charged to the notices.
 *
 *   npx tsx bench/stranger-threads.ts
 *   BENCH_WARMUP=0 BENCH_ATTEMPTS=8000 BENCH_CHUNKS=8 npx tsx bench/stranger-threads.ts
 *
 * One recipient (bench/lib/twoway-server.ts, as bench/twm-stranger-cost.ts
 * starts it), sent BENCH_WARMUP (300) notices, idle for BENCH_IDLE_SECONDS
 * (10), then sent BENCH_ATTEMPTS (3000) notices as stranger-cpu.ts sends them.
 * Output: per thread (the main thread, and the others by name: V8's compiler
 * and GC helpers, libuv's pool, the WAL checkpointer) user and system CPU
 * idle and under load; with BENCH_CHUNKS > 1, the main thread's and the
 * others' CPU per notice for each chunk of the load (how a fresh process's
 * compiling fades). BENCH_CPU_PROF=<file>: a V8 profile of the load.
 * BENCH_PERF=<file>: `perf record` of the server under load (with
 * BENCH_NODE_FLAGS=--perf-basic-prof for the names of JavaScript functions),
 * which samples CPU time only, where V8's profiler also charges the time a
 * thread waits descheduled. */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { keyRecordValue, rawPublicKey } from '../src/core/twm-key-record.ts';
import { TWM_PATHS } from '../src/core/twm-types.ts';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { threadCpu, threadCpuDelta } from './lib/proc-threads.ts';
import { STRANGER_KEYID, strangerNotice } from './lib/stranger-notice.ts';
import { createTwmLab, twmSection } from './lib/twm-lab.ts';
import { startTwowayChild } from './lib/twoway-child.ts';

const attempts = Number(process.env.BENCH_ATTEMPTS ?? 3000);
const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 10);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
const HOST = '127.0.0.3';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const dns = await startDnsServer();
  const lab = createTwmLab();
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  dns.add([{ name: STRANGER_KEYID, type: 'TXT', data: keyRecordValue(rawPublicKey(publicKey)) }]);
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-stranger-threads-'));
  const child = await startTwowayChild({ dir, dns: dns.address, domain: 'b.test', users: [{ address: 'bea@b.test', mode: 'screen' }], host: HOST, extraToml: twmSection(lab, 'b.test', HOST), nodeFlags: process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [] });
  const authority = `twm.b.test:${child.twmPort}`;
  const url = `https://${HOST}:${child.twmPort}${TWM_PATHS.notice}`;
  const agent = new Agent({ connect: { ca: lab.ca.cert, servername: 'twm.b.test' }, connections: concurrency, pipelining: 1 });
  let sent = 0;
  const send = async (count: number, key: KeyObject) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          next++;
          const { body, headers } = strangerNotice(sent++, authority, key);
          const res = await request(url, { method: 'POST', dispatcher: agent, headers, body });
          const text = await res.body.text();
          if (res.statusCode !== 200 || !text.includes('"pending"')) throw new Error(`HTTP ${res.statusCode} ${text.slice(0, 300)}`);
        }
      }),
    );
  };
  const show = (label: string, d: Record<string, { user: number; system: number }>, per: number, unit: string) => {
    for (const [name, t] of Object.entries(d).sort((a, b) => b[1].user + b[1].system - a[1].user - a[1].system)) {
      if (t.user + t.system === 0) continue;
      process.stdout.write(`${label}\t${name.padEnd(16)}\tuser ${t.user.toFixed(2)} s\tsystem ${t.system.toFixed(2)} s\t${(((t.user + t.system) * 1000) / per).toFixed(3)} ${unit}\n`);
    }
  };
  try {
    await send(Number(process.env.BENCH_WARMUP ?? 300), privateKey);
    await sleep(1000);
    const i0 = threadCpu(child.pid);
    await sleep(idleSeconds * 1000);
    show('idle', threadCpuDelta(child.pid, i0, threadCpu(child.pid)), idleSeconds, 'ms/s');
    const perfFile = process.env.BENCH_PERF;
    const perf = perfFile ? spawn('perf', ['record', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', String(child.pid), '-o', perfFile], { stdio: 'inherit' }) : undefined;
    if (perf) await sleep(1000);
    const prof = process.env.BENCH_CPU_PROF;
    if (prof) await child.profileStart();
    const c0 = threadCpu(child.pid);
    const t0 = Date.now();
    // In chunks: the main thread's share and the other threads' (V8's compiler and GC helpers) per chunk.
    const chunks = Number(process.env.BENCH_CHUNKS ?? 1);
    let prev = c0;
    for (let k = 0; k < chunks; k++) {
      await send(Math.ceil(attempts / chunks), privateKey);
      const now = threadCpu(child.pid);
      let main = 0;
      let others = 0;
      for (const [tid, t] of now) {
        const b = prev.get(tid) ?? { user: 0, system: 0 };
        const d = t.user + t.system - b.user - b.system;
        if (tid === String(child.pid)) main += d;
        else others += d;
      }
      const n = Math.ceil(attempts / chunks);
      if (chunks > 1) process.stdout.write(`chunk ${k + 1}\tmain thread ${((main * 1000) / n).toFixed(3)} ms/notice\tother threads ${((others * 1000) / n).toFixed(3)} ms/notice\n`);
      prev = now;
    }
    if (prof) await child.profileStop(prof);
    if (perf) {
      perf.kill('SIGINT');
      await new Promise((r) => perf.once('exit', r));
    }
    const seconds = (Date.now() - t0) / 1000;
    show('load', threadCpuDelta(child.pid, c0, threadCpu(child.pid)), attempts, 'ms/notice');
    process.stdout.write(`${attempts} notices in ${seconds.toFixed(1)} s\n`);
  } finally {
    await agent.close();
    await child.stop();
    rmSync(dir, { recursive: true, force: true });
    lab.close();
    await dns.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`stranger-threads: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
