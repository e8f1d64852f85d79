import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { runSmtpSource } from './lib/smtp-source.ts';
import { startTwowayChild } from './lib/twoway-child.ts';
const dns = await startDnsServer({ records: [
  { name: 'client.source.test', type: 'A', data: '127.0.0.1' },
  { name: 'source.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
  { name: '_dmarc.source.test', type: 'TXT', data: 'v=DMARC1; p=reject' } ] });
const dir = mkdtempSync(join(tmpdir(), 'tw-perf-'));
const child = await startTwowayChild({ dir, dns: dns.address, domain: 'bench.test', user: 'bench@bench.test', startTimeoutMs: 180000, nodeFlags: ['--perf-basic-prof'] });
const run = (n: number) => runSmtpSource({ host: '127.0.0.1', port: child.smtpPort, sessions: 20, messages: n, size: 10240, from: 'sender@source.test', to: 'bench@bench.test', helo: 'client.source.test' });
await run(6000);
const args = (process.env.PERF_ARGS ?? '-e cpu-clock -F 4999 -g').split(' ');
const st = spawn('perf', ['record', ...args, '-o', process.env.PERF_OUT ?? '/tmp/perf.data', '-p', String(child.pid)], { stdio: 'inherit' });
await new Promise((r) => setTimeout(r, 1000));
const r = await run(Number(process.env.N ?? 4000));
console.log('rate', (Number(process.env.N ?? 4000) / r.seconds).toFixed(0));
st.kill('SIGINT');
await new Promise((r) => st.on('exit', r));
await child.stop(); await dns.close();
