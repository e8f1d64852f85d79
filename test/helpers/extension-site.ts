/**
 * The sign-up site of the extension's browser tests (Chromium and Firefox):
 * a fastify page over HTTPS with a certificate from a private CA, a sign-up
 * form (optionally declaring its mail provider with
 * <meta name="twoway-confirmation-from">), and its mailer: nodemailer sends
 * a DKIM-signed confirmation over SMTP to the user's twoway server, SPF and
 * DMARC published in the test's embedded DNS.
 */
import { generateKeyPairSync } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import nodemailer from 'nodemailer';

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

/** The sign-up site: /signup (and /provider/signup, declaring mailer.test), its mailer, /resend. */
export async function startShop(smtpPort: number, tls: { key: string; cert: string }, keys: Record<string, { privateKey: string }>): Promise<Shop> {
  const sent: Sent[] = [];
  const delay = { ms: 1_500 };
  const app = Fastify({ https: tls });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_r, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))));
  const page = (declare: string | null) => `<!doctype html><html><head><title>Create your account</title>${declare ? `<meta name="twoway-confirmation-from" content="${declare}">` : ''}</head>
<body><main><h1>Create your account</h1><form method="post" action="/signup?from=${declare ?? ''}">
<label>Email <input type="email" name="email" id="email"></label>
<label>Password <input type="password" name="password" id="password" autocomplete="new-password"></label>
<button type="submit">Create account</button></form></main></body></html>`;
  app.get('/signup', async (_q, r) => r.type('text/html').send(page(null)));
  app.get('/provider/signup', async (_q, r) => r.type('text/html').send(page('mailer.test')));
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
