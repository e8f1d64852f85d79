import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { installDataScan, originalFeedDataStream } from './data-scan.ts';
import { streamPrototype, type StreamPrototype } from './smtp-server-internals.ts';

type Feed = StreamPrototype['_feedDataStream'];

/** What a feed function did with a sequence of chunks: the bytes emitted, in writes, and where DATA ended. */
interface Trace {
  writes: string[];
  end: { last: string | false; remainder: string } | null;
  dataBytes: number;
}

/** Drives `feed` as SMTPStream does: one chunk at a time, the next after `done`, until DATA ends. */
async function run(feed: Feed, chunks: Buffer[]): Promise<Trace> {
  const trace: Trace = { writes: [], end: null, dataBytes: 0 };
  const stream = {
    _feedDataStream: feed,
    _lastBytes: false as Buffer | false,
    _atDataStart: true,
    _dataStream: {
      writable: true,
      destroyed: false,
      write(b: Buffer) {
        trace.writes.push(b.toString('latin1'));
        return true;
      },
      once() {},
      removeListener() {},
    },
    _countDataBytes(len: number) {
      if (len) this._atDataStart = false;
      trace.dataBytes += len;
    },
    _endDataMode(chunk: Buffer | false, remainder: Buffer, callback: () => void) {
      trace.end = { last: chunk === false ? false : chunk.toString('latin1'), remainder: remainder.toString('latin1') };
      callback();
    },
  };
  for (const chunk of chunks) {
    if (trace.end) break;
    await new Promise<void>((resolve) => stream._feedDataStream(chunk, resolve));
  }
  return trace;
}

/** Deterministic pseudo-random numbers, so that a failure names a reproducible case. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PIECES = ['line', '.', '..', '...', '.\r\n', '\r\n', '\n', '\r', 'x.y', ' .', '\r\n.', '\r\n..', '\r\n.\r', '\r\n.\r\n'];

test('the indexOf scan ends DATA, unescapes and emits exactly as smtp-server 3.21 does, for any chunking', async () => {
  await installDataScan();
  const smtpServers = originalFeedDataStream();
  assert.ok(smtpServers, 'the original function was kept');
  const ours = (await streamPrototype())._feedDataStream;
  assert.notEqual(ours, smtpServers, 'installed');
  for (let seed = 1; seed <= 3000; seed++) {
    const random = rng(seed);
    let text = '';
    const pieces = 1 + Math.floor(random() * 30);
    for (let i = 0; i < pieces; i++) text += PIECES[Math.floor(random() * PIECES.length)];
    // Most cases end with the terminator and something pipelined after it.
    if (random() < 0.8) text += `\r\n.\r\n${random() < 0.5 ? 'QUIT\r\n' : ''}`;
    const bytes = Buffer.from(text, 'latin1');
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(random() * 12);
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }
    const expected = await run(smtpServers, chunks);
    const actual = await run(ours, chunks);
    assert.deepEqual(actual, expected, `seed ${seed}: ${JSON.stringify(text)} in ${chunks.length} chunks`);
  }
});

test('over a socket: dot-stuffed lines arrive unescaped, a lone dot ends the message, the next command is answered', async () => {
  await installDataScan();
  const bodies: string[] = [];
  const server = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      const parts: Buffer[] = [];
      stream.on('data', (b: Buffer) => parts.push(b));
      stream.on('end', () => {
        bodies.push(Buffer.concat(parts).toString('latin1'));
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  const client = createConnection({ port, host: '127.0.0.1' });
  try {
    const filler = 'y'.repeat(70);
    const lines = Array.from({ length: 300 }, (_, i) => (i % 37 === 0 ? `..dot ${i}` : i % 41 === 0 ? `.. ${i}` : `${filler} ${i}`));
    const script = ['EHLO client.test', 'MAIL FROM:<a@example.test>', 'RCPT TO:<b@example.test>', 'DATA'];
    let received = '';
    let step = 0;
    const done = new Promise<void>((resolve, reject) => {
      client.on('data', (d: Buffer) => {
        received += d.toString('latin1');
        const replies = received.split('\r\n').filter((l) => /^\d{3} /.test(l)).length;
        while (step < replies && step < script.length) client.write(`${script[step++]}\r\n`);
        if (step === script.length && replies === script.length + 1) {
          step++;
          // The message and QUIT in one write: the server must stop at the terminator.
          client.write(`${lines.join('\r\n')}\r\n.\r\nQUIT\r\n`);
        }
        if (/\r\n221 /.test(received)) resolve();
      });
      client.once('error', reject);
    });
    await done;
    const expected = `${lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n')}\r\n`;
    assert.deepEqual(bodies, [expected]);
    assert.match(received, /\r\n250 [^\r\n]*\r\n221 /, 'the message was accepted, then QUIT answered');
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
