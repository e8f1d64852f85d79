/**
 * The outbound SMTP client (smtp-client.ts, smtp-session.ts,
 * smtp-transaction.ts) against raw scripted servers on real sockets: what a
 * real server may do that twoway's inbound never does (replies split across
 * packets, 421 in the middle of a pipelined flight, malformed replies,
 * silence), and what the client must send (one flight with PIPELINING,
 * lock-step without, RSET only when a transaction was left open).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { formatReply } from '../core/reply.ts';
import { dataBlock } from './smtp-data.ts';
import { ReplyReader } from './smtp-reply-reader.ts';
import { ConnectError, openSession, type SmtpSession } from './smtp-session.ts';
import type { TransactionOutcome } from './smtp-session.ts';

/** What the scripted server saw: every command line, each data chunk (flights), the message bodies. */
interface Seen {
  lines: string[];
  chunks: string[];
  bodies: string[];
}

/**
 * A server that answers each command line with `answer(line, n)` (n: that
 * verb's count on this connection, 1-based) at once; an answer may write
 * raw bytes itself (and return ''). DATA answered 354 (or '') switches to
 * reading the body up to the dot, answered by answer('.').
 */
type Answer = (line: string, n: number, socket: Socket) => string | undefined;

const servers: Array<{ server: Server; sockets: Set<Socket> }> = [];
after(async () => {
  for (const { server, sockets } of servers) {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

async function scripted(answer: Answer, greeting = '220 scripted ESMTP\r\n'): Promise<{ port: number; seen: Seen }> {
  const seen: Seen = { lines: [], chunks: [], bodies: [] };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
    socket.write(greeting);
    const counts = new Map<string, number>();
    let buffered = '';
    let inBody = false;
    const write = (reply: string): void => {
      if (reply && !socket.destroyed) socket.write(reply);
    };
    socket.on('data', (chunk: Buffer) => {
      seen.chunks.push(chunk.toString('latin1'));
      buffered += chunk.toString('latin1');
      for (;;) {
        if (inBody) {
          const end = buffered.indexOf('\r\n.\r\n');
          if (end < 0) break;
          // Without the CRLF put in front when the body began.
          seen.bodies.push(buffered.slice(2, end + 2));
          buffered = buffered.slice(end + 5);
          inBody = false;
          write(answer('.', 1, socket) ?? '');
          continue;
        }
        const nl = buffered.indexOf('\r\n');
        if (nl < 0) break;
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        seen.lines.push(line);
        const verb = line.split(/[ :]/)[0]!.toUpperCase();
        const n = (counts.get(verb) ?? 0) + 1;
        counts.set(verb, n);
        const reply = answer(line, n, socket) ?? '';
        write(reply);
        if (verb === 'DATA' && (reply === '' || reply.startsWith('354'))) {
          inBody = true;
          // The body starts on a fresh line: let '\r\n.\r\n' also find a lone dot.
          buffered = `\r\n${buffered}`;
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push({ server, sockets });
  return { port: (server.address() as { port: number }).port, seen };
}

const EHLO = '250-scripted\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n';
/** Plain success for everything; `overrides` by verb (or '.' for the final reply). */
const script =
  (overrides: Record<string, string | ((line: string, n: number, socket: Socket) => string | undefined)> = {}, ehlo = EHLO): Answer =>
  (line, n, socket) => {
    const verb = line === '.' ? '.' : line.split(/[ :]/)[0]!.toUpperCase();
    const o = overrides[verb];
    const given = typeof o === 'function' ? o(line, n, socket) : o;
    if (given !== undefined) return given;
    if (verb === 'EHLO') return ehlo;
    if (verb === 'DATA') return '354 go ahead\r\n';
    if (verb === 'QUIT') return '221 bye\r\n';
    return '250 2.0.0 ok\r\n';
  };

const open = (port: number, commandTimeoutMs = 5000): Promise<SmtpSession> =>
  openSession({ host: 'mx.b.test', address: '127.0.0.1', port, heloName: 'a.test', connectTimeoutMs: 5000, commandTimeoutMs });
const msg = (raw = 'Subject: x\r\n\r\nhello\r\n') => ({ messageId: 'm1', sender: 'a@a.test', raw: Buffer.from(raw) });
/** Outcomes as `recipient status reply` lines. */
const summary = (o: TransactionOutcome): string[] | string =>
  o.kind === 'unusable' ? `unusable ${formatReply(o.reply)}` : [...o.results].map(([r, x]) => `${r} ${x.status} ${formatReply(x.reply)}`);

describe('SMTP client', () => {
  it('sends MAIL, every RCPT and DATA in one flight when the server offers PIPELINING', async () => {
    const { port, seen } = await scripted(script());
    const s = await open(port);
    const o = await s.transact(msg(), ['x@b.test', 'y@b.test']);
    assert.deepEqual(summary(o), ['x@b.test delivered 250 2.0.0 ok', 'y@b.test delivered 250 2.0.0 ok']);
    assert.ok(
      seen.chunks.includes('MAIL FROM:<a@a.test> SIZE=21\r\nRCPT TO:<x@b.test>\r\nRCPT TO:<y@b.test>\r\nDATA\r\n'),
      JSON.stringify(seen.chunks),
    );
    assert.deepEqual(seen.bodies, ['Subject: x\r\n\r\nhello\r\n']);
    await s.quit();
  });

  it('goes lock-step without PIPELINING: no RCPT after a refused MAIL, no DATA without an accepted recipient', async () => {
    const { port, seen } = await scripted(script({ MAIL: (_l, n) => (n === 1 ? '550 5.7.1 sender refused\r\n' : undefined), RCPT: '550 5.1.1 no\r\n' }, '250-scripted\r\n250 8BITMIME\r\n'));
    const s = await open(port);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test'])), ['x@b.test failed 550 5.7.1 sender refused']);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test', 'y@b.test'])), ['x@b.test failed 550 5.1.1 no', 'y@b.test failed 550 5.1.1 no']);
    assert.ok(seen.chunks.every((c) => c.split('\r\n').length <= 2), `one command per write: ${JSON.stringify(seen.chunks)}`);
    // After the refused sender no transaction is open: no RSET; after the refused recipients one is.
    assert.deepEqual(seen.lines.slice(1), ['MAIL FROM:<a@a.test>', 'MAIL FROM:<a@a.test>', 'RCPT TO:<x@b.test>', 'RCPT TO:<y@b.test>']);
    await s.transact(msg(), ['z@b.test']);
    assert.equal(seen.lines[5], 'RSET');
    await s.quit();
  });

  it('reads pipelined replies split across packets and multi-line replies', async () => {
    const { port } = await scripted(
      script({
        RCPT: (line, _n, socket) => {
          if (!line.includes('y@')) return '250 2.1.5 ok\r\n';
          // One reply in three packets, the last with the DATA reply after it.
          socket.write('550-5.1.1 mailbox');
          setTimeout(() => socket.write(' gone\r\n550 5.1'), 20);
          setTimeout(() => socket.write('.1 really\r\n354 go ahead\r\n'), 40);
          return '';
        },
        DATA: '',
      }),
    );
    const s = await open(port);
    const o = await s.transact(msg(), ['x@b.test', 'y@b.test']);
    assert.deepEqual(summary(o), ['y@b.test failed 550 5.1.1 mailbox gone really', 'x@b.test delivered 250 2.0.0 ok']);
    await s.quit();
  });

  it('partial RCPT rejection: the refused one fails or is deferred, the rest are delivered; the next transaction needs no RSET', async () => {
    const { port, seen } = await scripted(script({ RCPT: (line) => (line.includes('y@') ? '450 4.2.0 busy\r\n' : '250 ok\r\n') }));
    const s = await open(port);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test', 'y@b.test'])), ['y@b.test deferred 450 4.2.0 busy', 'x@b.test delivered 250 2.0.0 ok']);
    await s.transact(msg(), ['x@b.test']);
    assert.ok(!seen.lines.includes('RSET'));
    await s.quit();
  });

  it('a refused DATA answers every accepted recipient; RSET goes out with the next MAIL, in the same flight', async () => {
    const { port, seen } = await scripted(script({ DATA: (_l, n) => (n === 1 ? '554 5.6.0 no thanks\r\n' : '354 go\r\n') }));
    const s = await open(port);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test'])), ['x@b.test failed 554 5.6.0 no thanks']);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test'])), ['x@b.test delivered 250 2.0.0 ok']);
    assert.ok(seen.chunks.includes('RSET\r\nMAIL FROM:<a@a.test> SIZE=21\r\nRCPT TO:<x@b.test>\r\nDATA\r\n'), JSON.stringify(seen.chunks));
    await s.quit();
  });

  it('a 354 to a pipelined DATA after every recipient was refused gets the dot alone, and the session stays usable', async () => {
    const { port, seen } = await scripted(script({ RCPT: (_l, n) => (n === 1 ? '550 5.1.1 unknown\r\n' : '250 ok\r\n') }));
    const s = await open(port);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test'])), ['x@b.test failed 550 5.1.1 unknown']);
    assert.deepEqual(seen.bodies, ['']);
    assert.ok(s.alive);
    assert.deepEqual(summary(await s.transact(msg(), ['y@b.test'])), ['y@b.test delivered 250 2.0.0 ok']);
    assert.deepEqual(seen.bodies, ['', 'Subject: x\r\n\r\nhello\r\n']);
    await s.quit();
  });

  it('421 in the middle of a flight: before any recipient the session is unusable, after one the rest are deferred', async () => {
    const closing = (reply: string) => (_l: string, _n: number, socket: Socket) => {
      socket.end(reply);
      return '';
    };
    const first = await scripted(script({ MAIL: closing('421 4.3.2 shutting down\r\n') }));
    let s = await open(first.port);
    assert.equal(summary(await s.transact(msg(), ['x@b.test'])), 'unusable 421 4.3.2 shutting down');
    assert.equal(s.alive, false);

    const second = await scripted(script({ RCPT: (line, n, socket) => (n === 1 ? '250 ok\r\n' : closing('421 4.3.2 going away\r\n')(line, n, socket)) }));
    s = await open(second.port);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test', 'y@b.test', 'z@b.test'])), [
      'y@b.test deferred 421 4.3.2 going away',
      'z@b.test deferred 421 4.3.2 going away',
      'x@b.test deferred 421 4.3.2 going away',
    ]);
  });

  it('never crashes on malformed replies: the session ends with a local 4.4.2 reply', async () => {
    for (const bad of ['hello there\r\n', '25\r\n', `250-${'x'.repeat(5000)}\r\n`, '250-a\r\n251 b\r\n', `${'250-x\r\n'.repeat(200)}250 y\r\n`]) {
      const { port } = await scripted(script({ MAIL: bad }));
      const s = await open(port);
      const o = await s.transact(msg(), ['x@b.test']);
      assert.equal(o.kind, 'unusable', bad.slice(0, 20));
      assert.match(summary(o) as string, /^unusable 4\.4\.2 lost connection with mx\.b\.test\[127\.0\.0\.1\]:\d+: /);
      assert.equal(s.alive, false);
    }
  });

  it('a malformed greeting or EHLO reply is a connection failure, not a crash', async () => {
    for (const [greeting, ehlo] of [['garbage\r\n', EHLO], ['220 ok\r\n', '250-x\r\nnot smtp\r\n']] as const) {
      const { port } = await scripted(script({}, ehlo), greeting);
      await assert.rejects(open(port), (err: unknown) => err instanceof ConnectError && /^4\.4\.2 lost connection/.test(err.message));
    }
  });

  it('times out a silent server: after the greeting (no answer in time), and after the body', async () => {
    const silent = await scripted(script({ '.': '' }));
    const s = await open(silent.port, 300);
    assert.deepEqual(summary(await s.transact(msg(), ['x@b.test'])), [`x@b.test deferred 4.4.2 mx.b.test[127.0.0.1]:${silent.port} did not answer in time`]);
    const mute = await scripted(script(), '');
    await assert.rejects(open(mute.port, 300), (err: unknown) => err instanceof ConnectError && /no greeting from/.test(err.message));
  });

  it('falls back to HELO when EHLO is refused, and then sends no extension parameters', async () => {
    const { port, seen } = await scripted(script({ EHLO: '502 5.5.2 what\r\n', HELO: '250 hi\r\n' }));
    const s = await open(port);
    assert.deepEqual(summary(await s.transact(msg('caf\u00e9\r\n'), ['x@b.test'])), ['x@b.test delivered 250 2.0.0 ok']);
    assert.ok(seen.lines.includes('HELO a.test'));
    assert.ok(seen.lines.includes('MAIL FROM:<a@a.test>'));
    await s.quit();
  });

  it('refuses locally a message over the SIZE the server announced, without sending it', async () => {
    const { port, seen } = await scripted(script({}, '250-scripted\r\n250-PIPELINING\r\n250 SIZE 10\r\n'));
    const s = await open(port);
    const o = await s.transact(msg(), ['x@b.test']);
    assert.deepEqual(summary(o), [`x@b.test failed 5.3.4 mx.b.test[127.0.0.1]:${port}: message of 21 octets exceeds the server's SIZE limit of 10`]);
    assert.ok(!seen.lines.some((l) => l.startsWith('MAIL')));
    await s.quit();
  });
});

describe('SMTP reply reader and DATA block', () => {
  it('reads replies in any split, with CRLF or bare LF', () => {
    const reader = new ReplyReader();
    assert.deepEqual(reader.push(Buffer.from('250-a\r\n25')), []);
    assert.deepEqual(reader.push(Buffer.from('0 b\n354 go\r\n')), [
      { code: 250, lines: ['250-a', '250 b'] },
      { code: 354, lines: ['354 go'] },
    ]);
    assert.deepEqual(reader.push(Buffer.from('221\r\n')), [{ code: 221, lines: ['221'] }]);
  });

  it('normalises line ends to CRLF, doubles a leading dot, and ends with CRLF.CRLF', () => {
    assert.equal(dataBlock(Buffer.from('a\r\n.b\r\n')).toString(), 'a\r\n..b\r\n.\r\n');
    assert.equal(dataBlock(Buffer.from('.a\nb\rc')).toString(), '..a\r\nb\r\nc\r\n.\r\n');
    assert.equal(dataBlock(Buffer.from('x\r\n.\r\n..\r\n')).toString(), 'x\r\n..\r\n...\r\n.\r\n');
    assert.equal(dataBlock(Buffer.alloc(0)).toString(), '\r\n.\r\n');
  });
});
