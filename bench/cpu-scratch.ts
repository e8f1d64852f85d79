import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer } from '../src/dns/embedded-server.ts';
import { runSmtpSource } from './lib/smtp-source.ts';
import { startTwowayChild } from './lib/twoway-child.ts';
const dns = await startDnsServer({ records: [
  { name: 'client.source.test', type: 'A', data: '127.0.0.1' },
  { name: 'source.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
  { name: '_dmarc.source.test', type: 'TXT', data: 'v=DMARC1; p=reject' } ] });
const dir = mkdtempSync(join(tmpdir(), 'tw-cpu-'));
const child = await startTwowayChild({ dir, dns: dns.address, domain: 'bench.test', user: 'bench@bench.test', startTimeoutMs: 180000 });
const run = (n: number) => runSmtpSource({ host: '127.0.0.1', port: child.smtpPort, sessions: 20, messages: n, size: 10240, from: 'sender@source.test', to: 'bench@bench.test', helo: 'client.source.test' });
await run(6000);
const stat = () => { const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number); return { idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) }; };
const self = () => process.cpuUsage();
for (let i = 0; i < 3; i++) {
  const s0 = stat(); const u0 = self(); const t0 = performance.now();
  const r = await run(3000);
  const s1 = stat(); const u1 = self(); const dt = performance.now() - t0;
  const ticks = s1.total - s0.total; const idle = (s1.idle - s0.idle) / ticks;
  const bench = (u1.user - u0.user + u1.system - u0.system) / 1000 / 3000;
  console.log(`rate ${(3000 / r.seconds).toFixed(0)} msg/s, machine idle ${(idle * 100).toFixed(1)}%, bench process (dns) ${bench.toFixed(3)} ms/msg`);
}
await child.stop(); await dns.close();
