import { spawn, execSync } from 'node:child_process';
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
const dir = mkdtempSync(join(tmpdir(), 'tw-strace-'));
const child = await startTwowayChild({ dir, dns: dns.address, domain: 'bench.test', user: 'bench@bench.test', startTimeoutMs: 180000 });
const run = (n: number) => runSmtpSource({ host: '127.0.0.1', port: child.smtpPort, sessions: 20, messages: n, size: 10240, from: 'sender@source.test', to: 'bench@bench.test', helo: 'client.source.test' });
await run(4000);
const mode = process.env.MODE ?? 'c';
const st = spawn('strace', mode === 'c' ? ['-c', '-f', '-p', String(child.pid), '-o', '/tmp/strace.out'] : ['-f', '-tt', '-p', String(child.pid), '-o', '/tmp/strace.full'], { stdio: 'inherit' });
await new Promise((r) => setTimeout(r, 1500));
await run(1000);
await new Promise((r) => setTimeout(r, 500));
st.kill('SIGINT');
await new Promise((r) => st.on('exit', r));
await child.stop(); await dns.close();
