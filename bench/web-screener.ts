/**
 * The web app with 10,000 pending Screener requests (issue 14), in-process
 * (fastify inject, no network) on a fresh SQLite store:
 *
 * - server time per Screener page: the first key page, key pages deep in the
 *   list (after 5,000 and 9,900 requests, reached by following `Next`), the
 *   likely-spam view, and the 204 poll; median and p95 after a warm-up;
 * - the transferred weight of every page (sign-in, Screener, Mail, message,
 *   Compose, Sent, Contacts, settings, sessions) as a first visit fetches it: the HTML and each
 *   script and stylesheet it links, with `Accept-Encoding: br, gzip` (what
 *   Chromium sends), and also raw. Target: under 100 KB, htmx included.
 *
 * The requests are mixed like a real Screener: a third unauthenticated, some
 * DMARC results, spam scores, 5% likely spam, and 1,000 senders (and 100
 * domains) allowed by another account, so the stored "known on this
 * server" bonus (store/request-rank.ts) is written for many of them.
 *
 * Run: node --import tsx bench/web-screener.ts [requests] [samples]
 * Output: tables on stdout and bench/out/web-screener.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/open.ts';
import { createServices } from '../src/services/index.ts';
import { createHttpApp } from '../src/protocols/http/app.ts';
import { registerWeb } from '../src/web/plugin.ts';
import type { NewMessage, RequestPageKey } from '../src/store/types.ts';

const REQUESTS = Number(process.argv[2] ?? 10_000);
const SAMPLES = Number(process.argv[3] ?? 60);

const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-web-'));
const store = await openStore(`sqlite:${join(dir, 'bench.db')}`);
try {
  const services = createServices(store, ['example.test']);
  const user = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'screen');
  const bob = await services.accounts.add('bob@example.test', 'correct horse battery staple', 'screen');
  for (let i = 0; i < REQUESTS; i += 500) {
    const batch: NewMessage[] = [];
    for (let j = i; j < Math.min(REQUESTS, i + 500); j++) {
      const sender = `sender${j}@domain${j % 700}.test`;
      const subject = `Hello number ${j}: a subject of ordinary length`;
      const dmarc = j % 4 === 0 ? { result: 'pass', policy: j % 8 === 0 ? 'reject' : 'none' } : j % 4 === 1 ? { result: 'fail', policy: 'quarantine' } : null;
      batch.push({
        userId: user.id,
        mailbox: 'Screener',
        raw: Buffer.from(`From: ${sender}\r\nSubject: ${subject}\r\n\r\nbody\r\n`),
        flags: [],
        sender,
        from: sender,
        subject,
        receivedAt: new Date(Date.now() - j * 1000),
        firstContact: true,
        request: { sender, authDomain: j % 3 === 0 ? null : `domain${j % 700}.test`, subject, spamScore: j % 5 === 0 ? null : (j % 90) / 10 - 1, likelySpam: j % 20 === 0, dmarc },
      });
    }
    await store.messages.deliver(batch);
  }
  for (let j = 0; j < 1000; j++) await services.contacts.allow(bob.id, `sender${j * 7}@domain${(j * 7) % 700}.test`);
  for (let j = 0; j < 100; j++) await services.contacts.allow(bob.id, `@domain${j * 3}.test`);
  // One message in INBOX and the pages' other data, for the weights.
  await store.messages.deliver([
    { userId: user.id, mailbox: 'INBOX', raw: Buffer.from('From: friend@example.org\r\nSubject: Lunch\r\nContent-Type: text/plain\r\n\r\nSee you at noon.\r\n'), flags: [], sender: 'friend@example.org', from: 'friend@example.org', subject: 'Lunch', receivedAt: new Date(), firstContact: false },
  ]);
  const [message] = await services.mail.list(user.id, 'INBOX');

  const app = await createHttpApp({ services, log: false, extraRoutes: (a) => registerWeb(a, { services }) });
  const { cookie } = await services.webSessions.open(user, { userAgent: 'bench', client: '127.0.0.1' });
  const headers = { cookie: `__Host-twoway-session=${cookie}` };

  // Deep key pages: the keys of the pages after 5,000 and after REQUESTS - 100 requests, by following Next.
  const keyAfter = async (n: number) => {
    let after: RequestPageKey | undefined;
    for (let seen = 0; seen < n; seen += 50) after = (await services.screener.page(user.id, { after, limit: 50 })).next ?? undefined;
    return after ? `${after.rank}_${after.lastSeen.getTime()}_${after.id}` : '';
  };
  const deep = [Math.floor(REQUESTS / 2), Math.max(0, REQUESTS - REQUESTS / 20 - 100)].map((n) => Math.floor(n / 50) * 50);
  const urls: Array<[string, string]> = [
    ['/screener (first page)', '/screener'],
    [`/screener?after=… (after ${deep[0]})`, `/screener?after=${await keyAfter(deep[0]!)}`],
    [`/screener?after=… (after ${deep[1]}, near the end)`, `/screener?after=${await keyAfter(deep[1]!)}`],
    ['/screener?likely=1 (with likely spam)', '/screener?likely=1'],
  ];
  const first = await app.inject({ method: 'GET', url: '/screener', headers });
  const digest = /hx-get="\/screener\/requests\?v=([^"&]+)"/.exec(first.body)?.[1];
  if (!digest) throw new Error('no poll digest on the page');
  const cases: Array<[string, string, number]> = [...urls.map(([l, u]): [string, string, number] => [l, u, 200]), ['poll /screener/requests (nothing new: 204)', `/screener/requests?v=${digest}`, 204]];
  // Round robin over the pages, so a change of the machine's load weighs on each alike.
  const times = cases.map(() => [] as number[]);
  // The process's CPU time per request too: on a loaded machine the wall time is mostly waiting for a core.
  const cpuTimes = cases.map(() => [] as number[]);
  const listTimes: number[] = [];
  for (let i = 0; i < SAMPLES + 5; i++) {
    for (const [c, [, url, status]] of cases.entries()) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url, headers });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpu = process.cpuUsage(c0);
      if (res.statusCode !== status) throw new Error(`${url}: ${res.statusCode}`);
      if (i >= 5) {
        // warm-up left out
        times[c]!.push(ms);
        cpuTimes[c]!.push((cpu.user + cpu.system) / 1000);
      }
    }
    // The design before key pages, in the same rounds: rank every request in memory (then slice 50).
    const t0 = process.hrtime.bigint();
    await services.screener.list(user.id, 'pending');
    if (i >= 5) listTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.push(listTimes);
  cpuTimes.push([]);
  cases.push(['services.screener.list alone (all requests ranked in memory: the offset pages before)', '', 0]);
  const quantile = (xs: number[], q: number) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  };
  const timing = cases.map(([label], c) => ({
    page: label,
    medianMs: quantile(times[c]!, 0.5),
    p95Ms: quantile(times[c]!, 0.95),
    cpuMedianMs: quantile(cpuTimes[c]!, 0.5),
    cpuP95Ms: quantile(cpuTimes[c]!, 0.95),
  }));

  // Page weights: the HTML and everything it links, as transferred with br/gzip and raw.
  const pages: Array<[string, string, boolean]> = [
    ['sign-in', '/sign-in', false],
    ['Screener (50 requests)', '/screener', true],
    ['Mail', '/mail/INBOX', true],
    ['message', `/message/${message!.id}`, true],
    ['Compose', '/compose', true],
    ['Sent', '/sent', true],
    ['Contacts', '/contacts', true],
    ['settings', '/settings', true],
    ['sessions', '/sessions', true],
  ];
  const weights: Array<{ page: string; htmlBytes: number; assetBytes: number; totalBytes: number; rawBytes: number; encoding: string }> = [];
  for (const [label, url, signed] of pages) {
    const enc = { 'accept-encoding': 'br, gzip' };
    const res = await app.inject({ method: 'GET', url, headers: signed ? { ...headers, ...enc } : enc });
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
    const raw = await app.inject({ method: 'GET', url, headers: signed ? headers : {} });
    const links = [...raw.body.matchAll(/(?:src|href)="(\/static\/[^"]+)"/g)].map((m) => m[1]!);
    let assets = 0;
    let rawAssets = 0;
    for (const link of links) {
      assets += (await app.inject({ url: link, headers: enc })).rawPayload.length;
      rawAssets += (await app.inject({ url: link })).rawPayload.length;
    }
    weights.push({
      page: label,
      htmlBytes: res.rawPayload.length,
      assetBytes: assets,
      totalBytes: res.rawPayload.length + assets,
      rawBytes: raw.rawPayload.length + rawAssets,
      encoding: String(res.headers['content-encoding'] ?? 'none'),
    });
  }
  await app.close();

  const kb = (n: number) => (n / 1024).toFixed(1);
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  const markdown = `Screener with ${REQUESTS.toLocaleString('en')} pending requests, ${SAMPLES} samples per page after 5 warm-up requests (server time via fastify inject, SQLite; load average ${load} at the end; CPU: the process's user + system time per request)

| page | median ms | p95 ms | CPU median ms | CPU p95 ms |
|---|---:|---:|---:|---:|
${timing.map((t) => `| ${t.page} | ${t.medianMs.toFixed(1)} | ${t.p95Ms.toFixed(1)} | ${Number.isNaN(t.cpuMedianMs) ? '' : t.cpuMedianMs.toFixed(1)} | ${Number.isNaN(t.cpuP95Ms) ? '' : t.cpuP95Ms.toFixed(1)} |`).join('\n')}

Transferred weight of each page on a first visit (HTML plus the scripts and stylesheet it links, \`Accept-Encoding: br, gzip\`; target < 100 KB)

| page | HTML KB | scripts + CSS KB | total KB | uncompressed KB | encoding |
|---|---:|---:|---:|---:|---|
${weights.map((w) => `| ${w.page} | ${kb(w.htmlBytes)} | ${kb(w.assetBytes)} | **${kb(w.totalBytes)}** | ${kb(w.rawBytes)} | ${w.encoding} |`).join('\n')}
`;
  process.stdout.write(`${markdown}\n`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync('bench/out/web-screener.json', JSON.stringify({ rows: [{ requests: REQUESTS, timing, weights }], markdown }, null, 2));
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
