/**
 * The sign-up site of the extension's browser tests (Chromium and Firefox):
 * a fastify page over HTTPS with a certificate from a private CA, a sign-up
 * form (optionally declaring its mail provider with
 * <meta name="twoway-confirmation-from">), and its mailer: nodemailer sends
 * a DKIM-signed confirmation over SMTP to the user's twoway server, SPF and
 * DMARC published in the test's embedded DNS.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import nodemailer from 'nodemailer';
import { type BrowserContext, type CDPSession, chromium, type Page } from 'playwright-core';
import { CHROMIUM } from './browser.ts';

/**
 * Builds the extension with the project's script into a new folder (pushed
 * on `dirs` for the test's cleanup) and returns the unpacked package's path.
 * With `grantAllSites`, this copy asks at install for the optional all-sites
 * permission (its optional_host_permissions) that automatic mode asks for in Chromium's prompt;
 * the background registers the content script on the same
 * permissions.contains check either way (the real prompt is answered in
 * test/extension-chromium-prompt.test.ts).
 */
export function buildExtension(dirs: string[], { grantAllSites = false } = {}): string {
  const out = mkdtempSync(join(tmpdir(), 'twoway-ext-build-'));
  dirs.push(out);
  const built = spawnSync(process.execPath, ['scripts/build-extension.mjs', '--out', out], { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const ext = join(out, 'extension');
  if (grantAllSites) {
    const manifestPath = join(ext, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(manifestPath, JSON.stringify({ ...manifest, host_permissions: manifest.optional_host_permissions }));
  }
  return ext;
}

/** DKIM key and DNS records (SPF for 127.0.0.1, DMARC p=reject) of one sending domain. */
export function dkimDomain(domain: string) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'der' } });
  return {
    privateKey,
    records: [
      { name: domain, type: 'TXT' as const, data: 'v=spf1 ip4:127.0.0.1 -all' },
      { name: `_dmarc.${domain}`, type: 'TXT' as const, data: 'v=DMARC1; p=reject' },
      { name: `sel._domainkey.${domain}`, type: 'TXT' as const, data: `v=DKIM1; k=rsa; p=${publicKey.toString('base64')}` },
    ],
  };
}

export interface Sent {
  to: string;
  from: string;
  at: number;
  response: string;
  code: number;
}

export interface Shop {
  app: FastifyInstance;
  port: number;
  sent: Sent[];
  /** How long after the sign-up answer the confirmation leaves (a site's job queue). */
  delay: { ms: number };
}

/** Page data the extension must never send anywhere (test/extension-chromium-network.test.ts looks for the marker). */
export const PAGE_SECRET = 'PAGE-SECRET';

/**
 * The sign-up site: /signup (and /provider/signup, declaring mailer.test; /rich/signup, declaring
 * mailer.test, with a name field, a hidden token and a cookie holding PAGE_SECRET), its mailer, /resend.
 */
export async function startShop(smtpPort: number, tls: { key: string; cert: string }, keys: Record<string, { privateKey: string }>): Promise<Shop> {
  const sent: Sent[] = [];
  const delay = { ms: 1_500 };
  const app = Fastify({ https: tls });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_r, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))));
  const page = (declare: string | null, extra = '') => `<!doctype html><html><head><title>Create your account</title>${declare ? `<meta name="twoway-confirmation-from" content="${declare}">` : ''}</head>
<body><main><h1>Create your account</h1><form method="post" action="/signup?from=${declare ?? ''}">${extra}
<label>Email <input type="email" name="email" id="email"></label>
<label>Password <input type="password" name="password" id="password" autocomplete="new-password"></label>
<button type="submit">Create account</button></form></main></body></html>`;
  app.get('/signup', async (_q, r) => r.type('text/html').send(page(null)));
  app.get('/provider/signup', async (_q, r) => r.type('text/html').send(page('mailer.test')));
  const rich = `<label>Your name <input name="fullname" id="fullname"></label><input type="hidden" name="csrf" value="${PAGE_SECRET}-csrf">`;
  app.get('/rich/signup', async (_q, r) => r.header('set-cookie', `sid=${PAGE_SECRET}-cookie; Secure; Path=/`).type('text/html').send(page('mailer.test', rich)));
  /** Sends one confirmation, DKIM-signed by the sending domain, and records the SMTP answer. */
  async function mail(to: string, fromDomain: string): Promise<Sent> {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, name: fromDomain, tls: { rejectUnauthorized: false } });
    const from = `no-reply@${fromDomain}`;
    const record: Sent = { to, from, at: Date.now(), response: '', code: 0 };
    try {
      const info = await transport.sendMail({
        from,
        to,
        subject: `Confirm your ${fromDomain} account`,
        text: 'Click the link to confirm.\n',
        dkim: { domainName: fromDomain, keySelector: 'sel', privateKey: keys[fromDomain]!.privateKey },
      });
      record.response = info.response;
      record.code = Number(info.response.slice(0, 3));
    } catch (err) {
      const e = err as { responseCode?: number; response?: string };
      record.response = e.response ?? String(err);
      record.code = e.responseCode ?? 0;
    } finally {
      transport.close();
    }
    sent.push(record);
    return record;
  }
  app.post('/signup', async (q, r) => {
    const body = q.body as { email: string };
    const host = String(q.headers.host).split(':')[0]!;
    const declared = (q.query as { from?: string }).from;
    // Like a real site's job queue: the confirmation leaves shortly after the answer.
    setTimeout(() => void mail(body.email, declared || host), delay.ms);
    return r.type('text/html').send('<!doctype html><p>Check your mail</p>');
  });
  app.post('/resend', async (q) => mail((q.body as { email: string }).email, (q.body as { domain: string }).domain));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as { port: number }).port, sent, delay };
}

/** Polls until f returns something truthy. */
export async function until<T>(what: string, f: () => Promise<T | undefined | null | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const spki = (certPem: string) => createHash('sha256').update(createPublicKey(certPem).export({ type: 'spki', format: 'der' })).digest('base64');

/**
 * Debian's Chromium (headless=new runs extensions) with the built extension loaded, the site's
 * names mapped to 127.0.0.1, and exactly the given certificates trusted (by their SPKI).
 */
export async function launchChromium(ext: string, profile: string, sites: string[], certs: string[], extraArgs: string[] = []): Promise<{ context: BrowserContext; extId: string; firstRun: Page }> {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: false, // the flag below: the new headless mode runs extensions
    viewport: { width: 900, height: 700 },
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      `--disable-extensions-except=${ext}`,
      `--load-extension=${ext}`,
      `--host-resolver-rules=${sites.map((s) => `MAP ${s} 127.0.0.1`).join(', ')}`,
      `--ignore-certificate-errors-spki-list=${certs.map(spki).join(',')}`,
      ...extraArgs,
    ],
  });
  const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 30_000 }));
  const extId = new URL(worker.url()).host;
  // The options page the extension opens at install (runtime.openOptionsPage): the tests connect
  // there. Opening a second one meanwhile races it (Chromium navigates the same tab again).
  const url = `chrome-extension://${extId}/options.html`;
  const firstRun = await until('the first-run options page', async () => context.pages().find((p) => p.url() === url), 30_000);
  await firstRun.waitForLoadState();
  return { context, extId, firstRun };
}

/** The toolbar popup, opened by the extension's action on a tab: a page target playwright does not list, driven over raw CDP. */
export interface Popup {
  eval<T>(expression: string): Promise<T>;
  screenshot(path: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Clicks the extension's toolbar button on the tab showing `page` (CDP Extensions.triggerAction:
 * the same action as the user's click, which is what grants activeTab) and attaches to the popup
 * it opens.
 */
export async function openToolbarPopup(context: BrowserContext, extId: string, page: Page): Promise<Popup> {
  const cdp: CDPSession = await context.browser()!.newBrowserCDPSession();
  type Target = { targetId: string; type: string; url: string };
  const targets = async (filter?: { type: string }[]) => ((await cdp.send('Target.getTargets', filter ? ({ filter } as never) : {})) as { targetInfos: Target[] }).targetInfos;
  const popupUrl = `chrome-extension://${extId}/popup.html`;
  const before = new Set((await targets()).filter((x) => x.url === popupUrl).map((x) => x.targetId));
  const tabs = (await targets([{ type: 'tab' }])).filter((x) => x.url === page.url());
  assert.equal(tabs.length, 1, `one tab shows ${page.url()}`);
  await cdp.send('Extensions.triggerAction' as never, { id: extId, targetId: tabs[0]!.targetId } as never);
  const popup = await until('the toolbar popup', async () => (await targets()).find((x) => x.url === popupUrl && !before.has(x.targetId)), 10_000);
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: popup.targetId, flatten: false })) as { sessionId: string };
  let next = 0;
  const waiting = new Map<number, (m: { result?: unknown; error?: { message: string } }) => void>();
  cdp.on('Target.receivedMessageFromTarget', (e: { sessionId: string; message: string }) => {
    if (e.sessionId !== sessionId) return;
    const m = JSON.parse(e.message) as { id?: number; result?: unknown; error?: { message: string } };
    if (m.id !== undefined) waiting.get(m.id)?.(m);
  });
  const send = async <T>(method: string, params: unknown): Promise<T> => {
    const id = ++next;
    const answer = new Promise<{ result?: unknown; error?: { message: string } }>((r) => waiting.set(id, r));
    await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
    const m = await answer;
    if (m.error) throw new Error(`${method}: ${m.error.message}`);
    return m.result as T;
  };
  return {
    async eval<T>(expression: string) {
      const r = await send<{ result: { value: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true, userGesture: true });
      if (r.exceptionDetails) throw new Error(`popup: ${r.exceptionDetails.text}`);
      return r.result.value;
    },
    async screenshot(path: string) {
      const { data } = await send<{ data: string }>('Page.captureScreenshot', { format: 'png' });
      writeFileSync(path, Buffer.from(data, 'base64'));
    },
    async close() {
      await cdp.send('Target.closeTarget', { targetId: popup.targetId }).catch(() => undefined);
      await cdp.detach().catch(() => undefined);
    },
  };
}
