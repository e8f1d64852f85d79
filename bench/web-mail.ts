/**
 * Server time per Mail page with 10,000 messages in INBOX (issue 14): the
 * web app in-process (fastify inject, no network), fresh SQLite store. Pages:
 * the newest 50, a key-paged page deep in the folder (`before=` a UID near
 * the oldest), and a search. Prints median and p95 and the page weight.
 * Run: node --import tsx bench/web-mail.ts [messages] [samples]
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

const MESSAGES = Number(process.argv[2] ?? 10_000);
const SAMPLES = Number(process.argv[3] ?? 60);

const dir = mkdtempSync(join(tmpdir(), 'twoway-bench-web-mail-'));
const store = await openStore(`sqlite:${join(dir, 'bench.db')}`);
try {
  const services = createServices(store, ['example.test']);
  const user = await services.accounts.add('alice@example.test', 'correct horse battery staple', 'open');
  for (let i = 0; i < MESSAGES; i += 500) {
    const batch: NewMessage[] = [];
    for (let j = i; j < Math.min(MESSAGES, i + 500); j++) {
      const sender = `sender${j}@domain${j % 700}.test`;
      const subject = `Hello number ${j}: a subject of ordinary length`;
      batch.push({
        userId: user.id,
        mailbox: 'INBOX',
        raw: Buffer.from(`From: ${sender}\r\nSubject: ${subject}\r\n\r\nbody\r\n`),
        flags: j % 2 === 0 ? ['\\Seen'] : [],
        sender,
        from: sender,
        subject,
        receivedAt: new Date(Date.now() - (MESSAGES - j) * 1000),
        firstContact: false,
      });
    }
    await store.messages.deliver(batch);
  }
  const app = await createHttpApp({ services, log: false, extraRoutes: (a) => registerWeb(a, { services }) });
  const { cookie } = await services.webSessions.open(user, { userAgent: 'bench', client: '127.0.0.1' });
  const headers = { cookie: `__Host-twoway-session=${cookie}` };

  const urls = ['/mail/INBOX', '/mail/INBOX?before=200', `/mail/INBOX?before=${Math.floor(MESSAGES / 2)}`, '/mail/INBOX?q=number%2042'];
  const rows: string[] = [];
  let html = '';
  for (const url of urls) {
    const times: number[] = [];
    for (let i = 0; i < SAMPLES + 5; i++) {
      const t0 = process.hrtime.bigint();
      const res = await app.inject({ method: 'GET', url, headers });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
      if (i >= 5) times.push(ms); // warm-up left out
      if (url === urls[0]) html = res.body;
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    rows.push(`| ${url} | ${at(0.5).toFixed(1)} | ${at(0.95).toFixed(1)} |`);
  }
  const kb = (n: number) => (n / 1024).toFixed(1);
  const htmlBytes = Buffer.from(html);
  console.log(`Mail with ${MESSAGES} messages in INBOX, ${SAMPLES} samples per page (ms, server time via inject)`);
  console.log('| page | median | p95 |\n|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`\nPage weight (newest 50): HTML ${kb(htmlBytes.length)} KB (${kb(gzipSync(htmlBytes).length)} KB gzip); htmx and CSS as for the Screener`);
  await app.close();
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
