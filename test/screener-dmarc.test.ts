/**
 * The Screener ordered by evidence, DMARC included (core/reputation.ts),
 * end to end: real SMTP from loopback, the embedded DNS server publishing
 * each sender domain's SPF and DMARC records, mailauth evaluating them, the
 * result recorded on the contact request (migration 0011), and the order
 * and reasons read back through the service, the CLI and the HTTP API.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { DnsRecord } from '../src/dns/types.ts';
import { cli } from './helpers/cli.ts';
import { send, startTestServer, type TestServer } from './helpers/server.ts';

/** SPF for 127.0.0.1 only, and a DMARC record with this policy (none: no record). */
const domain = (name: string, policy: 'reject' | 'quarantine' | 'none' | null): DnsRecord[] => [
  { name, type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
  ...(policy === null ? [] : [{ name: `_dmarc.${name}`, type: 'TXT' as const, data: `v=DMARC1; p=${policy}` }]),
];

describe('Screener order with DMARC', () => {
  let t: TestServer;
  let user: number;
  const agent = new Agent({ connect: { rejectUnauthorized: false } });

  before(async () => {
    t = await startTestServer({
      records: [...domain('strict.test', 'reject'), ...domain('careful.test', 'quarantine'), ...domain('lax.test', 'none'), ...domain('plain.test', null)],
    });
    user = (await t.server.services.accounts.add('screen@example.test', 'password-1', 'screen')).id;
    const port = t.server.smtp.port;
    // 127.0.0.1 passes each domain's SPF (aligned: DMARC pass); 127.0.0.2 fails it (DMARC fail).
    const mails: Array<[from: string, localAddress: string]> = [
      ['forger@strict.test', '127.0.0.2'],
      ['ann@lax.test', '127.0.0.1'],
      ['bob@strict.test', '127.0.0.1'],
      ['cy@careful.test', '127.0.0.1'],
      ['dee@plain.test', '127.0.0.1'],
      ['eve@careful.test', '127.0.0.2'],
      ['fay@lax.test', '127.0.0.2'],
    ];
    for (const [from, localAddress] of mails) {
      assert.match(await send({ port, from, to: 'screen@example.test', subject: `from ${from}`, localAddress }), /^250/, from);
    }
  });
  after(async () => {
    await t?.close();
    await agent.close();
  });

  const expected = [
    { sender: 'bob@strict.test', dmarc: { result: 'pass', policy: 'reject' }, score: 50, reasons: ['authenticated', 'DMARC pass, p=reject'] },
    { sender: 'cy@careful.test', dmarc: { result: 'pass', policy: 'quarantine' }, score: 40, reasons: ['authenticated', 'DMARC pass, p=quarantine'] },
    // Equal scores keep the store's order: most recent first.
    { sender: 'dee@plain.test', dmarc: { result: 'none', policy: null }, score: 30, reasons: ['authenticated'] },
    { sender: 'ann@lax.test', dmarc: { result: 'pass', policy: 'none' }, score: 30, reasons: ['authenticated'] },
    { sender: 'fay@lax.test', dmarc: { result: 'fail', policy: 'none' }, score: -20, reasons: ['not authenticated', 'DMARC fail, p=none'] },
    { sender: 'eve@careful.test', dmarc: { result: 'fail', policy: 'quarantine' }, score: -40, reasons: ['not authenticated', 'DMARC fail, p=quarantine'] },
    { sender: 'forger@strict.test', dmarc: { result: 'fail', policy: 'reject' }, score: -50, reasons: ['not authenticated', 'DMARC fail, p=reject'] },
  ];

  it('records each request\'s DMARC result and policy, and ranks by them', async () => {
    const ranked = await t.server.services.screener.list(user);
    assert.deepEqual(
      ranked.map((r) => ({ sender: r.sender, dmarc: r.dmarc, score: r.reputation.score, reasons: r.reputation.reasons })),
      expected,
    );
    // Held in the Screener, whatever the ranking: DMARC sorts, it does not decide.
    assert.ok(ranked.every((r) => r.held === 1));
  });

  it('`twoway requests list` and GET /api/requests show the DMARC result and the order', async () => {
    const out = await cli(['requests', 'list', 'screen@example.test', '--json', '--config', join(t.dir, 'twoway.toml')]);
    assert.equal(out.code, 0, out.err);
    const rows = JSON.parse(out.out) as Array<{ sender: string; dmarc: unknown; reputation: { score: number } }>;
    assert.deepEqual(rows.map((r) => [r.sender, r.dmarc, r.reputation.score]), expected.map((e) => [e.sender, e.dmarc, e.score]));
    const table = await cli(['requests', 'list', 'screen@example.test', '--config', join(t.dir, 'twoway.toml')]);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /bob@strict\.test.*DMARC pass, p=reject/);
    assert.match(table.out, /pass p=reject/);

    const res = await request(`${t.server.http.url}/api/requests`, {
      dispatcher: agent,
      headers: { authorization: `Basic ${Buffer.from('screen@example.test:password-1').toString('base64')}` },
    });
    const body = (await res.body.json()) as { items: Array<{ sender: string; dmarc: unknown }> };
    assert.equal(res.statusCode, 200);
    assert.deepEqual(body.items.map((r) => [r.sender, r.dmarc]), expected.map((e) => [e.sender, e.dmarc]));
  });
});
