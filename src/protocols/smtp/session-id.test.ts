import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { installPooledSessionIds, newSessionId } from './session-id.ts';

test('a session id is 16 base-32 digits, as smtp-server writes them, and ids differ', () => {
  const ids = new Set<string>();
  // More ids than one pooled block holds, so the refill is crossed.
  for (let i = 0; i < 1000; i++) {
    const id = newSessionId();
    assert.match(id, /^[0-9a-v]{16}$/);
    ids.add(id);
  }
  assert.equal(ids.size, 1000);
});

test('sessions of a server get pooled ids, distinct per connection', async () => {
  installPooledSessionIds();
  const seen: string[] = [];
  const server = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onConnect(session, callback) {
      seen.push(session.id);
      callback();
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  const greet = () =>
    new Promise<string>((resolve, reject) => {
      const socket = createConnection(port, '127.0.0.1');
      socket.once('data', (d) => {
        socket.end('QUIT\r\n');
        resolve(d.toString());
      });
      socket.once('error', reject);
    });
  try {
    assert.match(await greet(), /^220 /);
    assert.match(await greet(), /^220 /);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.equal(seen.length, 2);
  for (const id of seen) assert.match(id, /^[0-9a-v]{16}$/);
  assert.notEqual(seen[0], seen[1]);
});
