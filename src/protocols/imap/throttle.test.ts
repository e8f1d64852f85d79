import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createPrivateCa, issueCertificate } from '../../config/private-ca.ts';
import type { ImapHooks } from './hooks.ts';
import { startImapListener, type ImapListener } from './server.ts';

/** Pipelined commands over the command rate (session.ts throttle()), on a real listener and socket. */
describe('IMAP command rate limit', () => {
  const RATE = 1000;
  const COMMANDS = 300;
  let listener: ImapListener;

  before(async () => {
    const tls = issueCertificate(createPrivateCa('test CA'), ['localhost']);
    // NOOP needs no login: the hooks are never called.
    const hooks: ImapHooks = { login: () => Promise.reject(new Error('not used')) };
    listener = await startImapListener({
      hostname: 'imap.test',
      host: '127.0.0.1',
      port: 0,
      tlsPort: null,
      tls,
      allowPlaintextAuth: false,
      hooks,
      limits: { maxLine: 8192, maxLiteral: 1 << 20, commandsPerSecond: RATE, commandBurst: 50, maxConnections: 10, maxConnectionsPerIp: 10, idleTimeoutMs: 60_000 },
    });
  });
  after(() => listener.close());

  it('holds the rate, and answers the waiting commands in batches, not one write per command', async () => {
    const sock = net.connect({ host: '127.0.0.1', port: listener.port! });
    let text = '';
    let reads = 0;
    let done: () => void = () => undefined;
    const finished = new Promise<void>((r) => (done = r));
    sock.on('data', (d: Buffer) => {
      reads++;
      text += d.toString('latin1');
      if (text.includes(`t${COMMANDS} OK`)) done();
    });
    await new Promise<void>((r) => sock.once('data', () => r()));
    reads = 0;
    const start = performance.now();
    // One write: every command is waiting before the first runs, as mbsync's pipelined UID FETCHes.
    sock.write(Array.from({ length: COMMANDS }, (_, i) => `t${i + 1} NOOP\r\n`).join(''));
    await finished;
    const seconds = (performance.now() - start) / 1000;
    sock.destroy();
    assert.equal(text.match(/^t\d+ OK/gm)?.length, COMMANDS);
    // The rate holds: 300 commands at 1,000 a second, 50 of them at once, take about 0.25 s.
    assert.ok(seconds >= ((COMMANDS - 50) / RATE) * 0.9, `${COMMANDS} commands in ${seconds} s`);
    // Woken once per 20 ms of tokens: about 15 writes. A timer per command was a write per command.
    assert.ok(reads <= COMMANDS / 5, `${reads} reads for ${COMMANDS} replies in ${seconds} s`);
  });
});
