/** Connection limits: per client address (421 4.7.0) and in total, and the server recovers when clients leave. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

describe('SMTP connection limits', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ edit: (toml) => toml.replace('connections_per_ip = 50', 'connections_per_ip = 2').replace('connections = 1000', 'connections = 3') });
  });
  after(() => t.close());

  it('refuses a third connection from one address with 421 4.7.0, and accepts again after one closes', async () => {
    const port = t.server.smtp.port;
    const a = await RawSmtp.open(port);
    const b = await RawSmtp.open(port);
    assert.match(a.greeting, /^220 /);
    assert.match(b.greeting, /^220 /);
    const c = await RawSmtp.open(port);
    assert.match(c.greeting, /^421 4\.7\.0 Too many connections from your address/);
    c.client.close();
    a.client.close();
    await new Promise((r) => setTimeout(r, 100));
    const d = await RawSmtp.open(port);
    assert.match(d.greeting, /^220 /);
    b.client.close();
    d.client.close();
  });

  it('caps the total number of connections', async () => {
    const port = t.server.smtp.port;
    const first = await RawSmtp.open(port, '127.0.0.1');
    const second = await RawSmtp.open(port, '127.0.0.2');
    const third = await RawSmtp.open(port, '127.0.0.3');
    const fourth = await RawSmtp.open(port, '127.0.0.4');
    assert.match(fourth.greeting, /^421 /);
    for (const x of [first, second, third, fourth]) x.client.close();
  });
});
