import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { installQuitClose } from './quit-close.ts';

/**
 * A conversation with an smtp-server that has the QUIT adaptation: `reply(received, before, client)`
 * runs on every chunk the client receives (all text so far, and what it was before the chunk),
 * until the server ends the connection. The client keeps its side open after the server's FIN
 * (allowHalfOpen), as a slow client would. Returns the text received and the server's sockets.
 */
async function converse(
  options: SMTPServerOptions,
  reply: (received: string, before: string, client: Socket) => void,
): Promise<{ received: string; accepted: Socket[] }> {
  await installQuitClose();
  const server = new SMTPServer({ disabledCommands: ['AUTH', 'STARTTLS'], logger: false, ...options });
  const accepted: Socket[] = [];
  server.server.on('connection', (s: Socket) => accepted.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  const client = createConnection({ port, host: '127.0.0.1', allowHalfOpen: true });
  try {
    let received = '';
    await new Promise<void>((resolve, reject) => {
      client.on('data', (d: Buffer) => {
        const before = received;
        received += d.toString();
        reply(received, before, client);
      });
      client.once('end', resolve);
      client.once('error', reject);
    });
    return { received, accepted };
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

test('after 221 to QUIT the server closes the connection outright, not waiting for the client to close its side', async () => {
  const { received, accepted } = await converse({}, (text, before, client) => {
    if (!before.includes('\r\n') && text.includes('\r\n')) client.write('QUIT\r\n');
  });
  assert.match(received, /^220 [\s\S]*\r\n221 [^\r\n]*\r\n$/, 'the greeting and the whole 221 arrived');
  assert.equal(accepted.length, 1);
  // The client has not closed its side; smtp-server alone would still hold the socket half-closed.
  assert.equal(accepted[0]!.destroyed, true);
});

test('a command pipelined behind QUIT is not dispatched', async () => {
  let mailFrom = 0;
  const onMailFrom: SMTPServerOptions['onMailFrom'] = (_address, _session, callback) => {
    mailFrom++;
    callback();
  };
  const { received } = await converse({ onMailFrom }, (text, before, client) => {
    if (!before.includes('\r\n') && text.includes('\r\n')) client.write('EHLO client.test\r\n');
    // One write: the server reads both commands in one chunk, MAIL right behind QUIT.
    if (!before.includes('250 ') && text.includes('250 ')) client.write('QUIT\r\nMAIL FROM:<a@example.test>\r\n');
  });
  assert.match(received, /\r\n221 [^\r\n]*\r\n$/, 'the 221 is the last reply');
  assert.equal(mailFrom, 0, 'MAIL FROM after QUIT never reached the handler');
});
