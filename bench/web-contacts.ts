/**
 * Server time per Contacts page with 10,000 cards (issue 14): the web app
 * in-process (fastify inject, no network), on a fresh SQLite store. A second
 * user's cards are interleaved with the measured user's (one in five), so the
 * user filter of the key-paged read is part of what is measured. Pages: the
 * newest 50, key pages in the middle and near the oldest (`before=`), a
 * search, one card with its vCard, and the expected senders. Prints the
 * median and p95 per page and the transferred weight of the list page
 * (HTML + htmx + CSS, raw and gzip).
 * Run: node --import tsx bench/web-contacts.ts [cards] [samples]
 * Output: a table on stdout and bench/out/web-contacts.json (for bench/run.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { openStore } from '../src/store/open.ts';
import { createServices } from '../src/services/index.ts';
import { createHttpApp } from '../src/protocols/http/app.ts';
import { registerWeb } from '../src/web/plugin.ts';
import { parseContactCard } from '../src/core/vcard/index-entries.ts';
import { buildContactCard } from '../src/core/vcard/write.ts';

const CARDS = Number(process.argv[2] ?? 10_000);
const SAMPLES = Number(process.argv[3] ?? 60);
const TARGET_MS = 50;

const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-web-contacts-'));
const store = await openStore(`sqlite:${join(dir, 'bench.db')}`);
try {
  const services = createServices(store, ['example.test']);
  const user = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'screen');
  const other = await services.accounts.add('bob@example.test', 'correct horse battery staple', 'screen');
  const ids: number[] = [];
  const t0 = Date.now();
  for (let j = 0; j < CARDS; j++) {
    const uid = `card-${j}`;
    // A person with two addresses, every tenth a whole domain, every fiftieth blocked.
    const vcard = buildContactCard({
      uid,
      fn: `Person number ${j}`,
      emails: [`person${j}@domain${j % 700}.test`, `p${j}@home.test`],
      domains: j % 10 === 0 ? [`company${j}.test`] : [],
      blocked: j % 50 === 0,
    });
    ids.push((await store.contacts.put(user.id, { book: 'default', uid, vcard, entries: parseContactCard(vcard).entries })).id);
    if (j % 5 === 0) {
      const v = buildContactCard({ uid: `bob-${j}`, emails: [`friend${j}@bob.test`] });
      await store.contacts.put(other.id, { book: 'default', uid: `bob-${j}`, vcard: v, entries: parseContactCard(v).entries });
    }
  }
  for (const d of ['shop.example', 'bank.example', 'forum.example']) await services.contacts.expect(user.id, d, { forMs: 86_400_000, uses: 2 });
  const loadMs = Date.now() - t0;
  const app = await createHttpApp({ services, log: false, extraRoutes: (a) => registerWeb(a, { services }) });
  const { cookie } = await services.webSessions.open(user, { userAgent: 'bench', client: '127.0.0.1' });
  const headers = { cookie: `__Host-twoway-session=${cookie}` };

  const pages: Array<[string, string]> = [
    ['/contacts', 'newest 50'],
    [`/contacts?before=${ids[Math.floor(CARDS / 2)]}`, 'key page in the middle'],
    [`/contacts?before=${ids[60]}`, 'key page near the oldest'],
    ['/contacts?q=number%204242', 'search (substring of the card text)'],
    [`/contacts/${ids[1234]}`, 'one card with its vCard'],
    ['/contacts/expected', 'expected senders'],
  ];
  const rows: Array<{ url: string; what: string; medianMs: number; p95Ms: number }> = [];
  let html = '';
  for (const [url, what] of pages) {
    const times: number[] = [];
    for (let i = 0; i < SAMPLES + 5; i++) {
      const s = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url, headers });
      const ms = Number(process.hrtime.bigint() - s) / 1e6;
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
      if (i >= 5) times.push(ms); // warm-up left out
      if (url === '/contacts') html = res.body;
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    rows.push({ url, what, medianMs: at(0.5), p95Ms: at(0.95) });
  }
  const htmxPath = /src="([^"]+htmx[^"]+)"/.exec(html)![1]!;
  const cssPath = /href="([^"]+\.css)"/.exec(html)![1]!;
  const htmx = (await app.inject({ url: htmxPath })).rawPayload;
  const css = (await app.inject({ url: cssPath })).rawPayload;
  const htmlBytes = Buffer.from(html);
  const kb = (n: number) => (n / 1024).toFixed(1);
  const gz = (b: Buffer) => gzipSync(b).length;
  const weight = {
    htmlKb: htmlBytes.length / 1024,
    htmlGzipKb: gz(htmlBytes) / 1024,
    totalKb: (htmlBytes.length + htmx.length + css.length) / 1024,
    totalGzipKb: (gz(htmlBytes) + gz(htmx) + gz(css)) / 1024,
  };
  const worstP95 = Math.max(...rows.map((r) => r.p95Ms));
  const markdown = [
    `Contacts with ${CARDS.toLocaleString('en')} cards (and ${Math.ceil(CARDS / 5).toLocaleString('en')} of another user interleaved), ${SAMPLES} samples per page after 5 warm-up requests, server time via fastify inject, SQLite; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end.`,
    '',
    '| page | what | median ms | p95 ms |',
    '|---|---|---:|---:|',
    ...rows.map((r) => `| \`${r.url}\` | ${r.what} | ${r.medianMs.toFixed(1)} | ${r.p95Ms.toFixed(1)} |`),
    '',
    `Target < ${TARGET_MS} ms per page: ${worstP95 < TARGET_MS ? 'met' : '**not met**'} (worst p95 ${worstP95.toFixed(1)} ms).`,
    `Weight of the list page (50 cards): HTML ${kb(htmlBytes.length)} KB (${kb(gz(htmlBytes))} KB gzip), htmx ${kb(htmx.length)} KB (${kb(gz(htmx))} KB gzip), CSS ${kb(css.length)} KB (${kb(gz(css))} KB gzip); total ${weight.totalKb.toFixed(1)} KB raw, ${weight.totalGzipKb.toFixed(1)} KB gzip (target < 100 KB: ${weight.totalKb < 100 ? 'met' : '**not met**'} raw).`,
    `Loading the cards took ${(loadMs / 1000).toFixed(1)} s (one transaction per card, as CardDAV writes them).`,
  ].join('\n');
  process.stdout.write(`${markdown}\n`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync('bench/out/web-contacts.json', JSON.stringify({ rows: [{ cards: CARDS, samples: SAMPLES, pages: rows, worstP95Ms: worstP95, targetMs: TARGET_MS, weight }], markdown }, null, 2));
  await app.close();
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
