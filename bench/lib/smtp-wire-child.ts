/**
 * One run of bench/smtp-wire-cpu.ts against the checkout given as the first argument (its
 * src/protocols/smtp/server.ts is imported, so a base checkout runs its own wire code): an SMTP
 * listener with hooks that accept every recipient and answer every message at once, nothing
 * stored, nothing authenticated; `smtp-source` (a process of its own) sends BENCH_WARMUP then
 * BENCH_MESSAGES messages of 10 KB, one connection per message, over BENCH_SESSIONS sessions.
 * Prints one JSON line: this process's main-thread CPU per measured message
 * (/proc/self/task/<pid>/schedstat: nanoseconds on a CPU) and the rate.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createPrivateCa, issueCertificate } from '../../src/config/private-ca.ts';
import type { SmtpListener, SmtpListenerOptions } from '../../src/protocols/smtp/server.ts';
import { runSmtpSource } from './smtp-source.ts';

const tree = resolve(process.argv[2] ?? '.');
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const messages = Number(process.env.BENCH_MESSAGES ?? 3000);
const warmup = Number(process.env.BENCH_WARMUP ?? 3000);

const { startSmtpListener } = (await import(pathToFileURL(join(tree, 'src/protocols/smtp/server.ts')).href)) as {
  startSmtpListener: (options: SmtpListenerOptions) => Promise<SmtpListener>;
};

const task = `/proc/self/task/${process.pid}`;
const cpuNs = () => Number(readFileSync(`${task}/schedstat`, 'utf8').split(' ')[0]);

const tls = issueCertificate(createPrivateCa('bench CA'), ['mx.bench.test']);
let received = 0;
const listener = await startSmtpListener({
  hostname: 'mx.bench.test',
  host: '127.0.0.1',
  port: 0,
  tls,
  maxMessageSize: 25 * 1024 * 1024,
  maxRecipients: 100,
  maxConnections: 1000,
  maxConnectionsPerIp: 1000,
  hooks: {
    onSender: async () => undefined,
    onRecipient: async () => ({ exclusive: false }),
    onMessage: async (_envelope, raw) => {
      received += raw.length > 0 ? 1 : 0;
      return 'Ok: queued';
    },
  },
});

const load = async (count: number) => {
  const r = await runSmtpSource({ host: '127.0.0.1', port: listener.port, sessions, messages: count, size: 10 * 1024, from: 'sender@source.test', to: 'bench@bench.test', helo: 'client.source.test' });
  if (r.exitCode !== 0) throw new Error(`smtp-source exited ${r.exitCode}: ${r.stderr}`);
  return r.seconds;
};

await load(warmup);
// Let the last connections close before the reading.
await new Promise((res) => setTimeout(res, 200));
const before = cpuNs();
const seconds = await load(messages);
await new Promise((res) => setTimeout(res, 200));
const cpu = cpuNs() - before;
await listener.close();
if (received !== warmup + messages) throw new Error(`received ${received} of ${warmup + messages}`);
process.stdout.write(`${JSON.stringify({ mainUsPerMessage: cpu / 1e3 / messages, msgPerSec: messages / seconds })}\n`);
