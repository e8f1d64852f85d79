/**
 * `twoway demo`: Two-Way Mail on loopback with no setup. Three domains, each
 * its own server (src/cli/demo-lab.ts): north.test and south.test speak TWM,
 * oldmail.test only SMTP. One embedded DNS server publishes MX, SPF, DKIM,
 * DMARC, and for the TWM domains the SRV and key records. Real clients
 * submit real mail; the demo prints where each message went, how, and how
 * many octets each step moved.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import { receiptToJson } from '../core/twm-schema.ts';
import { createLogger, type RunningServer } from '../main.ts';
import { startLab } from './demo-lab.ts';
import { CliError, EXIT, type OutStream } from './output.ts';

const MARKER = '.twoway-demo';
const PASSWORD = 'demo-password';

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new CliError(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function submit(server: RunningServer, host: string, user: string, to: string, raw: string): Promise<void> {
  const transport = nodemailer.createTransport({
    host,
    port: server.submission!.port,
    auth: { user, pass: PASSWORD },
    requireTLS: true,
    // The demo's submission certificate is self-signed; TLS is still used.
    tls: { rejectUnauthorized: false },
  });
  try {
    await transport.sendMail({ envelope: { from: user, to }, raw: raw.replace(/\r?\n/g, '\r\n') });
  } finally {
    transport.close();
  }
}

const octets = (n: number) => `${n.toLocaleString('en-US')} B`;

export async function runDemo(opts: { dir: string; keepRunning?: boolean }, stdout: OutStream = process.stdout): Promise<void> {
  const dir = resolve(opts.dir);
  freshDemoDir(dir);
  const out = (s = '') => stdout.write(s + '\n');

  out(`Two-Way Mail demo, data in ${dir}`);
  out('  starting north.test (127.0.0.2, TWM), south.test (127.0.0.3, TWM) and oldmail.test (127.0.0.4, SMTP only)…');
  const lab = await startLab(
    dir,
    [
      { domain: 'north.test', host: '127.0.0.2', twm: true },
      { domain: 'south.test', host: '127.0.0.3', twm: true },
      { domain: 'oldmail.test', host: '127.0.0.4', twm: false },
    ],
    // Errors only: the lab warning (loopback allowed) is the point of a demo.
    createLogger('error'),
  );
  try {
    const demo = await demoUsers(lab, out);
    await allowedOverTwm(demo);
    const stranger = await strangerOverTwm(demo);
    await approval(demo, stranger);
    await legacySmtp(demo);
    out();
    out('   step  path            octets moved   body stored at recipient   landed');
    for (const r of demo.rows) out(`   ${r[0]!.padEnd(5)} ${r[1]!.padEnd(15)} ${r[2]!.padStart(12)}   ${r[3]!.padStart(24)}   ${r[4]}`);
    out('   (TWM octets are the request and response contents: notice, body, receipt; SMTP: the message as stored)');
    out();
    howToLook(dir, out);
    if (opts.keepRunning) {
      out();
      out('The servers keep running; Ctrl-C stops them.');
      await new Promise<void>((done) => {
        process.once('SIGINT', done);
        process.once('SIGTERM', done);
      });
    }
  } finally {
    await lab.close();
  }
}

/** A demo directory of its own: one a previous run made is removed, any other refused. */
function freshDemoDir(dir: string): void {
  if (existsSync(dir)) {
    if (!existsSync(join(dir, MARKER))) throw new CliError(`${dir} exists and is not a demo directory; choose another --dir`, EXIT.conflict);
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, MARKER), 'created by twoway demo; removed by the next run\n');
}

type Lab = Awaited<ReturnType<typeof startLab>>;

/** The three servers, their users, and the summary table's rows as the steps add them. */
interface Demo {
  north: RunningServer;
  south: RunningServer;
  old: RunningServer;
  alice: { id: number };
  carol: { id: number };
  out: (s?: string) => void;
  rows: string[][];
}

async function demoUsers(lab: Lab, out: (s?: string) => void): Promise<Demo> {
  const north = lab.servers.get('north.test')!;
  const south = lab.servers.get('south.test')!;
  const old = lab.servers.get('oldmail.test')!;
  const alice = await north.services.accounts.add('alice@north.test', PASSWORD, 'screen');
  await north.services.contacts.allow(alice.id, 'bob@south.test');
  await south.services.accounts.add('bob@south.test', PASSWORD, 'open');
  await south.services.accounts.add('dave@south.test', PASSWORD, 'open');
  const carol = await old.services.accounts.add('carol@oldmail.test', PASSWORD, 'open');
  out(`  embedded DNS on ${lab.dns.address}: MX, SPF, DKIM, DMARC for all three; _twoway._tcp SRV and TWM keys for north and south`);
  out('  alice@north.test screens strangers; her address book allows bob@south.test');
  out();
  return { north, south, old, alice, carol, out, rows: [] };
}

const inboxOf = async (server: RunningServer, userId: number, subject: string) => (await server.services.mail.list(userId)).find((m) => m.subject === subject);
const noticeTo = async (server: RunningServer, sender: string, subject: string) => (await server.store.twmOut.listBySender(sender)).find((n) => n.subject === subject);
const receiptSize = (id: string, rcpt: string) => receiptToJson({ id, results: [{ rcpt, status: 'delivered' }] }).length;

/** 1. An allowed sender over TWM. */
async function allowedOverTwm({ north, south, alice, out, rows }: Demo): Promise<void> {
  const s1 = 'Lunch on Friday?';
  await submit(south, '127.0.0.3', 'bob@south.test', 'alice@north.test', `From: bob@south.test\nTo: alice@north.test\nSubject: ${s1}\n\nHello Alice, lunch on Friday?\n`);
  const m1 = await waitFor('bob\'s message at north.test', () => inboxOf(north, alice.id, s1));
  const n1 = await waitFor('bob\'s notice', () => noticeTo(south, 'bob@south.test', s1));
  out(`1. bob@south.test -> alice (allowed), by Two-Way Mail`);
  out(`   south.test sent a signed notice (${octets(n1.content.length)}); north.test saw bob in alice's address book, answered "accepted",`);
  out(`   fetched the body from south.test's own SRV target (${octets(n1.size)}), stored it in alice's ${m1.mailbox}, and sent a receipt (${octets(receiptSize(n1.id, 'alice@north.test'))}).`);
  rows.push(['1', 'TWM, allowed', octets(n1.content.length + n1.size + receiptSize(n1.id, 'alice@north.test')), octets(n1.size), m1.mailbox]);
}

/** 2. A stranger over TWM: a contact request, no body. */
async function strangerOverTwm({ north, south, alice, out, rows }: Demo) {
  const s2 = 'Question about your talk';
  await submit(
    south,
    '127.0.0.3',
    'dave@south.test',
    'alice@north.test',
    `From: dave@south.test\nTo: alice@north.test\nSubject: ${s2}\nTWM-Intro: Hi Alice, I saw your talk at the meetup; may I ask a question?\n\n${'A long question. '.repeat(200)}\n`,
  );
  const request = await waitFor('dave\'s contact request', async () => (await north.services.screener.list(alice.id)).find((r) => r.sender === 'dave@south.test'));
  const n2 = await waitFor('dave\'s notice', () => noticeTo(south, 'dave@south.test', s2));
  out(`2. dave@south.test -> alice (a stranger), by Two-Way Mail`);
  out(`   north.test received only the notice (${octets(n2.content.length)}) and made a contact request with dave's introduction:`);
  out(`     "${request.intro}"`);
  // north.test records the request before south.test has read the answer: wait for both.
  const dave = await south.services.accounts.get('dave@south.test');
  const daveStatus = await waitFor('dave\'s status', async () => {
    const status = (await south.services.sent.list(dave))[0]?.recipients[0]?.status;
    return status === 'pending' ? status : undefined;
  });
  out(`   The ${octets(n2.size)} body stays at south.test; dave's status: ${daveStatus}.`);
  rows.push(['2', 'TWM, stranger', octets(n2.content.length), '0 B', 'Screener request']);
  return { subject: s2, notice: n2 };
}

/** 3. Approval fetches the body. */
async function approval({ north, alice, out, rows }: Demo, { subject: s2, notice: n2 }: Awaited<ReturnType<typeof strangerOverTwm>>): Promise<void> {
  await north.services.screener.approve(alice.id, ['dave@south.test']);
  const m3 = await waitFor('dave\'s message after approval', () => inboxOf(north, alice.id, s2));
  out(`3. alice approves dave: north.test fetches the body (${octets(n2.size)}) and it lands in her ${m3.mailbox}; dave's status becomes "delivered".`);
  rows.push(['3', 'TWM, approval', octets(n2.size + receiptSize(n2.id, 'alice@north.test')), octets(n2.size), m3.mailbox]);
}

/** 4. A legacy domain: SMTP. */
async function legacySmtp({ north, old, carol, out, rows }: Demo): Promise<void> {
  const s4 = 'Old friends';
  await submit(north, '127.0.0.2', 'alice@north.test', 'carol@oldmail.test', `From: alice@north.test\nTo: carol@oldmail.test\nSubject: ${s4}\n\nHi Carol!\n`);
  const m4 = await waitFor('alice\'s message at oldmail.test', () => inboxOf(old, carol.id, s4));
  out(`4. alice -> carol@oldmail.test: no _twoway._tcp record there, so plain SMTP (STARTTLS, DKIM): the whole message (${octets(m4.size)} as stored) went at once.`);
  rows.push(['4', 'SMTP, legacy', octets(m4.size), octets(m4.size), `carol's ${m4.mailbox}`]);
}

function howToLook(dir: string, out: (s?: string) => void): void {
  const rel = (p: string) => relative(process.cwd(), p) || p;
  const northConfig = rel(join(dir, 'north.test', 'twoway.toml'));
  const southConfig = rel(join(dir, 'south.test', 'twoway.toml'));
  out('How to look:');
  out(`  npx twoway mail list alice@north.test --config ${northConfig}`);
  out(`  npx twoway requests list alice@north.test --config ${northConfig}`);
  out(`  npx twoway sent list dave@south.test --config ${southConfig}`);
  out(`  npx twoway dns --config ${northConfig}`);
}
