/**
 * Security battery, HTTP API (issue #6), counted: every route the OpenAPI
 * document lists is tried without credentials (401) and as Bob with Alice's
 * ids and identifiers in the path and body. A case is refused when Bob gets
 * a 4xx or a 2xx that carries none of Alice's data; at the end Alice's views
 * must be exactly as before. Routes are enumerated from /api/openapi.json,
 * so a new route is covered without editing this file (test/http-api.test.ts
 * checks the route semantics one by one).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import type { User } from '../src/core/types.ts';
import { SecurityTally } from './helpers/security-tally.ts';
import { send, startTestServer, type TestServer } from './helpers/server.ts';

const tally = new SecurityTally('api');

interface OpenApiOperation {
  requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
}
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
/** Strings that only Alice's data contains: none may reach Bob. */
const SECRETS = ['alice-secret-subject', 'alice-inbox-subject', 'alice-friend@friends.test', 'admirer@strangers.test', 'alice-card-uid', 'alice-app-pw', 'alice-queued-subject'];

describe('security battery: cross-user access on every API route', () => {
  let t: TestServer;
  let agent: Agent;
  let alice: User;
  let bob: User;
  const ids: Record<string, string[]> = {};

  async function api(method: string, path: string, o: { bearer?: string; json?: unknown } = {}) {
    const headers: Record<string, string> = {};
    if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
    if (o.json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${t.server.http.url}${path}`, { method, headers, dispatcher: agent, ...(o.json !== undefined ? { body: JSON.stringify(o.json) } : {}) });
    return { status: res.status, text: await res.text() };
  }
  const token = async (u: User) => (await t.server.services.accounts.issueToken(u)).token;

  /** Everything Alice can see, to compare before and after Bob's attempts. */
  async function aliceView(): Promise<string> {
    const bearer = await token(alice);
    const paths = ['/api/me', '/api/contacts', '/api/requests?status=pending', '/api/requests?status=approved', '/api/requests?status=denied', '/api/messages?mailbox=INBOX', '/api/messages?mailbox=Screener', '/api/queue', '/api/mailboxes'];
    const parts = [];
    for (const p of paths) parts.push(`${p} ${(await api('GET', p, { bearer })).text}`);
    return parts.join('\n');
  }

  before(async () => {
    t = await startTestServer();
    agent = new Agent({ connect: { ca: readFileSync(t.server.config.tls.cert, 'utf8') } });
    const { accounts, contacts } = t.server.services;
    alice = await accounts.add(ALICE, 'alice-password', 'screen');
    bob = await accounts.add(BOB, 'bob-password', 'open');
    await contacts.allow(alice.id, 'alice-friend@friends.test');
    // Alice's data, through the real paths: a held message from a stranger (Screener and a request), an INBOX message, a card, an app password, a queued message.
    await send({ port: t.server.smtp.port, from: 'admirer@strangers.test', to: ALICE, subject: 'alice-secret-subject' });
    await send({ port: t.server.smtp.port, from: 'alice-friend@friends.test', to: ALICE, subject: 'alice-inbox-subject', localAddress: '127.0.0.2' });
    const aliceBearer = await token(alice);
    const card = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:alice-card-uid\r\nFN:Friend\r\nEMAIL:alice-friend@friends.test\r\nEND:VCARD\r\n';
    const put = await fetch(`${t.server.http.url}/api/contacts/cards/alice-card-uid`, { method: 'PUT', dispatcher: agent, headers: { authorization: `Bearer ${aliceBearer}`, 'content-type': 'text/vcard' }, body: card });
    assert.equal(put.status, 200, await put.text());
    const app = await api('POST', '/api/me/app-passwords', { bearer: aliceBearer, json: { name: 'alice-app-pw' } });
    assert.ok(app.status < 300, app.text);
    const sent = await api('POST', '/api/send', { bearer: aliceBearer, json: { to: ['someone@unreachable.test'], message: `From: ${ALICE}\nTo: someone@unreachable.test\nSubject: alice-queued-subject\n\nhi\n` } });
    assert.equal(sent.status, 202, sent.text);
    const messages = JSON.parse((await api('GET', '/api/messages?mailbox=Screener', { bearer: aliceBearer })).text).items.concat(JSON.parse((await api('GET', '/api/messages?mailbox=INBOX', { bearer: aliceBearer })).text).items);
    const queue = JSON.parse((await api('GET', '/api/queue', { bearer: aliceBearer })).text).items ?? [];
    assert.ok(messages.length >= 2, 'alice has mail');
    ids.id = [...messages.map((m: { id: number }) => String(m.id)), ...queue.map((q: { id: number }) => String(q.id)), JSON.parse(app.text).id !== undefined ? String(JSON.parse(app.text).id) : '1'];
    ids.messageId = [...queue.map((q: { messageId: string }) => q.messageId), ...(sent.status < 300 ? [JSON.parse(sent.text).messageId ?? ''] : [])].filter(Boolean);
    ids.uid = ['alice-card-uid'];
    ids.sender = ['alice-friend@friends.test', 'admirer@strangers.test'];
  });
  after(async () => {
    await agent?.close();
    await t?.close();
  });

  it("refuses every route without credentials, and gives Bob nothing of Alice's on any route", async (tc) => {
    const doc = JSON.parse((await api('GET', '/api/openapi.json')).text) as { paths: Record<string, Record<string, OpenApiOperation>> };
    const before = await aliceView();
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([m]) => /^(get|put|post|delete|patch)$/.test(m))
        .map(([m, op]) => ({ method: m.toUpperCase(), path, fields: Object.keys(op.requestBody?.content?.['application/json']?.schema?.properties ?? {}) })),
    );
    tc.diagnostic(`${routes.length} routes in /api/openapi.json; Alice's ids tried: ${JSON.stringify(ids)}`);
    assert.ok(ids.messageId!.length > 0, 'Alice has a queued message');
    assert.ok(routes.length >= 20, 'the OpenAPI document lists the routes');
    // A valid body (only the fields the route's schema lists, so that validation does not do the refusing) naming Alice's things.
    const values: Record<string, unknown> = { senders: ids.sender, sender: ids.sender![0], domain: 'friends.test', address: ALICE, from: ALICE, to: ['victim@elsewhere.test'], message: `From: ${ALICE}\nSubject: forged\n\nx\n`, name: 'bob-app', mode: 'open', revealDeclined: true, password: 'bob-password' };

    for (const r of routes) {
      const params = [...r.path.matchAll(/\{(\w+)\}|:(\w+)/g)].map((m) => m[1] ?? m[2]!);
      const isPublic = (r.method === 'POST' && r.path === '/api/session') || r.path === '/api/openapi.json';
      const concrete = params.length === 0 ? [r.path] : (ids[params[0]!] ?? [...ids.id!, ...ids.uid!, ...ids.sender!]).map((v) => r.path.replace(/\{\w+\}|:\w+/, encodeURIComponent(v)).replace(/\{\w+\}|:\w+/g, '1'));
      for (const path of concrete) {
        const json = r.method === 'GET' || r.method === 'DELETE' ? undefined : Object.fromEntries(r.fields.map((f) => [f, values[f] ?? 'x']));
        if (!isPublic) {
          const anon = await api(r.method, path, { json });
          tally.expectRefused(`${r.method} ${path} without credentials`, anon.status === 401, `${anon.status} ${anon.text.slice(0, 200)}`);
        }
        if (r.path === '/api/me/password') continue; // Bob changing his own password is his business (and revokes his tokens)
        const res = await api(r.method, path, { bearer: await token(bob), json });
        // A leak is Alice's data that Bob did not send himself (an echo of his own input is not).
        const asked = path + JSON.stringify(json ?? '');
        const leaked = [...SECRETS, ALICE].filter((s) => res.text.includes(s) && !asked.includes(s));
        tally.expectRefused(`${r.method} ${path} as Bob`, res.status >= 400 ? res.status < 500 : leaked.length === 0, `${res.status} leaked ${leaked.join(', ')}: ${res.text.slice(0, 300)}`);
      }
    }
    assert.equal(await aliceView(), before, "Alice's data is exactly as it was");
  });

  it('summary: every case refused', (tc) => tally.report((l) => tc.diagnostic(l)));
});
