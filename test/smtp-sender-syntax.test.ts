/**
 * MAIL FROM syntaxes that real servers send (issue 16: 4 of 6,046 replayed
 * real messages were refused with "501 Bad sender address syntax" by
 * smtp-server's own parser, before any hook ran: the SpamAssassin public
 * corpus's `Return-Path: yyyy`, a domainless reverse-path). The rule: accept what
 * Debian's Postfix accepts (default strict_rfc821_envelopes = no), except a
 * reverse-path without a usable domain, which has nothing to authenticate and
 * nowhere to bounce to. Each row gives Postfix's reply code and twoway's,
 * over raw SMTP; the Postfix column is checked live against a private
 * Postfix instance (needs root; required in CI).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { postfixAvailability, startPostfix, type PostfixInstance } from './helpers/postfix.ts';
import { parseAddress } from '../src/core/address.ts';
import { readReversePath } from '../src/protocols/smtp/sender-syntax.ts';

interface Row {
  line: string;
  /** Postfix 3.x's reply code to the line, measured. */
  postfix: number;
  /** twoway's reply: code and enhanced code. */
  twoway: string;
  /** The sender twoway records, when accepted (null: the null reverse-path). */
  sender?: string | null;
}

const ROWS: Row[] = [
  // Accepted by both.
  { line: 'MAIL FROM:<user@example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<user@example.com> ', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM: <user@example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'mail from:<USER@EXAMPLE.COM>', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<"quoted local"@example.com>', postfix: 250, twoway: '250 2.1.0', sender: '"quoted local"@example.com' },
  { line: 'MAIL FROM:<"q"@example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'q@example.com' },
  { line: 'MAIL FROM:<josé@example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'josé@example.com' },
  { line: 'MAIL FROM:user@example.com', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:user@example.com SIZE=100', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<@relay.example.net:user@example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<@a.example,@b.example:user@example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<>', postfix: 250, twoway: '250 2.1.0', sender: null },
  { line: 'MAIL FROM:<> SIZE=100 BODY=8BITMIME', postfix: 250, twoway: '250 2.1.0', sender: null },
  { line: 'MAIL FROM:<user.@example.com>', postfix: 250, twoway: '250 2.1.0', sender: '"user."@example.com' },
  { line: 'MAIL FROM:<first..last@example.com>', postfix: 250, twoway: '250 2.1.0', sender: '"first..last"@example.com' },
  { line: 'MAIL FROM:<.user@example.com>', postfix: 250, twoway: '250 2.1.0', sender: '".user"@example.com' },
  { line: 'MAIL FROM:<user@mail_host.example.com>', postfix: 250, twoway: '250 2.1.0', sender: 'user@mail_host.example.com' },
  { line: 'MAIL FROM:<user@example.com.>', postfix: 250, twoway: '250 2.1.0', sender: 'user@example.com' },
  // A VERP address from the corpus: a 69-octet local part (RFC 5321 says 64; Postfix does not check).
  {
    line: 'MAIL FROM:<focus-virus-return-1680-legit-lists-secfocus=spamassassin.taint.org@securityfocus.com>',
    postfix: 250,
    twoway: '250 2.1.0',
    sender: 'focus-virus-return-1680-legit-lists-secfocus=spamassassin.taint.org@securityfocus.com',
  },
  { line: 'MAIL FROM:<user@[192.0.2.1]>', postfix: 250, twoway: '250 2.1.0', sender: 'user@[192.0.2.1]' },
  // Domainless (the SpamAssassin corpus's anonymised `yyyy`): Postfix appends its $myorigin,
  // twoway the client's EHLO name (a stranger must not look local).
  { line: 'MAIL FROM:<yyyy>', postfix: 250, twoway: '250 2.1.0', sender: 'yyyy@client.example.net' },
  { line: 'MAIL FROM:yyyy', postfix: 250, twoway: '250 2.1.0', sender: 'yyyy@client.example.net' },
  // Accepted by Postfix (it keeps the junk), refused here: no usable domain.
  { line: 'MAIL FROM:<@example.com>', postfix: 250, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<a@b@example.com>', postfix: 250, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:user@example.com>', postfix: 250, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<<user@example.com>>', postfix: 250, twoway: '501 5.1.7' },
  // Refused by both.
  { line: 'MAIL FROM:<user@>', postfix: 501, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<user@example.com', postfix: 501, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<user@exa mple.com>', postfix: 501, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<user@example..com>', postfix: 501, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<user@-example.com>', postfix: 501, twoway: '501 5.1.7' },
  { line: 'MAIL FROM:<"unbalanced@example.com>', postfix: 501, twoway: '501 5.1.7' },
  // Refused by Postfix, accepted by smtp-server's own parser (a space before the colon, an
  // unknown parameter it ignores) and left so: more lenient costs no mail.
  { line: 'MAIL FROM :<user@example.com>', postfix: 501, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<user@example.com> FOO', postfix: 555, twoway: '250 2.1.0', sender: 'user@example.com' },
  { line: 'MAIL FROM:<user@exämple.com>', postfix: 501, twoway: '250 2.1.0', sender: 'user@xn--exmple-cua.com' },
];

const RCPT = 'open@example.test';
const available = postfixAvailability();

async function replyTo(port: number, line: string, then: string[] = []): Promise<string[]> {
  const { client } = await RawSmtp.open(port);
  try {
    await client.command('EHLO client.example.net');
    const replies = [await client.command(Buffer.from(`${line}\r\n`, 'utf8'))];
    for (const next of then) replies.push(await client.command(next));
    return replies;
  } finally {
    client.close();
  }
}

describe('MAIL FROM syntax: accept what Postfix accepts', { timeout: 120_000 }, () => {
  let t: TestServer;
  let postfix: PostfixInstance | undefined;

  before(async () => {
    t = await startTestServer();
    await t.server.services.accounts.add(RCPT, 'password-1', 'open');
    if (available.ok) postfix = await startPostfix({ relayDomains: ['tw.test'], defaultTransport: 'discard', tls: false });
    else if (process.env.CI) throw new Error(available.reason);
  });
  after(async () => {
    await postfix?.stop();
    await t?.close();
  });

  it('twoway answers each line as the table says, and an accepted sender carries a message to the mailbox', async () => {
    const wrong: string[] = [];
    for (const row of ROWS) {
      const accepted = row.twoway.startsWith('250');
      const data = `From: x@example.com\r\nTo: ${RCPT}\r\nSubject: sender ${row.line}\r\n\r\nbody\r\n.`;
      const replies = await replyTo(t.server.smtp.port, row.line, accepted ? [`RCPT TO:<${RCPT}>`, 'DATA', data] : []);
      if (!replies[0]!.startsWith(row.twoway)) wrong.push(`${JSON.stringify(row.line)}: ${replies[0]} (want ${row.twoway})`);
      if (accepted && !/^250 /.test(replies[3] ?? '')) wrong.push(`${JSON.stringify(row.line)}: DATA answered ${replies.slice(1).join(' / ')}`);
    }
    assert.deepEqual(wrong, []);
  });

  it('the lenient reader yields the sender in the table, in parseAddress\'s normal form', () => {
    for (const row of ROWS.filter((r) => r.sender !== undefined)) {
      const path = readReversePath(row.line, 'client.example.net');
      assert.ok(path, row.line);
      const sender = path.address === '' ? null : parseAddress(path.address, { underscore: true, longLocalPart: true }).address;
      assert.equal(sender, row.sender, row.line);
    }
  });

  it('Postfix answers each line with the code in the table', { skip: available.ok ? false : available.reason }, async () => {
    const wrong: string[] = [];
    for (const row of ROWS) {
      const [reply] = await replyTo(postfix!.port, row.line);
      if (!reply!.startsWith(String(row.postfix))) wrong.push(`${JSON.stringify(row.line)}: ${reply} (table says ${row.postfix})`);
    }
    assert.deepEqual(wrong, []);
  });
});
