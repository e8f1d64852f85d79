/**
 * `npm run bench`: runs every benchmark script in this folder, one after the
 * other (they must not share the machine's two cores), then prints one table
 * of their rows and writes it to bench/results.md with the machine's
 * description. Each script measures twoway and its peer side by side in the
 * same run; the table reports their ratio.
 *
 * Before each script the disk is flushed (`sync`) and the machine left alone for
 * BENCH_PAUSE seconds (default 15): a script's last work may still be in flight when it
 * exits (twm-stranger-cost.ts deletes a store of about 270 MB at its end, on a file system
 * mounted with `discard`), and the next script's first runs, the peer's or twoway's,
 * should not pay for it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { writeChart, type ChartRow } from './lib/chart.ts';
import { parseReport, rowNumbers } from './lib/report.ts';

interface Row {
  system: string;
  sessions: number;
  messages: number;
  seconds: number;
  msgPerSec: number;
  ratio: number | null;
}

/**
 * Every benchmark, in the order they run and are reported. `labels` matches
 * the summary rows a script produces: a partial run (BENCH_ONLY) replaces
 * only those rows and the script's own section in bench/results.md, and
 * keeps the rest of the last full report.
 */
const ALL_SCRIPTS = [
  { name: 'smtp-accept', title: 'Durable SMTP accept (smtp-source, 10 KB, one connection per message)', file: 'bench/smtp-accept.ts', labels: /^durable SMTP accept, / },
  { name: 'smtp-scaling', title: 'Scaling: durable SMTP accept with 1 and 2 processes, SQLite and PostgreSQL', file: 'bench/smtp-scaling.ts', labels: /^accept scaling/ },
  { name: 'smtp-relay', title: 'SMTP relay between two servers (10 KB)', file: 'bench/smtp-relay.ts', labels: /^SMTP relay, / },
  { name: 'policy-contacts', title: 'Policy decisions with 1,000 and 1,000,000 contacts (contacts.match + decide, SQLite)', file: 'bench/policy-contacts.ts', labels: /^policy decisions/ },
  { name: 'idle-connections', title: 'Memory with idle SMTP connections (10,000 to twoway, 1,000 to Postfix)', file: 'bench/idle-connections.ts', labels: /^idle SMTP connections/ },
  { name: 'twm-delivery', title: 'Two-Way Mail delivery vs SMTP relay between the same two servers (10 KB)', file: 'bench/twm-delivery.ts', labels: /^TWM delivery/ },
  { name: 'imap-fetch', title: 'IMAP: FETCH ENVELOPE FLAGS BODYSTRUCTURE of a mailbox, and mbsync initial sync, vs Dovecot (about 10 KB each)', file: 'bench/imap-fetch.ts', labels: /^(IMAP FETCH|mbsync initial sync)/ },
  { name: 'imap-idle', title: 'IMAP IDLE: SMTP 250 to EXISTS, and memory of idle logged-in sessions vs Dovecot', file: 'bench/imap-idle.ts', labels: /^(IMAP IDLE|idle IMAP sessions)/ },
  { name: 'twm-stranger-cost', title: "What strangers cost the recipient: TWM notices vs SMTP messages (50 KB)", file: 'bench/twm-stranger-cost.ts', labels: /^a stranger's attempt/ },
  { name: 'spam-accept', title: "Durable SMTP accept with rspamd: twoway vs Postfix + rspamd's milter (bench/spam-accept.ts)", file: 'bench/spam-accept.ts', labels: /^durable SMTP accept with rspamd/ },
  { name: 'web-screener', title: 'Web app: the Screener with 10,000 pending requests, and the weight of every page (bench/web-screener.ts)', file: 'bench/web-screener.ts', labels: /^web (Screener page|page weight)/ },
  { name: 'web-contacts', title: 'Web app: Contacts page with 10,000 cards (bench/web-contacts.ts)', file: 'bench/web-contacts.ts', labels: /^web contacts page/ },
  { name: 'spam-corpus', title: 'Spam caught and ham misfiled: SpamAssassin public corpus (bench/spam-corpus.ts)', file: 'bench/spam-corpus.ts', labels: /^spam filter: / },
];
const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',') : null;
const SCRIPTS = ALL_SCRIPTS.filter((s) => existsSync(s.file) && (!only || only.includes(s.name)));
/** A script that exits with this code could not run here (e.g. spam-corpus without its corpus): reported, not failed. */
const SKIPPED = 77;
/** BENCH_REPORT_ONLY=1: rebuild the report from the last bench/out/*.json without running anything. */
const reportOnly = process.env.BENCH_REPORT_ONLY === '1';
const pauseSeconds = Number(process.env.BENCH_PAUSE ?? 15);

/** Flushes what the last script left to write back, then waits for the machine to settle. */
function settle(): void {
  spawnSync('sync', { stdio: 'ignore' });
  if (pauseSeconds > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pauseSeconds * 1000);
}

/** One line of the summary table (and one bar of the chart). */
interface Headline {
  benchmark: string;
  metric: string;
  twoway: string;
  peer: string;
  /** twoway relative to the peer, > 1 better for twoway; null when there is no peer. */
  ratio: number | null;
  target: number | null;
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * Each script's headline, read from its rows (the scripts' JSON shapes; a
 * changed shape shows up as a missing headline, not a wrong one).
 */
// The rows are each script's own JSON; their fields are checked where read.
// biome-ignore lint/suspicious/noExplicitAny: rows are free-form script JSON, indexed freely and checked where read.
function headlines(name: string, rows: any[]): Headline[] {
  const out: Headline[] = [];
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  if (name === 'smtp-accept' || name === 'smtp-relay') {
    for (const r of rows.filter((x) => String(x.system).startsWith('twoway'))) {
      const peer = rows.find((x) => !String(x.system).startsWith('twoway') && x.sessions === r.sessions);
      if (!peer || num(r.ratio) === null) continue;
      out.push({
        benchmark: name === 'smtp-accept' ? `durable SMTP accept, ${r.sessions} sessions` : `SMTP relay, ${r.sessions} sessions`,
        metric: 'msg/s',
        twoway: fmt(r.msgPerSec),
        peer: `${fmt(peer.msgPerSec)} (${peer.system})`,
        ratio: r.ratio,
        target: name === 'smtp-accept' ? 1.5 : 1,
      });
    }
  } else if (name === 'smtp-scaling') {
    for (const r of rows.filter((x) => x.processes > 1)) {
      const one = rows.find((x) => x.storage === r.storage && x.processes === 1);
      if (!one || num(r.ratio) === null) continue;
      out.push({ benchmark: `accept scaling, ${r.processes} processes vs 1, ${r.storage}`, metric: 'msg/s', twoway: fmt(r.msgPerSec), peer: `${fmt(one.msgPerSec)} (1 process)`, ratio: r.ratio, target: null });
    }
  } else if (name === 'twm-delivery') {
    const [twm, smtp] = rows;
    if (twm && smtp && num(twm.ratio) !== null) {
      out.push({ benchmark: 'TWM delivery vs our SMTP relay', metric: 'msg/s', twoway: fmt(twm.msgPerSec, 1), peer: `${fmt(smtp.msgPerSec, 1)} (SMTP relay)`, ratio: twm.ratio, target: 1 });
    }
  } else if (name === 'twm-stranger-cost') {
    const [twm, smtp] = rows;
    if (twm && smtp) {
      out.push({ benchmark: "a stranger's attempt: stored bytes", metric: 'bytes/attempt', twoway: `${fmt(twm.bytesPerAttempt)} (TWM)`, peer: `${fmt(smtp.bytesPerAttempt)} (SMTP)`, ratio: smtp.bytesPerAttempt / twm.bytesPerAttempt, target: 20 });
      out.push({ benchmark: "a stranger's attempt: recipient CPU", metric: 'ms/attempt', twoway: `${fmt(twm.cpuMsPerAttempt, 2)} (TWM)`, peer: `${fmt(smtp.cpuMsPerAttempt, 2)} (SMTP)`, ratio: smtp.cpuMsPerAttempt / twm.cpuMsPerAttempt, target: 5 });
    }
  } else if (name === 'spam-accept') {
    const rate = (system: string) => num(rows.find((x) => x.system === system)?.msgPerSec);
    const [tw, pf, twPlain] = [rate('twoway+rspamd'), rate('postfix+rspamd milter'), rate('twoway')];
    if (tw !== null && pf !== null) {
      const sessions = rows[0]?.sessions ?? '?';
      out.push({
        benchmark: `durable SMTP accept with rspamd, ${sessions} sessions`,
        metric: 'msg/s',
        twoway: `${fmt(tw, 1)}${twPlain === null ? '' : ` (${fmt(twPlain, 1)} without)`}`,
        peer: `${fmt(pf, 1)} (Postfix + rspamd milter)`,
        ratio: tw / pf,
        target: null,
      });
    }
  } else if (name === 'spam-corpus') {
    const r = rows[0];
    if (r && num(r.spam?.caughtPct) !== null && num(r.ham?.misfiledPct) !== null) {
      out.push({ benchmark: 'spam filter: spam caught (SpamAssassin corpus, test half)', metric: '%', twoway: `${fmt(r.spam.caughtPct, 1)}%`, peer: 'no peer (rspamd itself)', ratio: null, target: null });
      out.push({ benchmark: 'spam filter: ham misfiled', metric: '%', twoway: `${fmt(r.ham.misfiledPct, 2)}%`, peer: `target < 0.5%: ${r.ham.misfiledPct < 0.5 ? 'met' : '**not met**'}`, ratio: null, target: null });
    }
  } else if (name === 'policy-contacts') {
    const small = rows.find((r) => r.contacts === 1000);
    const big = rows.find((r) => r.contacts === 1_000_000);
    if (small && big) {
      out.push({ benchmark: 'policy decisions, 1,000,000 contacts', metric: 'µs/decision', twoway: `${fmt(big.microsPerDecision)} (${fmt(big.perSecond)}/s)`, peer: `no peer; 1,000 contacts: ${fmt(small.microsPerDecision)}`, ratio: null, target: null });
    }
  } else if (name === 'imap-fetch') {
    const tw = rows.find((r) => r.system === 'twoway');
    const dc = rows.find((r) => r.system === 'dovecot');
    if (tw && dc) {
      out.push({ benchmark: `IMAP FETCH ENVELOPE FLAGS BODYSTRUCTURE, ${fmt(tw.messages)} messages`, metric: 's', twoway: fmt(tw.fetchSeconds, 3), peer: `${fmt(dc.fetchSeconds, 3)} (dovecot)`, ratio: dc.fetchSeconds / tw.fetchSeconds, target: 1 });
      if (num(tw.fetchFirstSeconds) !== null && num(dc.fetchFirstSeconds) !== null) {
        out.push({ benchmark: `IMAP FETCH ENVELOPE FLAGS BODYSTRUCTURE, first after APPEND, ${fmt(tw.messages)} messages`, metric: 's', twoway: fmt(tw.fetchFirstSeconds, 3), peer: `${fmt(dc.fetchFirstSeconds, 3)} (dovecot)`, ratio: dc.fetchFirstSeconds / tw.fetchFirstSeconds, target: null });
      }
      out.push({ benchmark: `mbsync initial sync, ${fmt(tw.messages)} messages`, metric: 's', twoway: fmt(tw.mbsyncSeconds, 2), peer: `${fmt(dc.mbsyncSeconds, 2)} (dovecot)`, ratio: dc.mbsyncSeconds / tw.mbsyncSeconds, target: 1 });
    }
  } else if (name === 'imap-idle') {
    const lat = rows.find((r) => r.kind === 'latency');
    if (lat && num(lat.median) !== null) {
      out.push({ benchmark: `IMAP IDLE: SMTP 250 to EXISTS, median of ${fmt(lat.samples)}`, metric: 'ms', twoway: `${fmt(lat.median, 1)} (p95 ${fmt(lat.p95, 1)})`, peer: `target < 50 ms: ${lat.median < 50 ? 'met' : '**not met**'}`, ratio: null, target: null });
    }
    const tw = rows.find((r) => r.kind === 'memory' && r.system === 'twoway');
    const dc = rows.find((r) => r.kind === 'memory' && r.system === 'dovecot');
    if (tw && dc) {
      out.push({ benchmark: `idle IMAP sessions after login (${fmt(tw.open)} / ${fmt(dc.open)})`, metric: 'KB/session', twoway: fmt(tw.kbPerConnection, 1), peer: `${fmt(dc.kbPerConnection, 1)} (dovecot)`, ratio: dc.kbPerConnection / tw.kbPerConnection, target: null });
    }
  } else if (name === 'web-screener') {
    const r = rows[0];
    const firstPage = r?.timing?.find((x: { page: string }) => x.page.startsWith('/screener (first'));
    const deepest = r?.timing?.filter((x: { page: string }) => x.page.startsWith('/screener?after')).at(-1);
    const heaviest = r?.weights?.reduce((a: { totalBytes: number } | undefined, w: { totalBytes: number }) => (a && a.totalBytes >= w.totalBytes ? a : w), undefined);
    for (const [label, t] of [['first', firstPage], ['deepest key', deepest]] as const) {
      if (t && num(t.medianMs) !== null) out.push({ benchmark: `web Screener page, ${fmt(r.requests)} requests (${label} page)`, metric: 'ms median / p95', twoway: `${fmt(t.medianMs, 1)} / ${fmt(t.p95Ms, 1)}`, peer: `target < 50 ms: ${t.p95Ms < 50 ? 'met' : '**not met**'}`, ratio: null, target: null });
    }
    if (heaviest && num(heaviest.totalBytes) !== null) out.push({ benchmark: `web page weight, heaviest page (${heaviest.page})`, metric: 'KB transferred', twoway: fmt(heaviest.totalBytes / 1024, 1), peer: `target < 100 KB: ${heaviest.totalBytes < 100 * 1024 ? 'met' : '**not met**'}`, ratio: null, target: null });
  } else if (name === 'web-contacts') {
    const r = rows[0];
    if (r && num(r.worstP95Ms) !== null) {
      const list = r.pages?.[0];
      out.push({
        benchmark: `web contacts page, ${fmt(r.cards)} cards (worst p95 of its pages)`,
        metric: 'ms',
        twoway: `${fmt(r.worstP95Ms, 1)}${list ? ` (list median ${fmt(list.medianMs, 1)})` : ''}`,
        peer: `no peer; target < ${r.targetMs} ms: ${r.worstP95Ms < r.targetMs ? 'met' : '**not met**'}`,
        ratio: null,
        target: null,
      });
    }
  } else if (name === 'idle-connections') {
    const tw = rows.find((r) => r.system === 'twoway');
    const pf = rows.find((r) => r.system !== 'twoway');
    if (tw && pf) {
      out.push({ benchmark: `idle SMTP connections (${fmt(tw.open)} / ${fmt(pf.open)})`, metric: 'KB/connection', twoway: fmt(tw.kbPerConnection, 1), peer: `${fmt(pf.kbPerConnection)} (${pf.system})`, ratio: pf.kbPerConnection / tw.kbPerConnection, target: 1 });
    }
  }
  return out;
}

const loadAtStart = loadavg().map((l) => l.toFixed(2));
const summary: Array<Headline & { script: string }> = [];
const sections: Array<{ name: string; text: string }> = [];
let failed = 0;
for (const s of SCRIPTS) {
  process.stderr.write(`\n== ${s.name} ==\n`);
  if (!reportOnly) settle();
  const r = reportOnly ? { status: 0 } : spawnSync(process.execPath, ['--import', 'tsx', s.file], { stdio: ['ignore', 'inherit', 'inherit'] });
  const out = `bench/out/${s.name}.json`;
  if (r.status === SKIPPED) {
    sections.push({ name: s.name, text: `## ${s.title}\n\nnot run: its prerequisites are missing on this machine (see the header of ${s.file})\n` });
    continue;
  }
  if (r.status !== 0 || !existsSync(out)) {
    failed++;
    sections.push({ name: s.name, text: `## ${s.title}\n\nfailed (exit ${r.status})\n` });
    continue;
  }
  const { rows, markdown } = JSON.parse(readFileSync(out, 'utf8')) as { rows: Row[]; markdown?: string };
  summary.push(...headlines(s.name, rows).map((h) => ({ ...h, script: s.name })));
  // A benchmark whose figures are not msg/s (bytes, CPU, latency) brings its own table.
  if (markdown) {
    sections.push({ name: s.name, text: `## ${s.title}\n\n${markdown}\n` });
    continue;
  }
  const lines = rows.map(
    (x) => `| ${x.system} | ${x.sessions} | ${x.messages} | ${x.seconds.toFixed(2)} | ${Math.round(x.msgPerSec)} | ${x.ratio === null ? '' : x.ratio.toFixed(2)} |`,
  );
  sections.push({ name: s.name, text: `## ${s.title}\n\n| system | sessions | messages | seconds | msg/s | ratio to peer |\n|---|---:|---:|---:|---:|---:|\n${lines.join('\n')}\n` });
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
const load = `load average ${loadAtStart.join(' ')} at start, ${loadavg().map((l) => l.toFixed(2)).join(' ')} at end (on 2 cores shared with other work, absolute figures move with it)`;
const rowOf = (h: Headline) => {
  const ratio = h.ratio === null ? '-' : `${h.ratio.toFixed(2)}×`;
  const target = h.target === null ? '-' : `≥ ${h.target}×`;
  const met = h.ratio === null || h.target === null ? '-' : h.ratio >= h.target ? 'yes' : '**no**';
  return `| ${h.benchmark} | ${h.metric} | ${h.twoway} | ${h.peer} | ${ratio} | ${target} | ${met} |`;
};
// A partial run keeps the last report's other rows and sections (bench/lib/report.ts).
const previous = only && existsSync('bench/results.md') ? parseReport(readFileSync('bench/results.md', 'utf8')) : null;
const ran = new Set(SCRIPTS.map((s) => s.name));
const rows: string[] = [];
const body: string[] = [];
for (const s of ALL_SCRIPTS) {
  if (ran.has(s.name)) {
    rows.push(...summary.filter((h) => h.script === s.name).map(rowOf));
    body.push(...sections.filter((x) => x.name === s.name).map((x) => x.text));
  } else if (previous) {
    rows.push(...previous.rows.filter((r) => s.labels.test(rowNumbers(r).label)));
    const old = previous.sections.get(s.title);
    if (old) body.push(old);
  }
}
const summaryTable = ['| benchmark | metric | twoway | peer | twoway vs peer | target | met |', '|---|---|---:|---:|---:|---:|---|', ...rows].join('\n');
const chartRows: ChartRow[] = rows.map(rowNumbers).flatMap((r) => (r.ratio === null ? [] : [{ label: r.label, ratio: r.ratio, target: r.target }]));
const chart = writeChart(chartRows, `twoway vs its peers (${new Date().toISOString().slice(0, 10)})`, 'bench/results.svg', 'bench/results.png');
const chartLine = chart.includes('bench/results.png') ? '![twoway vs its peers](results.png)\n\n' : '(bench/results.svg; install librsvg2-bin or ImageMagick for the PNG)\n\n';
const intro = previous
  ? [
      // The last full run's line stays; each partial run adds one, replacing an earlier one for the same scripts.
      ...previous.intro.filter((p) => !p.startsWith(`Re-run of ${[...ran].join(', ')} `)),
      `Re-run of ${[...ran].join(', ')} by \`BENCH_ONLY=${only!.join(',')} npm run bench\` on ${machine}, ${load}.`,
    ]
  : [
      `Measured by \`npm run bench\` on ${machine}, ${load}. Each row pair ran side by side in one sitting (medians of alternating runs); compare ratios, not absolute figures. "twoway vs peer" is normalised so that more is better for twoway (for bytes, CPU and memory it is the peer's figure over ours).`,
    ];
const report = `# Benchmark results\n\n${intro.join('\n\n')}\n\n## Summary\n\n${summaryTable}\n\n${chartLine}${body.join('\n')}`;
process.stdout.write('\n' + report);
writeFileSync('bench/results.md', report);
process.exitCode = failed > 0 ? 1 : 0;
