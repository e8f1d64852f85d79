/**
 * The HTTP API as `twoway start` serves it: HTTPS by default with the
 * server's TLS pair, reachable with a client that trusts that certificate.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { startTestServer, type TestServer } from './helpers/server.ts';

describe('HTTP API listener', () => {
  let t: TestServer;
  let agent: Agent;
  before(async () => {
    t = await startTestServer();
    await t.server.services.accounts.add('ann@example.test', 'password-1', 'open');
    agent = new Agent({ connect: { ca: readFileSync(t.server.config.tls.cert, 'utf8') } });
  });
  after(async () => {
    await agent.close();
    await t.close();
  });

  it('serves HTTPS by default, verifiable with the generated certificate', async () => {
    assert.match(t.server.http.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const login = await fetch(`${t.server.http.url}/api/session`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: 'ann@example.test', password: 'password-1' }),
    });
    assert.equal(login.status, 201);
    const { token } = (await login.json()) as { token: string };
    const me = await fetch(`${t.server.http.url}/api/me`, { dispatcher: agent, headers: { authorization: `Bearer ${token}` } });
    const body = (await me.json()) as { address: string; mode: string };
    assert.equal(body.address, 'ann@example.test');
    assert.equal(body.mode, 'open');
  });

  it('slows password guessing and then locks the client out with 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${t.server.http.url}/api/me`, {
        dispatcher: agent,
        headers: { authorization: `Basic ${Buffer.from(`ann@example.test:guess-${i}`).toString('base64')}` },
      });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  });

  it('refuses clients that do not trust the certificate, and plain HTTP', async () => {
    await assert.rejects(fetch(`${t.server.http.url}/api/openapi.json`), /fetch failed/);
    const plain = t.server.http.url.replace('https:', 'http:');
    const res = await fetch(`${plain}/api/openapi.json`).catch((e: Error) => e);
    assert.ok(res instanceof Error || res.status >= 400, 'no API over plain HTTP');
  });
});
