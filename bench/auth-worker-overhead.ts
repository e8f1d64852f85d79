/**
 * What the authentication worker hop costs (docs/reliability.md section 6):
 * the same signed message authenticated in the main thread and through the
 * pool (one worker, warm, one message at a time), DNS from the embedded
 * server through one cached resolver, so both paths do the same lookups.
 * Also the main thread's busy time per message in each path (event-loop
 * utilisation, so no spinning timer competes with the worker for the CPU). Interleaved rounds,
 * medians, as the machine is shared.
 * Run: node --import tsx bench/auth-worker-overhead.ts [messages per round]
 */
import { performance } from 'node:perf_hooks';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver } from '../src/dns/resolver.ts';
import { createAuthPool } from '../src/mail/auth-pool.ts';
import { createAuthenticator, type AuthInput } from '../src/mail/authenticate.ts';
import { senderDomain } from '../test/helpers/server.ts';

const perRound = Number(process.argv[2] ?? 50);
const friends = senderDomain('friends.test');
const dns = await startDnsServer({ records: friends.records });
const resolver = createResolver({ servers: [dns.address] });
const pool = createAuthPool({ resolver, size: 1 });
const inThread = createAuthenticator(resolver);

const sizes = { '1 KB': 1_000, '100 KB': 100_000, '1 MB': 1_000_000 };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const [label, size] of Object.entries(sizes)) {
  const body = `${'y'.repeat(76)}\r\n`.repeat(Math.ceil(size / 78));
  const raw = await friends.sign(Buffer.from(`From: bob@friends.test\r\nTo: a@example.test\r\nSubject: bench\r\n\r\n${body}`, 'latin1'));
  const input = (): AuthInput => ({ raw: Buffer.alloc(raw.length, raw), ip: '127.0.0.1', helo: 'c.test', envelopeFrom: 'bob@friends.test', from: 'bob@friends.test', mta: 'mx.example.test' });
  const measure = async (run: (i: AuthInput) => Promise<unknown>) => {
    const times: number[] = [];
    const held: number[] = [];
    for (let i = 0; i < perRound; i++) {
      const one = input();
      // The main thread's busy time during the message (its event loop not idle): nothing spins to measure it.
      const before = performance.eventLoopUtilization();
      const started = performance.now();
      await run(one);
      times.push(performance.now() - started);
      held.push(performance.eventLoopUtilization(before).active);
    }
    return { time: median(times), held: median(held) };
  };
  await measure(pool.authenticate); // warm: the worker starts, the cache fills
  await measure(inThread);
  const rows: Array<{ main: { time: number; held: number }; worker: { time: number; held: number } }> = [];
  for (let round = 0; round < 3; round++) rows.push({ main: await measure(inThread), worker: await measure(pool.authenticate) });
  const m = median(rows.map((r) => r.main.time));
  const w = median(rows.map((r) => r.worker.time));
  console.log(
    `${label}: in the main thread ${m.toFixed(2)} ms per message (main thread busy ${median(rows.map((r) => r.main.held)).toFixed(2)} ms); ` +
      `in the worker ${w.toFixed(2)} ms (main thread busy ${median(rows.map((r) => r.worker.held)).toFixed(2)} ms); hop ${(w - m).toFixed(2)} ms`,
  );
}
await pool.close();
await dns.close();
