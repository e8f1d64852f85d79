/**
 * Sending through the HTTP API (HTTPS, as served by the server) and each
 * user's view of the queue: only their own entries, others' ids look absent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { eventually, startTestServer, type TestServer } from './helpers/server.ts';

describe('HTTP API: sending and the queue', () => {
  let t: TestServer;
  let agent: Agent;
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const ann = basic('ann@example.test', 'ann-password');
  const ben = basic('ben@example.test', 'ben-password');

  before(async () => {
    // Remote domains have no MX here: entries stay scheduled or deferred, which is what the queue views need.
    t = await startTestServer({ deliveryLab: true, edit: (toml) => toml.replace('[delivery]\n', '[delivery]\nmin_backoff = "1h"\n') });
    await t.server.services.accounts.add('ann@example.test', 'ann-password', 'open');
    await t.server.services.accounts.add('ben@example.test', 'ben-password', 'open');
    agent = new Agent({ connect: { ca: readFileSync(t.server.config.tls.cert, 'utf8') } });
  });
  after(async () => {
    await agent.close();
    await t.close();
  });

  const api = async (method: string, path: string, auth: string, json?: unknown) => {
    const res = await fetch(`${t.server.http.url}${path}`, {
      dispatcher: agent,
      method,
      headers: { authorization: auth, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
  };

  it('sends a message: 202, queued per recipient, copied to Sent', async () => {
    const r = await api('POST', '/api/send', ann, { to: ['someone@nowhere.test'], message: 'From: ann@example.test\nSubject: via api\n\nhello\n' });
    assert.equal(r.status, 202);
    assert.deepEqual(r.body?.recipients, ['someone@nowhere.test']);
    const sent = await api('GET', '/api/messages?mailbox=Sent', ann);
    const sentItems = sent.body?.items as Array<{ subject: string }> | undefined;
    assert.ok(sentItems, 'the Sent listing has items');
    assert.deepEqual(sentItems.map((m) => m.subject), ['via api']);
  });

  it('refuses a From: the user does not own with a 403 problem', async () => {
    const r = await api('POST', '/api/send', ann, { to: ['x@nowhere.test'], message: 'From: ben@example.test\nSubject: forged\n\nx\n' });
    assert.equal(r.status, 403);
    assert.match(r.type, /^application\/problem\+json/);
    assert.match(String(r.body?.detail), /not an address of ann@example\.test/);
  });

  it('shows each user only their own queue entries, and hides the others', async () => {
    const mine = await api('GET', '/api/queue', ann);
    const items = mine.body?.items as Array<{ id: number; recipient: string; state: string }>;
    assert.ok(items.length >= 1);
    assert.ok(items.every((e) => e.recipient === 'someone@nowhere.test'));
    const theirs = await api('GET', '/api/queue', ben);
    assert.deepEqual(theirs.body?.items, []);
    const id = items[0]!.id;
    assert.equal((await api('POST', `/api/queue/${id}/retry`, ben)).status, 404);
    assert.equal((await api('DELETE', `/api/queue/${id}`, ben)).status, 404);
    assert.equal((await api('DELETE', `/api/queue/${id}`, ann)).status, 204);
    assert.equal((await api('DELETE', `/api/queue/${id}`, ann)).status, 404);
  });

  it('validates the send body', async () => {
    assert.equal((await api('POST', '/api/send', ann, { to: [], message: 'x' })).status, 400);
    assert.equal((await api('POST', '/api/send', ann, { to: ['a@b.test'], message: 'x', extra: 1 })).status, 400);
    const bad = await api('POST', '/api/send', ann, { to: ['not an address'], message: 'Subject: x\n\nx\n' });
    assert.equal(bad.status, 400);
  });

  it('flushes only the user\'s own pending entries', async () => {
    // An MX that refuses connections: a transient failure, so the entry stays deferred.
    t.dns.add([
      { name: 'slow.test', type: 'MX', data: { preference: 10, exchange: 'mx.slow.test' } },
      { name: 'mx.slow.test', type: 'A', data: '127.0.0.1' },
    ]);
    assert.equal((await api('POST', '/api/send', ann, { to: ['near@slow.test'], message: 'From: ann@example.test\nSubject: ann out\n\nx\n' })).status, 202);
    assert.equal((await api('POST', '/api/send', ben, { to: ['far@slow.test'], message: 'From: ben@example.test\nSubject: ben out\n\nx\n' })).status, 202);
    const pending = async (auth: string) => {
      const items = (await api('GET', '/api/queue', auth)).body?.items as Array<{ id: number; state: string; nextAttemptAt: string | null }> | undefined;
      assert.ok(items, 'the queue listing has items');
      return items.filter((e) => e.state === 'scheduled' || e.state === 'deferred');
    };
    const bens = await pending(ben);
    assert.ok(bens.length >= 1);
    // After the worker's first attempt (refused: deferred, the next one an hour away), so that
    // nothing but a flush could move ann's time while the test looks.
    const annsBefore = await eventually(async () => {
      const p = await pending(ann);
      return p.length >= 1 && p.every((e) => e.state === 'deferred') && p;
    }, 15_000, "ann's first attempt deferred");
    const before = Date.now();
    const r = await api('POST', '/api/queue/flush', ben);
    assert.equal(r.status, 200);
    const items = r.body?.items as Array<{ id: number; sender: string; nextAttemptAt: string }>;
    assert.deepEqual(items.map((e) => e.id).sort(), bens.map((e) => e.id).sort(), "ben's entries, and none of ann's");
    assert.ok(items.every((e) => e.sender === 'ben@example.test' && Date.parse(e.nextAttemptAt) >= before));
    const annsAfter = await pending(ann);
    assert.deepEqual(annsAfter.map((e) => [e.id, e.nextAttemptAt]), annsBefore.map((e) => [e.id, e.nextAttemptAt]), "ann's entries keep their time");
    assert.equal((await api('POST', '/api/queue/flush', basic('ben@example.test', 'wrong'))).status, 401);
  });
});
