/**
 * Policy decisions per second with a large address book (issue #6): the
 * real path of ingest (`probesFor` -> `store.contacts.match` on SQLite ->
 * `matchesFrom` -> `decide`), one decision after the other as ingest makes
 * them, for a user with 1,000 and with 1,000,000 contacts. There is no
 * external peer for this; the row that matters is the ratio of the time per
 * decision at 1,000,000 contacts to the time at 1,000 (an index lookup
 * should not grow with the book).
 *
 * The books are written straight into the tables (one transaction, the
 * rows `contacts.put` would write: a card and its index entries; every
 * tenth card also allows a whole domain), since a million CardDAV writes
 * would measure the writes. Lookups: half known senders (address or domain
 * hits), half strangers, in a seeded random order.
 *
 *   npx tsx bench/policy-contacts.ts            # about a minute
 *   BENCH_QUICK=1 npx tsx bench/policy-contacts.ts
 *
 * Environment: BENCH_SIZES (default "1000,1000000"), BENCH_DECISIONS (20000).
 * Output: a table on stdout and bench/out/policy-contacts.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decide } from '../src/core/policy.ts';
import { matchesFrom, probesFor } from '../src/ingest/contact-matches.ts';
import { createApp } from '../src/app.ts';
import { parseConfig } from '../src/config/load.ts';
import { renderConfig } from '../src/config/template.ts';
import { openStore } from '../src/store/open.ts';
import { Rng } from '../test/helpers/fuzz.ts';

const quick = process.env.BENCH_QUICK === '1';
const SIZES = (process.env.BENCH_SIZES ?? (quick ? '1000,100000' : '1000,1000000')).split(',').map(Number);
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? (quick ? 5000 : 20_000));
const DOMAINS = 50_000;

interface Result {
  contacts: number;
  entries: number;
  decisions: number;
  seconds: number;
  perSecond: number;
  microsPerDecision: number;
  inbox: number;
}

/** A fresh store whose user has `n` contacts. */
async function buildBook(dir: string, n: number): Promise<{ url: string; userId: number; entries: number }> {
  const file = join(dir, `book-${n}.db`);
  const url = `sqlite:${file}`;
  // The application as the CLI builds it (src/app.ts), on this store: no workers, no listeners.
  const configFile = join(dir, `book-${n}.toml`);
  const config = parseConfig(
    renderConfig({ hostname: 'mx.example.org', domains: ['example.org'], smtpPort: 0, submissionPort: 0, httpPort: 0, dns: [], storage: url }),
    configFile,
  );
  const app = await createApp(config);
  const user = await app.services.accounts.add('alice@example.org', 'bench-password-not-secret', 'screen');
  // The book the services write to, so the rows look like theirs.
  await app.services.contacts.allow(user.id, 'seed@seed.example');
  const book = (await app.store.contacts.list(user.id))[0]!.book;
  await app.close();

  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  const card = db.prepare('INSERT INTO contacts (user_id, book, uid, vcard, etag, updated_at, href) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const entry = db.prepare('INSERT INTO contact_entries (contact_id, user_id, kind, value, action) VALUES (?, ?, ?, ?, ?)');
  let entries = 0;
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const address = `c${i}@d${i % DOMAINS}.example`;
      const uid = `bench-${i}`;
      const vcard = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:Contact ${i}\r\nEMAIL:${address}\r\n${i % 10 === 0 ? `X-TWOWAY-DOMAIN:org${i}.example\r\n` : ''}END:VCARD\r\n`;
      const id = Number(card.run(user.id, book, uid, vcard, `"${i}"`, Date.now(), `${uid}.vcf`).lastInsertRowid);
      entry.run(id, user.id, 'address', address, 'allow');
      entries++;
      if (i % 10 === 0) {
        entry.run(id, user.id, 'domain', `org${i}.example`, 'allow');
        entries++;
      }
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.exec('ANALYZE');
  db.close();
  return { url, userId: user.id, entries };
}

async function measure(url: string, userId: number, n: number, entries: number): Promise<Result> {
  const store = await openStore(url);
  try {
    const user = (await store.users.findById(userId))!;
    const rng = new Rng(42);
    const senders = Array.from({ length: DECISIONS }, () => {
      const i = rng.int(n);
      switch (rng.int(4)) {
        case 0:
          return `c${i}@d${i % DOMAINS}.example`; // a known address
        case 1:
          return `someone@mail.org${i - (i % 10)}.example`; // under an allowed domain (for i % 10 == 0 cards)
        default:
          return `stranger${i}@unknown${i}.example`;
      }
    });
    const once = async (from: string) => {
      const found = await store.contacts.match(user.id, probesFor({ from, listId: null }));
      return decide({ mode: user.mode, channel: 'smtp', origin: 'remote', from, authenticated: true, matches: matchesFrom(found), listAuthenticated: false, autoSubmitted: false, ownershipConfirmation: false, expected: 'none', spam: null });
    };
    for (const s of senders.slice(0, Math.min(2000, senders.length))) await once(s); // warm-up: statement cache, page cache
    let inbox = 0;
    const began = process.hrtime.bigint();
    for (const s of senders) if ((await once(s)).kind === 'inbox') inbox++;
    const seconds = Number(process.hrtime.bigint() - began) / 1e9;
    return { contacts: n, entries, decisions: DECISIONS, seconds, perSecond: DECISIONS / seconds, microsPerDecision: (seconds / DECISIONS) * 1e6, inbox };
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-policy-'));
  const results: Result[] = [];
  try {
    for (const n of SIZES) {
      const t0 = Date.now();
      const { url, userId, entries } = await buildBook(dir, n);
      process.stderr.write(`policy-contacts: ${n} contacts (${entries} index entries) written in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      const r = await measure(url, userId, n, entries);
      process.stderr.write(`policy-contacts: ${n} contacts: ${Math.round(r.perSecond)} decisions/s, ${r.microsPerDecision.toFixed(1)} µs each (${r.inbox} inbox)\n`);
      results.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const base = results[0]!;
  const lines = results.map(
    (r) => `| twoway (SQLite) | ${r.contacts.toLocaleString('en')} | ${r.entries.toLocaleString('en')} | ${r.decisions} | ${Math.round(r.perSecond).toLocaleString('en')} | ${r.microsPerDecision.toFixed(1)} | ${(r.microsPerDecision / base.microsPerDecision).toFixed(2)} |`,
  );
  const markdown = `| system | contacts | index entries | decisions | decisions/s | µs per decision | time ratio to ${base.contacts.toLocaleString('en')} contacts |\n|---|---:|---:|---:|---:|---:|---:|\n${lines.join('\n')}\n`;
  process.stdout.write(`\n${markdown}`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync('bench/out/policy-contacts.json', JSON.stringify({ rows: results, markdown }, null, 2));
}

await main();
