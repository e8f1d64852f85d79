/**
 * Server time per Screener page with 10,000 pending requests (issue 14): the
 * web app in-process (fastify inject, no network), on a fresh SQLite store.
 * Prints the median and p95 per page and the page weight (HTML + htmx + CSS,
 * raw and gzip). Run: node --import tsx bench/web-screener.ts [requests] [samples]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { openStore } from '../src/store/open.ts';
import { createServices } from '../src/services/index.ts';
import { createHttpApp } from '../src/protocols/http/app.ts';
import { registerWeb } from '../src/web/plugin.ts';
import type { NewMessage } from '../src/store/types.ts';

const REQUESTS = Number(process.argv[2] ?? 10_000);
const SAMPLES = Number(process.argv[3] ?? 60);

const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-web-'));
const store = await openStore(`sqlite:${join(dir, 'bench.db')}`);
try {
  const services = createServices(store, ['example.test']);
  const user = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'screen');
  for (let i = 0; i < REQUESTS; i += 500) {
    const batch: NewMessage[] = [];
    for (let j = i; j < Math.min(REQUESTS, i + 500); j++) {
      const sender = `sender${j}@domain${j % 700}.test`;
      const subject = `Hello number ${j}: a subject of ordinary length`;
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
        request: { sender, authDomain: j % 3 === 0 ? null : `domain${j % 700}.test`, subject },
      });
    }
    await store.messages.deliver(batch);
  }
  const app = await createHttpApp({ services, log: false, extraRoutes: (a) => registerWeb(a, { services }) });
  const { cookie } = await services.webSessions.open(user, { userAgent: 'bench', client: '127.0.0.1' });
  const headers = { cookie: `__Host-twoway-session=${cookie}` };

  const pages = [1, 100, 200];
  const rows: string[] = [];
  let html = '';
  for (const p of pages) {
    const times: number[] = [];
    for (let i = 0; i < SAMPLES + 5; i++) {
      const t0 = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url: `/screener?page=${p}`, headers });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (res.statusCode !== 200) throw new Error(`page ${p}: ${res.statusCode}`);
      if (i >= 5) times.push(ms); // warm-up left out
      if (p === 1) html = res.body;
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    rows.push(`| /screener?page=${p} | ${at(0.5).toFixed(1)} | ${at(0.95).toFixed(1)} |`);
  }
  const poll = [] as number[];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = process.hrtime.bigint();
    await app.inject({ method: 'GET', url: `/screener/requests?page=1&v=x`, headers });
    poll.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  poll.sort((a, b) => a - b);
  const listTimes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = process.hrtime.bigint();
    await services.screener.list(user.id, 'pending');
    listTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  listTimes.sort((a, b) => a - b);
  const htmxPath = /src="([^"]+htmx[^"]+)"/.exec(html)![1]!;
  const cssPath = /href="([^"]+\.css)"/.exec(html)![1]!;
  const htmx = (await app.inject({ url: htmxPath })).rawPayload;
  const css = (await app.inject({ url: cssPath })).rawPayload;
  const kb = (n: number) => (n / 1024).toFixed(1);
  const htmlBytes = Buffer.from(html);
  console.log(`Screener with ${REQUESTS} pending requests, ${SAMPLES} samples per page (ms, server time via inject)`);
  console.log('| page | median | p95 |\n|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`| poll /screener/requests | ${poll[Math.floor(poll.length / 2)]!.toFixed(1)} | ${poll[Math.floor(poll.length * 0.95)]!.toFixed(1)} |`);
  console.log(`| services.screener.list alone (all ${REQUESTS}, ranked) | ${listTimes[10]!.toFixed(1)} | ${listTimes[19]!.toFixed(1)} (max of 20) |`);
  console.log(`\nPage weight (page 1, 50 requests): HTML ${kb(htmlBytes.length)} KB (${kb(gzipSync(htmlBytes).length)} KB gzip), htmx ${kb(htmx.length)} KB (${kb(gzipSync(htmx).length)} KB gzip), CSS ${kb(css.length)} KB (${kb(gzipSync(css).length)} KB gzip)`);
  console.log(`Total: ${kb(htmlBytes.length + htmx.length + css.length)} KB raw, ${kb(gzipSync(htmlBytes).length + gzipSync(htmx).length + gzipSync(css).length)} KB gzip (the listener does not compress today)`);
  await app.close();
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
