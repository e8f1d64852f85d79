/**
 * Decisions are data: every way of deciding about a stranger changes stored
 * state only, and the receiving server's workers act on it from the store,
 * whichever process decided. Three real servers on loopback with the
 * embedded DNS server and a private CA: a.test sends over Two-Way Mail,
 * c.test is legacy SMTP only, b.test receives (screen mode, declines
 * revealed). Each b.test user is reached by two TWM strangers (amy, abe) and
 * two SMTP strangers (cal, cid), and decides by one path:
 *
 *   cli   `twoway requests approve|deny` in a child process (the CLI opens the store itself)
 *   book  `twoway contacts allow|block` in a child process (an address-book write, no request named)
 *   api   POST /api/requests/approve|deny
 *   dav   a CardDAV PUT of a vCard that allows, and of one that blocks (X-TWOWAY-BLOCKED)
 *   dom   `twoway requests approve-domain` (a.test, CLI) and POST /api/requests/approve-domain (c.test)
 *
 * Approved: amy's pending notice is fetched into INBOX (amy sees
 * "delivered") and cal's held message moves to INBOX. Denied: abe gets the
 * `declined` receipt and cid's held message is dropped.
 *
 * b.test runs on a controlled clock with approval and decline delays of an
 * hour: a decision schedules the fetch or receipt up to an hour later, and
 * the test moves b's clock instead of waiting.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { commonFreePort, createOffsetClock, eventually, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';

const run = promisify(execFile);
const HOUR = 3_600_000;
const PATHS = ['cli', 'book', 'api', 'dav', 'dom'] as const;
type Path = (typeof PATHS)[number];

describe('decisions reach pending mail from the store, whichever path made them', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  let agent: Agent;
  const clock = createOffsetClock();

  const rcpt = (p: Path) => `${p}@b.test`;
  const userId = async (address: string) => (await b.server.services.accounts.get(address)).id;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const slow = (t: string) => t.replace('approval_delay = "1s"', 'approval_delay = "1h"').replace('decline_delay = "1s"', 'decline_delay = "1h"');
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, edit: slow, clock });
    c = await startDomain({ lab, dns, domain: 'c.test', host: '127.0.0.4', smtpPort: port, twm: false });
    assert.equal(b.server.config.twm.approvalDelayMs, HOUR, 'the delays were set');
    for (const name of ['amy', 'abe']) await a.server.services.accounts.add(`${name}@a.test`, `${name}-password`, 'open');
    for (const name of ['cal', 'cid']) await c.server.services.accounts.add(`${name}@c.test`, `${name}-password`, 'open');
    for (const p of PATHS) {
      await b.server.services.accounts.add(rcpt(p), `${p}-password`, 'screen');
      await b.server.services.accounts.setRevealDeclined(rcpt(p), true);
    }
    agent = new Agent({ connect: { ca: readFileSync(b.server.config.tls.cert, 'utf8') } });

    const everyone = PATHS.map(rcpt);
    // The denied senders write to every path but `dom`, which has only an approval.
    const deniable = PATHS.filter((p) => p !== 'dom').map(rcpt);
    const viaA = (name: string, to: string[]) =>
      submit({ port: a.server.submission!.port, host: '127.0.0.2', user: `${name}@a.test`, pass: `${name}-password`, to, subject: `from ${name}` });
    const viaC = (name: string, to: string[]) =>
      submit({ port: c.server.submission!.port, host: '127.0.0.4', user: `${name}@c.test`, pass: `${name}-password`, to, subject: `from ${name}` });
    await Promise.all([viaA('amy', everyone), viaA('abe', deniable), viaC('cal', everyone), viaC('cid', deniable)]);

    // Every recipient has its requests: TWM ones without a body, SMTP ones with the message held.
    for (const p of PATHS) {
      const id = await userId(rcpt(p));
      const want = p === 'dom' ? ['amy@a.test', 'cal@c.test'] : ['abe@a.test', 'amy@a.test', 'cal@c.test', 'cid@c.test'];
      const requests = await eventually(async () => {
        const rs = (await b.server.services.screener.list(id, 'pending')).filter((r) => r.sender.endsWith('@c.test') ? r.held === 1 : true);
        return rs.length === want.length && rs;
      }, 30_000, `the requests of ${rcpt(p)}`);
      assert.deepEqual(requests.map((r) => r.sender).sort(), want);
      assert.equal(requests.find((r) => r.sender === 'cal@c.test')?.authDomain, 'c.test', 'the SMTP stranger was authenticated');
    }
  });

  after(async () => {
    await agent?.close();
    for (const t of [a, b, c]) await t?.close();
    await dns?.close();
    lab?.close();
  });

  /** `twoway …` as a user runs it: a process of its own on b's configuration, while b keeps running. */
  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args, '--config', b.server.config.file!], { timeout: 60_000 });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; code?: number };
      throw new Error(`twoway ${args.join(' ')} failed (${e.code}): ${e.stderr}`);
    }
  };

  const api = async (p: Path, path: string, body: unknown) => {
    const res = await request(`${b.server.http.url}${path}`, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization: `Basic ${Buffer.from(`${rcpt(p)}:${p}-password`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    return JSON.parse(text) as unknown;
  };

  const putCard = async (p: Path, name: string, lines: string[]) => {
    const res = await request(`${b.server.http.url}/dav/addressbooks/${rcpt(p)}/default/${name}.vcf`, {
      method: 'PUT',
      dispatcher: agent,
      headers: { authorization: `Basic ${Buffer.from(`${rcpt(p)}:${p}-password`).toString('base64')}`, 'content-type': 'text/vcard; charset=utf-8', 'if-none-match': '*' },
      body: ['BEGIN:VCARD', 'VERSION:4.0', `UID:${name}-${p}`, `FN:${name}`, ...lines, 'END:VCARD', ''].join('\r\n'),
    });
    await res.body.text();
    assert.equal(res.statusCode, 201);
  };

  const mailOf = async (p: Path, subject: string) => {
    const id = await userId(rcpt(p));
    return (await b.server.services.mail.list(id)).find((m) => m.subject === subject);
  };
  const sentStatus = async (sender: string, recipient: string) => {
    const u = await a.server.services.accounts.get(sender);
    for (const m of await a.server.services.sent.list(u)) {
      const r = m.recipients.find((x) => x.recipient === recipient);
      if (r) return r.status;
    }
    return undefined;
  };

  /**
   * Waits until b has applied the decision to the TWM sender's notice (no
   * row of it is pending), then moves b's clock past the decision delays.
   */
  const decided = async (p: Path, senders: string[]) => {
    const id = await userId(rcpt(p));
    await eventually(async () => (await b.server.store.twmIn.forUser(id, { senders }, ['pending'], clock.now())).length === 0, 20_000, `${rcpt(p)} decided on ${senders.join(', ')}`);
    clock.advance(HOUR);
  };

  const approvedEverywhere = async (p: Path) => {
    const inbox = await eventually(async () => (await mailOf(p, 'from amy'))?.mailbox === 'INBOX' && mailOf(p, 'from amy'), 20_000, `amy's notice fetched for ${rcpt(p)}`);
    assert.equal(inbox!.mailbox, 'INBOX');
    await eventually(async () => (await sentStatus('amy@a.test', rcpt(p))) === 'delivered', 20_000, `amy sees "delivered" for ${rcpt(p)}`);
    const held = await eventually(async () => (await mailOf(p, 'from cal'))?.mailbox === 'INBOX', 20_000, `cal's held message released for ${rcpt(p)}`);
    assert.ok(held);
    const id = await userId(rcpt(p));
    const statuses = Object.fromEntries((await b.server.services.screener.list(id)).map((r) => [r.sender, r.status]));
    assert.equal(statuses['amy@a.test'], 'approved');
    assert.equal(statuses['cal@c.test'], 'approved');
  };

  const deniedEverywhere = async (p: Path) => {
    await eventually(async () => (await sentStatus('abe@a.test', rcpt(p))) === 'declined', 20_000, `abe sees "declined" from ${rcpt(p)}`);
    assert.equal(await mailOf(p, 'from abe'), undefined, "abe's body was never fetched");
    await eventually(async () => (await mailOf(p, 'from cid')) === undefined, 20_000, `cid's held message dropped for ${rcpt(p)}`);
    const id = await userId(rcpt(p));
    const statuses = Object.fromEntries((await b.server.services.screener.list(id)).map((r) => [r.sender, r.status]));
    assert.equal(statuses['abe@a.test'], 'denied');
    assert.equal(statuses['cid@c.test'], 'denied');
  };

  // The CLI paths start the real CLI as other processes (the point: a decision made elsewhere
  // reaches this server's workers through the store), which costs a TypeScript start each.
  it('CLI: `twoway requests approve` fetches and releases, `requests deny` sends the declined receipt', { timeout: 120_000 }, async () => {
    await cli('requests', 'approve', rcpt('cli'), 'amy@a.test', 'cal@c.test');
    await cli('requests', 'deny', rcpt('cli'), 'abe@a.test', 'cid@c.test');
    await decided('cli', ['amy@a.test', 'abe@a.test']);
    await approvedEverywhere('cli');
    await deniedEverywhere('cli');
  });

  it('CLI: `twoway contacts allow|block` (an address-book write) decides the pending requests too', { timeout: 120_000 }, async () => {
    await cli('contacts', 'allow', rcpt('book'), 'amy@a.test');
    await cli('contacts', 'allow', rcpt('book'), 'cal@c.test');
    await cli('contacts', 'block', rcpt('book'), 'abe@a.test');
    await cli('contacts', 'block', rcpt('book'), 'cid@c.test');
    await decided('book', ['amy@a.test', 'abe@a.test']);
    await approvedEverywhere('book');
    await deniedEverywhere('book');
  });

  it('HTTP API: approve and deny', async () => {
    await api('api', '/api/requests/approve', { senders: ['amy@a.test', 'cal@c.test'] });
    await api('api', '/api/requests/deny', { senders: ['abe@a.test', 'cid@c.test'] });
    await decided('api', ['amy@a.test', 'abe@a.test']);
    await approvedEverywhere('api');
    await deniedEverywhere('api');
  });

  it('CardDAV: a PUT of a card that allows, and of one that blocks', async () => {
    await putCard('dav', 'friends', ['EMAIL:amy@a.test', 'EMAIL:cal@c.test']);
    await putCard('dav', 'nope', ['EMAIL:abe@a.test', 'EMAIL:cid@c.test', 'X-TWOWAY-BLOCKED:TRUE']);
    await decided('dav', ['amy@a.test', 'abe@a.test']);
    await approvedEverywhere('dav');
    await deniedEverywhere('dav');
  });

  it('Screener bulk approve-domain: by the CLI for a.test, by the API for c.test', { timeout: 120_000 }, async () => {
    await cli('requests', 'approve-domain', rcpt('dom'), 'a.test');
    await api('dom', '/api/requests/approve-domain', { domain: 'c.test' });
    await decided('dom', ['amy@a.test']);
    await approvedEverywhere('dom');
  });
});
