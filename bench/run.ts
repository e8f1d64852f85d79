/**
 * `npm run bench`: runs every benchmark script in this folder, one after the
 * other (they must not share the machine's two cores), then prints one table
 * of their rows and writes it to bench/results.md with the machine's
 * description. Each script measures twoway and its peer side by side in the
 * same run; the table reports their ratio.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

interface Row {
  system: string;
  sessions: number;
  messages: number;
  seconds: number;
  msgPerSec: number;
  ratio: number | null;
}

const SCRIPTS = [
  { name: 'smtp-accept', title: 'Durable SMTP accept (smtp-source, 10 KB, one connection per message)', file: 'bench/smtp-accept.ts' },
  { name: 'smtp-relay', title: 'SMTP relay between two servers (10 KB)', file: 'bench/smtp-relay.ts' },
  { name: 'policy-contacts', title: 'Policy decisions with 1,000 and 1,000,000 contacts (contacts.match + decide, SQLite)', file: 'bench/policy-contacts.ts' },
  { name: 'idle-connections', title: 'Memory with idle SMTP connections (10,000 to twoway, 1,000 to Postfix)', file: 'bench/idle-connections.ts' },
  { name: 'twm-delivery', title: 'Two-Way Mail delivery vs SMTP relay between the same two servers (10 KB)', file: 'bench/twm-delivery.ts' },
  { name: 'twm-stranger-cost', title: "What strangers cost the recipient: TWM notices vs SMTP messages (50 KB)", file: 'bench/twm-stranger-cost.ts' },
].filter((s) => existsSync(s.file));

const sections: string[] = [];
let failed = 0;
for (const s of SCRIPTS) {
  process.stderr.write(`\n== ${s.name} ==\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', s.file], { stdio: ['ignore', 'inherit', 'inherit'] });
  const out = `bench/out/${s.name}.json`;
  if (r.status !== 0 || !existsSync(out)) {
    failed++;
    sections.push(`## ${s.title}\n\nfailed (exit ${r.status})\n`);
    continue;
  }
  const { rows, markdown } = JSON.parse(readFileSync(out, 'utf8')) as { rows: Row[]; markdown?: string };
  // A benchmark whose figures are not msg/s (bytes, CPU, latency) brings its own table.
  if (markdown) {
    sections.push(`## ${s.title}\n\n${markdown}\n`);
    continue;
  }
  const lines = rows.map(
    (x) => `| ${x.system} | ${x.sessions} | ${x.messages} | ${x.seconds.toFixed(2)} | ${Math.round(x.msgPerSec)} | ${x.ratio === null ? '' : x.ratio.toFixed(2)} |`,
  );
  sections.push(`## ${s.title}\n\n| system | sessions | messages | seconds | msg/s | ratio to peer |\n|---|---:|---:|---:|---:|---:|\n${lines.join('\n')}\n`);
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
const report = `# Benchmark results\n\nMeasured by \`npm run bench\` on ${machine}. Each row pair ran side by side in one sitting (medians of alternating runs); compare ratios, not absolute figures.\n\n${sections.join('\n')}`;
process.stdout.write('\n' + report);
writeFileSync('bench/results.md', report);
process.exitCode = failed > 0 ? 1 : 0;
