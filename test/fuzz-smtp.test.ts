/**
 * Fuzzing the SMTP listener with random command streams over raw sockets:
 * valid and invalid commands, binary junk, long lines, pipelined batches,
 * DATA with random bodies, abrupt closes; several connections at a time
 * from several loopback addresses.
 *
 * Asserted: every complete line the server sends is a well-formed reply
 * (`ddd[ -]`, code 2xx-5xx), never an internal error (`451 4.3.0`); a
 * stream that ends with QUIT is closed by the server within seconds (no
 * hang); and afterwards a fresh connection gets 220 and a valid message is
 * accepted. A crash of the in-process server fails the test run.
 *
 * Seeded: repeat a run with FUZZ_SEED; FUZZ_ITERATIONS makes it longer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText, type Rng } from './helpers/fuzz.ts';

const RCPT = 'rcpt@example.test';
const CONCURRENCY = 6;

const COMMANDS = [
  'EHLO client.test', 'HELO client.test', 'EHLO', 'EHLO [127.0.0.1]', 'MAIL FROM:<sender@client.test>', 'MAIL FROM:<>',
  'MAIL FROM:<sender@client.test> SIZE=1000 BODY=8BITMIME', 'MAIL FROM:<sender@client.test> SMTPUTF8', 'MAIL FROM:sender@client.test',
  'MAIL FROM:<a@b@c>', `RCPT TO:<${RCPT}>`, 'RCPT TO:<RCPT+tag@example.test>', 'RCPT TO:<nobody@example.test>', 'RCPT TO:<x@elsewhere.test>',
  'RCPT TO:<"quoted@x"@example.test>', 'RCPT TO:<@a.test:rcpt@example.test>', 'RCPT TO:<rcpt%elsewhere.test@example.test>',
  'DATA', 'RSET', 'NOOP', 'NOOP with args', 'VRFY rcpt', 'EXPN list', 'HELP', 'HELP DATA', 'AUTH PLAIN AGZvbwBiYXI=', 'AUTH LOGIN',
  'BDAT 10 LAST', 'ETRN example.test', 'TURN', 'XCLIENT ADDR=1.2.3.4', 'XFORWARD NAME=x', 'mail from:<Sender@Client.TEST>', 'rcpt to:<rcpt@EXAMPLE.TEST>',
  'MAIL FROM:<sender@client.test> SIZE=999999999999', 'MAIL FROM:<sender@client.test> RET=HDRS ENVID=x', 'RCPT TO:<rcpt@example.test> NOTIFY=NEVER ORCPT=rfc822;x@y',
  '', ' ', 'DATA extra', 'QUIT now',
];

/** One random chunk of a client's stream. */
function chunk(rng: Rng): string | Buffer {
  switch (rng.int(10)) {
    case 0:
      return rng.bytes(rng.range(1, 300)); // binary junk, maybe without a line end
    case 1:
      return `${rng.pick(['EHLO ', 'MAIL FROM:<', 'NOOP ', 'X'])}${'A'.repeat(rng.range(500, 20_000))}\r\n`; // a long line
    case 2: {
      // a whole transaction, pipelined in one write
      const body = Array.from({ length: rng.range(0, 20) }, () => mutateText(rng, 'Subject: hi\r\n\r\n.dot line\r\nbody', 2)).join('\r\n');
      return `MAIL FROM:<s@client.test>\r\nRCPT TO:<${RCPT}>\r\nDATA\r\n${body}\r\n.\r\n`;
    }
    case 3:
      return mutateText(rng, rng.pick(COMMANDS), 3) + rng.pick(['\r\n', '\n', '\r', '']); // a mutated command, odd line ends
    case 4:
      return Array.from({ length: rng.range(2, 30) }, () => rng.pick(COMMANDS)).join('\r\n') + '\r\n'; // a pipelined batch
    case 5:
      return '.\r\n';
    case 6:
      return `${rng.pick(COMMANDS)}\0${rng.pick(COMMANDS)}\r\n`;
    default:
      return `${rng.pick(COMMANDS)}\r\n`;
  }
}

interface StreamResult {
  replies: string[];
  /** Bytes after the last CRLF when the connection closed (a reply cut by our own abrupt close). */
  partial: string;
  hung: boolean;
  /** What was sent, for the failure message. */
  sent: string;
}

/**
 * Writes a random stream, then ends it: abruptly (destroy at once), or with
 * "\r\n.\r\nQUIT" and waiting for the server to close.
 */
async function runStream(port: number, rng: Rng): Promise<StreamResult> {
  const localAddress = `127.0.0.${rng.range(1, 8)}`;
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  let received = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closedP = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve) => socket.once('connect', resolve).once('error', () => resolve()));
  // Sometimes talk before the greeting (early talker), mostly wait for it.
  if (rng.bool(0.85)) {
    const deadline = Date.now() + 3000;
    while (!received.includes('\r\n') && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }
  const steps = rng.range(1, 12);
  let sent = '';
  for (let s = 0; s < steps && !closed; s++) {
    const c = chunk(rng);
    sent += typeof c === 'string' ? c : c.toString('latin1');
    socket.write(c);
    if (rng.bool(0.3)) await new Promise((r) => setTimeout(r, rng.int(20)));
  }
  const ending = rng.int(10);
  let hung = false;
  const waitClose = async (ms: number) => (await Promise.race([closedP, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())])) === 'timeout';
  if (ending < 3 || closed) {
    socket.destroy();
  } else {
    let end = '\r\n.\r\nQUIT\r\n';
    if (ending < 5) {
      // STARTTLS, then plain junk instead of a handshake: the server must drop the connection.
      // (anything pipelined after STARTTLS is discarded, RFC 3207); "\r\n.\r\nRSET" first: whatever state the stream left, STARTTLS is then a command.
      const before = received.length;
      socket.write('\r\n.\r\nRSET\r\nSTARTTLS\r\n');
      sent += '\r\n.\r\nRSET\r\nSTARTTLS\r\n';
      const deadline = Date.now() + 3000;
      while (!/Ready to start TLS/.test(received.slice(before)) && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      if (/Ready to start TLS/.test(received.slice(before))) end = 'QUIT junk, not a TLS ClientHello\r\n';
    }
    sent += end;
    socket.write(end);
    hung = await waitClose(8000);
    socket.destroy();
  }
  await closedP;
  const lines = received.split('\r\n');
  const partial = lines.pop() ?? '';
  return { replies: lines, partial, hung, sent };
}

/** A complete, valid transaction on a fresh connection. */
async function validMessage(port: number, subject: string): Promise<string> {
  const { client, greeting } = await RawSmtp.open(port);
  try {
    assert.match(greeting, /^220 /);
    assert.match(await client.command('EHLO client.test'), /^250/);
    assert.match(await client.command('MAIL FROM:<s@client.test>'), /^250/);
    assert.match(await client.command(`RCPT TO:<${RCPT}>`), /^250/);
    assert.match(await client.command('DATA'), /^354/);
    return await client.command(`From: s@client.test\r\nTo: ${RCPT}\r\nSubject: ${subject}\r\n\r\nstill alive\r\n.`);
  } finally {
    client.close();
  }
}

describe('fuzz: SMTP command streams', () => {
  let t: TestServer;
  before(async () => {
    // Small limits so that oversized input is exercised without large writes.
    t = await startTestServer({ edit: (toml) => toml.replace('message_size = 26214400', 'message_size = 65536').replace('recipients = 100', 'recipients = 5') });
    await t.server.services.accounts.add(RCPT, 'password-1', 'open');
  });
  after(() => t.close());

  it('answers every stream with well-formed replies, never hangs or fails internally, and keeps serving', async (tc) => {
    const seed = fuzzSeed();
    const count = fuzzIterations(240);
    tc.diagnostic(`seed ${seed} (FUZZ_SEED=${seed}), ${count} streams, ${CONCURRENCY} at a time`);
    const port = t.server.smtp.port;
    const codes = new Map<string, number>();
    let lines = 0;
    // Cases run in batches of CONCURRENCY; each case's stream depends only on its own forked Rng.
    const batch: Array<Promise<unknown>> = [];
    await forEachCase(seed, count, async (rng, i) => {
      batch.push(
        runStream(port, rng).then((r) => {
          assert.equal(r.hung, false, `case ${i}: the server did not close the connection after QUIT; replies ${JSON.stringify(r.replies)}; sent ${JSON.stringify(r.sent.slice(-1500))}`);
          for (const line of r.replies) {
            assert.match(line, /^[2-5]\d\d[ -]/, `case ${i}: malformed reply line ${JSON.stringify(line.slice(0, 200))}`);
            assert.doesNotMatch(line, /^451[ -]4\.3\.0/, `case ${i}: internal error ${line}`);
            codes.set(line.slice(0, 3), (codes.get(line.slice(0, 3)) ?? 0) + 1);
            lines++;
          }
          assert.ok(r.partial === '' || /^[2-5]\d\d/.test(r.partial), `case ${i}: trailing junk ${JSON.stringify(r.partial.slice(0, 100))}`);
        }),
      );
      if (batch.length >= CONCURRENCY || i === count - 1) {
        // allSettled first, so that no rejection in the batch goes unhandled; then the first failure, if any.
        const failed = (await Promise.allSettled(batch.splice(0))).find((s) => s.status === 'rejected');
        if (failed) throw failed.reason;
      }
    });
    tc.diagnostic(`${lines} reply lines; codes: ${JSON.stringify(Object.fromEntries([...codes].sort()))}`);

    const reply = await validMessage(port, `after fuzz ${seed}`);
    assert.match(reply, /^250 2\.0\.0 Ok: queued as /);
    const user = await t.server.services.accounts.get(RCPT);
    const list = await t.server.services.mail.list(user.id);
    assert.ok(list.some((m) => m.subject === `after fuzz ${seed}`), 'the valid message was stored');
  });
});
