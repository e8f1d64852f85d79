import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { installQuitClose } from './quit-close.ts';

test('after 221 to QUIT the server closes the connection outright, not waiting for the client to close its side', async () => {
  await installQuitClose();
  const server = new SMTPServer({ disabledCommands: ['AUTH', 'STARTTLS'], logger: false });
  const accepted: Socket[] = [];
  server.server.on('connection', (s: Socket) => accepted.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  // allowHalfOpen: the client keeps its side open after the server's FIN, as a slow client would.
  const client = createConnection({ port, host: '127.0.0.1', allowHalfOpen: true });
  try {
    let received = '';
    const ended = new Promise<void>((resolve, reject) => {
      client.on('data', (d: Buffer) => {
        const before = received;
        received += d.toString();
        if (!before.includes('\r\n') && received.includes('\r\n')) client.write('QUIT\r\n');
      });
      client.once('end', resolve);
      client.once('error', reject);
    });
    await ended;
    assert.match(received, /^220 [\s\S]*\r\n221 [^\r\n]*\r\n$/, 'the greeting and the whole 221 arrived');
    assert.equal(accepted.length, 1);
    // The client has not closed its side; smtp-server alone would still hold the socket half-closed.
    assert.equal(accepted[0]!.destroyed, true);
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('a command pipelined behind QUIT is not dispatched', async () => {
  await installQuitClose();
  let mailFrom = 0;
  const server = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onMailFrom: (_address, _session, callback) => {
      mailFrom++;
      callback();
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  const client = createConnection({ port, host: '127.0.0.1', allowHalfOpen: true });
  try {
    let received = '';
    const ended = new Promise<void>((resolve, reject) => {
      client.on('data', (d: Buffer) => {
        const before = received;
        received += d.toString();
        if (!before.includes('\r\n') && received.includes('\r\n')) client.write('EHLO client.test\r\n');
        // One write: the server reads both commands in one chunk, MAIL right behind QUIT.
        if (!before.includes('250 ') && received.includes('250 ')) client.write('QUIT\r\nMAIL FROM:<a@example.test>\r\n');
      });
      client.once('end', resolve);
      client.once('error', reject);
    });
    await ended;
    assert.match(received, /\r\n221 [^\r\n]*\r\n$/, 'the 221 is the last reply');
    assert.equal(mailFrom, 0, 'MAIL FROM after QUIT never reached the handler');
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
