/**
 * CPU per message of the outbound SMTP transport alone (smtp-transport.ts and
 * its client), against a sink in another process (bench/lib/smtp-sink.ts:
 * PIPELINING, no TLS), so the figure is the client's own work: connection
 * reuse, the SMTP dialogue, the DATA block, DNS from the embedded server
 * (cached). Several checkouts side by side in one process, alternating, so a
 * change of the client is measured before and after in one sitting.
 *
 *   npx tsx bench/smtp-outbound-cpu.ts
 *   BENCH_TREES=/tmp/base,. npx tsx bench/smtp-outbound-cpu.ts
 *
 * Environment: BENCH_TREES (comma-separated checkouts, default this one),
 * BENCH_MESSAGES per round (3000), BENCH_CONCURRENCY deliveries in flight and
 * connections (20), BENCH_ROUNDS measured rounds per tree (3, after one
 * warm-up round each). Output: per round and the median per tree, in ms of
 * this process's CPU per message (process.cpuUsage), and msg/s.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver } from '../src/dns/resolver.ts';

const here = dirname(fileURLToPath(import.meta.url));
const trees = (process.env.BENCH_TREES ?? resolve(here, '..')).split(',').map((t) => resolve(t.trim()));
const messages = Number(process.env.BENCH_MESSAGES ?? 3000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const HOST = '127.0.0.1';

/** A 10 KB message, as bench/smtp-relay.ts sends. */
const line = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 relay bench payload line\r\n';
const raw = Buffer.from(`From: <a@a.test>\r\nTo: <b@b.test>\r\nSubject: outbound bench\r\n\r\n${line.repeat(110)}`);

type Transport = {
  deliver(domain: string, message: { messageId: string; sender: string | null; raw: Buffer }, recipients: string[]): Promise<Array<{ status: string }>>;
  close(): Promise<void>;
};
type Factory = (o: Record<string, unknown>) => Transport;

const sink = spawn(process.execPath, ['--import', 'tsx', join(here, 'lib', 'smtp-sink.ts'), HOST], { stdio: ['pipe', 'pipe', 'inherit'] });
const port = Number((await createInterface({ input: sink.stdout! })[Symbol.asyncIterator]().next()).value);
const dns = await startDnsServer();
dns.add([
  { name: 'b.test', type: 'MX', data: { preference: 10, exchange: 'mx.b.test' } },
  { name: 'mx.b.test', type: 'A', data: HOST },
]);
const factories: Factory[] = [];
for (const tree of trees) factories.push((await import(join(tree, 'src', 'delivery', 'smtp-transport.ts'))).createSmtpTransport as Factory);

const results = new Map<string, number[]>();
try {
  for (let round = 0; round <= rounds; round++) {
    for (const [i, tree] of trees.entries()) {
      const transport = factories[i]!({ resolver: createResolver({ servers: [dns.address] }), heloName: 'a.test', port, lab: true, maxConnectionsPerHost: concurrency });
      let next = 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < messages) {
            const k = next++;
            const [r] = await transport.deliver('b.test', { messageId: `m${k}`, sender: 'a@a.test', raw }, ['b@b.test']);
            if (r?.status !== 'delivered') throw new Error(`not delivered: ${JSON.stringify(r)}`);
          }
        }),
      );
      const cpu = process.cpuUsage(cpu0);
      const seconds = (performance.now() - t0) / 1000;
      await transport.close();
      const ms = (cpu.user + cpu.system) / 1000 / messages;
      console.log(`${round === 0 ? 'warm-up' : `round ${round}`} ${tree}: ${ms.toFixed(3)} ms CPU/msg, ${(messages / seconds).toFixed(0)} msg/s`);
      if (round > 0) results.set(tree, [...(results.get(tree) ?? []), ms]);
    }
  }
  for (const [tree, xs] of results) console.log(`median ${tree}: ${[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(3)} ms CPU/msg`);
} finally {
  sink.kill();
  await dns.close();
}
