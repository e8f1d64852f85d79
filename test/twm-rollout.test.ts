/**
 * Versioning and rollout of Two-Way Mail (docs/protocol.md 6.6) between real
 * servers on loopback: a.test and b.test are twoway servers, x.test a
 * scripted peer (test/helpers/twm-peer.ts) that answers as a later TWM
 * revision might.
 *
 * Covered: unknown notice result statuses, receipt statuses and error
 * codes, and problem codes are mapped by the rule table, never fatal; the
 * capability document served by the TWM listener and read over HTTPS by the
 * client (a malformed one is treated as absent); testing mode (below).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS } from '../src/core/twm-types.ts';
import { keyRecordTesting } from '../src/core/twm-key-record.ts';
import { createTwmClient } from '../src/delivery/twm-client.ts';
import { TwmUnreachableError } from '../src/delivery/twm-client-types.ts';
import { createResolver } from '../src/dns/resolver.ts';
import { commonFreePort, eventually, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, dkimResults, startDomain, type TwmLab } from './helpers/twm.ts';
import { startTwmPeer, type PeerRequest, type TwmPeer } from './helpers/twm-peer.ts';

describe('Two-Way Mail versioning and rollout', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let x: TwmPeer;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    const fast = (t: string) => t.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port, edit: fast });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, edit: fast });
    x = await startTwmPeer({ lab, dns, domain: 'x.test', host: '127.0.0.6' });
    for (const name of ['ann', 'sam', 'rex']) await a.server.services.accounts.add(`${name}@a.test`, `${name}-password`, 'open');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'open');
  });
  after(async () => {
    await x?.close();
    await a?.close();
    await b?.close();
    await dns?.close();
    lab?.close();
  });

  const user = (t: TestServer, address: string) => t.server.services.accounts.get(address);
  const send = (name: string, to: string, subject: string) =>
    submit({ port: a.server.submission!.port, host: '127.0.0.2', user: `${name}@a.test`, pass: `${name}-password`, to, subject });
  const status = async (name: string, to: string) => {
    for (const m of await a.server.services.sent.list(await user(a, `${name}@a.test`))) {
      const r = m.recipients.find((e) => e.recipient === to);
      if (r) return r;
    }
    return undefined;
  };
  const isNotice = (r: PeerRequest) => r.path === TWM_PATHS.notice;
  const json = (status: number, type: string, doc: unknown) => ({ status, headers: { 'content-type': type }, body: Buffer.from(JSON.stringify(doc)) });
  /** The id of the newest notice x received for `rcpt`. */
  const noticeFor = (rcpt: string) => {
    const n = x.received.filter(isNotice).map((r) => JSON.parse(r.body.toString()) as { id: string; to: string[] }).filter((d) => d.to.includes(rcpt));
    return n.at(-1)?.id;
  };
  const queued = async (rcpt: string) => (await a.server.services.queue.list()).find((e) => e.recipient === rcpt);

  it('an unknown notice result status is a delay of 3600 s, never a failure', async () => {
    x.answer = (r) => (isNotice(r) ? json(200, TWM_MEDIA_TYPES.noticeResult, { id: JSON.parse(r.body.toString()).id, results: [{ rcpt: 'quinn@x.test', status: 'quarantined', hint: 1 }] }) : undefined);
    await send('ann', 'quinn@x.test', 'a later status');
    const entry = await eventually(async () => {
      const e = await queued('quinn@x.test');
      return e?.status.state === 'deferred' ? e : undefined;
    }, 20_000, 'deferred');
    assert.match(entry.status.state === 'deferred' ? entry.status.lastError : '', /recipient deferred \(retry after 3600 s\)/);
    assert.equal((await status('ann', 'quinn@x.test'))?.status, 'queued', 'not failed');
    await a.server.services.queue.remove(entry.id);
  });

  it('an unknown twm_error: the HTTP status decides (429 temporary, other 4xx permanent)', async () => {
    x.answer = (r) => (isNotice(r) ? json(429, 'application/problem+json', { type: 'about:blank', status: 429, twm_error: 'slow-down-please' }) : undefined);
    await send('sam', 'tess@x.test', 'an unknown temporary code');
    const deferred = await eventually(async () => {
      const e = await queued('tess@x.test');
      return e?.status.state === 'deferred' ? e : undefined;
    }, 20_000, 'deferred');
    await a.server.services.queue.remove(deferred.id);
    x.answer = (r) => (isNotice(r) ? json(403, 'application/problem+json', { type: 'about:blank', status: 403, twm_error: 'sender-unwelcome' }) : undefined);
    await send('sam', 'uma@x.test', 'an unknown permanent code');
    const failed = await eventually(async () => ((await status('sam', 'uma@x.test'))?.status === 'failed' ? status('sam', 'uma@x.test') : undefined), 20_000, 'failed');
    assert.match(failed!.detail ?? '', /answered 403/);
  });

  it('receipts: an unknown status is ignored (the recipient stays open); an unknown error reads as failed', async () => {
    x.answer = (r) => {
      if (!isNotice(r)) return undefined;
      const n = JSON.parse(r.body.toString()) as { id: string; to: string[] };
      return json(200, TWM_MEDIA_TYPES.noticeResult, { id: n.id, results: n.to.map((rcpt) => ({ rcpt, status: 'accepted' })) });
    };
    await send('rex', 'vic@x.test', 'receipts from the future');
    await eventually(async () => (await status('rex', 'vic@x.test'))?.status === 'notified', 20_000, 'notified (accepted)');
    const id = noticeFor('vic@x.test')!;
    const receipt = (entry: object) => Buffer.from(JSON.stringify({ id, results: [{ rcpt: 'vic@x.test', ...entry }] }));
    const later = await x.post('a.test', TWM_PATHS.receipt, TWM_MEDIA_TYPES.receipt, receipt({ status: 'forwarded-elsewhere' }));
    assert.equal(later.status, 204, later.body.toString());
    assert.equal((await status('rex', 'vic@x.test'))?.status, 'notified', 'ignored: still waiting');
    const unknownError = await x.post('a.test', TWM_PATHS.receipt, TWM_MEDIA_TYPES.receipt, receipt({ status: 'failed', error: 'virus-found' }));
    assert.equal(unknownError.status, 204, unknownError.body.toString());
    const failed = await status('rex', 'vic@x.test');
    assert.equal(failed?.status, 'failed');
    assert.match(failed?.detail ?? '', /a reason this server does not know/);
    // A status the registry does not know still names recipients, and those are checked (5.4 step 9).
    const other = await x.post('a.test', TWM_PATHS.receipt, TWM_MEDIA_TYPES.receipt, Buffer.from(JSON.stringify({ id, results: [{ rcpt: 'zed@x.test', status: 'forwarded-elsewhere' }] })));
    assert.equal(other.status, 403);
    assert.match(other.body.toString(), /not-listed/);
  });

  it('the capability document: served by the TWM listener, read over HTTPS, a malformed one is absent', async () => {
    const problems: string[] = [];
    const client = createTwmClient({
      resolver: createResolver({ servers: [dns.address], cacheTtlCapSeconds: 0 }),
      trustAnchors: [lab.ca.cert],
      lab: true,
      onProblem: (domain, problem) => problems.push(`${domain}: ${problem}`),
    });
    try {
      const doc = await client.capabilities('b.test');
      assert.deepEqual(doc, { versions: ['TWM1'], maxSize: b.server.config.limits.messageSize });
      // Other methods are refused with Allow: GET.
      const post = await x.post('b.test', '/.well-known/twoway', 'application/json', Buffer.from('{}'));
      assert.equal(post.status, 405);
      assert.equal(post.headers.allow, 'GET');

      x.answer = (r) => (r.path === '/.well-known/twoway' ? json(200, 'application/json', { versions: ['TWM2', 'TWM1'], max_size: 1000, future: true }) : undefined);
      assert.deepEqual(await client.capabilities('x.test'), { versions: ['TWM2', 'TWM1'], maxSize: 1000 });
      x.answer = (r) => (r.path === '/.well-known/twoway' ? json(200, 'application/json', { versions: 'TWM1' }) : undefined);
      assert.equal(await client.capabilities('x.test'), null);
      assert.match(problems.join('\n'), /x\.test: the capability document at twm\.x\.test is malformed/);
      x.answer = (r) => (r.path === '/.well-known/twoway' ? { status: 200, headers: { 'content-type': 'text/html' }, body: Buffer.from('{"versions":["TWM1"]}') } : undefined);
      assert.equal(await client.capabilities('x.test'), null, 'not application/json: absent');
      x.answer = (r) => (r.path === '/.well-known/twoway' ? json(404, 'application/problem+json', { status: 404 }) : undefined);
      assert.equal(await client.capabilities('x.test'), null);
      x.answer = undefined;
      await assert.rejects(client.capabilities('nowhere.test'), TwmUnreachableError);
    } finally {
      await client.close();
    }
  });
});

/**
 * Testing mode (6.6) between t.test, whose `[twm] testing` puts `t=y` in
 * its key record and doubles every TWM delivery by SMTP, and b.test. The
 * order of arrival is forced by taking one path down: b's MX (the TWM copy
 * arrives first), or t's TWM endpoint during b's fetch (the SMTP copy
 * arrives first). Either way b's user ends up with exactly one copy, the
 * first, and the sender sees both paths succeed.
 */
describe('Two-Way Mail testing mode', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let t: TestServer;
  let b: TestServer;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    const fast = (s: string) => s.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
    t = await startDomain({ lab, dns, domain: 't.test', host: '127.0.0.2', smtpPort: port, edit: fast, twmToml: 'testing = true' });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, edit: fast });
    await t.server.services.accounts.add('tia@t.test', 'tia-password', 'open');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'open');
    await b.server.services.contacts.allow((await b.server.services.accounts.get('bea@b.test')).id, 'tia@t.test');
  });
  after(async () => {
    await t?.close();
    await b?.close();
    await dns?.close();
    lab?.close();
  });

  const bea = () => b.server.services.accounts.get('bea@b.test');
  const copies = async (subject: string) => {
    const u = await bea();
    const found = (await b.server.services.mail.list(u.id)).filter((m) => m.subject === subject);
    return Promise.all(found.map(async (m) => (await b.server.services.mail.get(u.id, m.id)).raw.toString()));
  };
  const send = (subject: string) => submit({ port: t.server.submission!.port, host: '127.0.0.2', user: 'tia@t.test', pass: 'tia-password', to: 'bea@b.test', subject });
  const moveA = async (name: string, address: string) => {
    dns.remove(name, 'A');
    dns.add([{ name, type: 'A', ttl: 1, data: address }]);
    await new Promise((r) => setTimeout(r, 1_100));
  };
  /** The queue entry of the message with this subject (found by its body, which goes once it is delivered: look it up early). */
  const queueEntry = async (subject: string) => {
    for (const e of await t.server.store.queue.list()) {
      if (e.recipient !== 'bea@b.test') continue;
      const raw = (await t.server.store.queue.raw(e.messageId))?.toString() ?? '';
      if (raw.includes(`Subject: ${subject}`)) return e;
    }
    return undefined;
  };
  const stateOf = async (id: number) => (await t.server.store.queue.list()).find((e) => e.id === id)?.status;

  it('publishes t=y in the key record of the testing domain only', async () => {
    const resolver = createResolver({ servers: [dns.address], cacheTtlCapSeconds: 0 });
    const tsel = t.server.config.twm.selector;
    const txt = (await resolver.resolve(`${tsel}._twoway.t.test`, 'TXT')) as string[][];
    assert.ok(keyRecordTesting(txt), txt.join(''));
    assert.equal(keyRecordTesting((await resolver.resolve(`${b.server.config.twm.selector}._twoway.b.test`, 'TXT')) as string[][]), false);
  });

  it('the TWM copy first: the SMTP copy that follows is discarded silently', async () => {
    await moveA('mx.b.test', '127.0.0.9');
    await send('testing: twm first');
    const [first] = await eventually(async () => ((await copies('testing: twm first')).length > 0 ? copies('testing: twm first') : undefined), 20_000, 'the TWM copy');
    assert.match(first!, /with TWM id/);
    assert.doesNotMatch(first!, /^DKIM-Signature:/im, 'the TWM copy carries no DKIM');
    const entry = await eventually(async () => {
      const e = await queueEntry('testing: twm first');
      return e?.status.state === 'deferred' ? e : undefined;
    }, 15_000, 'SMTP deferred while b has no MX');
    await moveA('mx.b.test', '127.0.0.3');
    await t.server.services.queue.flush();
    await eventually(async () => (await stateOf(entry.id))?.state === 'delivered', 45_000, 'the SMTP copy accepted (250)').catch(async (err) => {
      throw new Error(`${err}: ${JSON.stringify(await stateOf(entry.id))}`);
    });
    const after = await copies('testing: twm first');
    assert.equal(after.length, 1, 'one copy');
    assert.match(after[0]!, /with TWM id/);
  });

  it('the SMTP copy first: the TWM copy fetched later is discarded silently, and the receipt says delivered', async () => {
    await moveA('twm.t.test', '127.0.0.9');
    await send('testing: smtp first');
    const [first] = await eventually(async () => ((await copies('testing: smtp first')).length > 0 ? copies('testing: smtp first') : undefined), 20_000, 'the SMTP copy');
    assert.match(first!, /with ESMTPS?/);
    assert.match(first!, /^TWM-Testing: y\r$/m);
    // The SMTP copy is signed at the hand-off, after the marker went on (which no signature covers).
    assert.deepEqual(await dkimResults(dns, first!), ['t.test ed25519-sha256 pass', 't.test rsa-sha256 pass']);
    assert.doesNotMatch(first!, /\bh=[^;]*twm-testing/i);
    // b has the notice (sent to b's endpoint, which is up) but cannot fetch from t yet.
    const tia = await t.server.services.accounts.get('tia@t.test');
    const twmStatus = async () => (await t.server.services.sent.list(tia)).flatMap((m) => (m.subject === 'testing: smtp first' ? m.recipients.filter((r) => r.via === 'twm') : []))[0];
    await eventually(async () => (await twmStatus())?.status === 'notified', 15_000, 'notice accepted');
    await moveA('twm.t.test', '127.0.0.2');
    await eventually(async () => (await twmStatus())?.status === 'delivered', 30_000, 'fetched, discarded, receipt delivered');
    const after = await copies('testing: smtp first');
    assert.equal(after.length, 1, 'one copy');
    assert.match(after[0]!, /with ESMTPS?/);
  });
});

/**
 * Failure reports (6.6) with a controlled clock: r.test counts what its
 * exchanges with x.test (a scripted peer publishing `_twoway-report`) came
 * to: two notices refused `wrong-domain`, one accepted, one fetch answered
 * `unknown-id`. A day later its report sweep mails one RFC 8460 report with
 * policy-type "twm" to the address x.test names, a mailbox on the legacy
 * server c.test, through r's normal outbound path.
 */
describe('Two-Way Mail failure reports', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let r: TestServer;
  let c: TestServer;
  let x: TwmPeer;
  let offset = 0;
  const clock = { now: () => new Date(Date.now() + offset) };

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.4']);
    r = await startDomain({ lab, dns, domain: 'r.test', host: '127.0.0.2', smtpPort: port, clock });
    c = await startDomain({ lab, dns, domain: 'c.test', host: '127.0.0.4', smtpPort: port, twm: false });
    x = await startTwmPeer({ lab, dns, domain: 'x.test', host: '127.0.0.6' });
    dns.add([{ name: '_twoway-report.x.test', type: 'TXT', data: 'v=TWMRPTv1; rua=mailto:ops@c.test' }]);
    await r.server.services.accounts.add('rae@r.test', 'rae-password', 'open');
    await c.server.services.accounts.add('ops@c.test', 'ops-password', 'open');
  });
  after(async () => {
    await x?.close();
    await r?.close();
    await c?.close();
    await dns?.close();
    lab?.close();
  });

  it('counts refused notices and failed fetches per domain, and mails one report a day later', async () => {
    const rae = await r.server.services.accounts.get('rae@r.test');
    const statusOf = async (to: string) => (await r.server.services.sent.list(rae)).flatMap((m) => m.recipients).find((e) => e.recipient === to)?.status;
    x.answer = (req) => {
      if (req.path !== TWM_PATHS.notice) return undefined;
      const n = JSON.parse(req.body.toString()) as { id: string; to: string[] };
      if (n.to.includes('yes@x.test')) return { status: 200, headers: { 'content-type': TWM_MEDIA_TYPES.noticeResult }, body: Buffer.from(JSON.stringify({ id: n.id, results: [{ rcpt: 'yes@x.test', status: 'accepted' }] })) };
      return { status: 403, headers: { 'content-type': 'application/problem+json' }, body: Buffer.from(JSON.stringify({ type: 'about:blank', status: 403, twm_error: 'wrong-domain' })) };
    };
    for (const to of ['no1@x.test', 'no2@x.test', 'yes@x.test']) {
      await submit({ port: r.server.submission!.port, host: '127.0.0.2', user: 'rae@r.test', pass: 'rae-password', to, subject: `to ${to}` });
    }
    await eventually(async () => (await statusOf('no1@x.test')) === 'failed' && (await statusOf('no2@x.test')) === 'failed' && (await statusOf('yes@x.test')) === 'notified', 20_000, 'notices answered');
    // x.test notifies rae of a message it then cannot serve (404 unknown-id): r's fetch fails.
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    const notice = {
      id: 'rptNoticeAAAAAAAAAAAAA',
      from: 'xavier@x.test',
      to: ['rae@r.test'],
      // Large enough that the fetch reads the whole problem document (it reads at most size + 1 octets).
      size: 1000,
      sha256: 'a'.repeat(64),
      created: created.toISOString().replace(/\.\d+Z$/, 'Z'),
      expires: new Date(created.getTime() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    await r.server.services.contacts.allow(rae.id, 'xavier@x.test');
    const answered = await x.post('r.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, Buffer.from(JSON.stringify(notice)));
    assert.equal(answered.status, 200, answered.body.toString());
    await eventually(async () => x.received.some((q) => q.path === TWM_PATHS.fetch(notice.id)), 20_000, 'the fetch');
    const counted = async () => {
      const all = new Map<string, number>();
      for (const { domain, day } of await r.server.store.twmReports.finished('9999-12-31', 10)) {
        for (const [k, v] of await r.server.store.twmReports.counts(domain, day)) all.set(`${domain} ${k}`, (all.get(`${domain} ${k}`) ?? 0) + v);
      }
      return all;
    };
    await eventually(async () => (await counted()).has('x.test fetch-unknown-id'), 10_000, 'fetch failure counted').catch(async (err) => {
      throw new Error(`${err}: ${JSON.stringify([...(await counted())])} ${JSON.stringify(x.received.map((q) => q.path))}`);
    });
    assert.equal((await r.server.store.twmReports.finished(new Date(Date.now()).toISOString().slice(0, 10), 10)).length, 0, 'nothing is reported before the day ends');

    offset = 25 * 3_600_000;
    const ops = await c.server.services.accounts.get('ops@c.test');
    const reports = await eventually(async () => {
      const found = (await c.server.services.mail.list(ops.id)).filter((m) => /^Report Domain: x\.test Submitter: /.test(m.subject ?? ''));
      return found.length > 0 ? found : undefined;
    }, 40_000, 'the report mail');
    let successes = 0;
    const failures = new Map<string, number>();
    for (const m of reports) {
      const raw = (await c.server.services.mail.get(ops.id, m.id)).raw.toString();
      assert.match(raw, /Content-Type: multipart\/report; report-type="twmrpt"/);
      assert.match(raw, /with ESMTPS?/);
      assert.match(raw, /DKIM-Signature: [^\r]*d=r\.test/);
      const b64 = /filename="mx\.r\.test!x\.test![0-9]+![0-9]+![^"]+\.json"\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n\r\n--/.exec(raw);
      assert.ok(b64, raw);
      const report = JSON.parse(Buffer.from(b64[1]!.replace(/\r\n/g, ''), 'base64').toString()) as {
        'organization-name': string;
        policies: Array<{ policy: Record<string, unknown>; summary: Record<string, number>; 'failure-details'?: Array<{ 'result-type': string; 'failed-session-count': number }> }>;
      };
      assert.equal(report['organization-name'], 'mx.r.test');
      assert.deepEqual(report.policies[0]!.policy, { 'policy-type': 'twm', 'policy-string': ['v=TWM1'], 'policy-domain': 'x.test' });
      successes += report.policies[0]!.summary['total-successful-session-count']!;
      for (const d of report.policies[0]!['failure-details'] ?? []) failures.set(d['result-type'], (failures.get(d['result-type']) ?? 0) + d['failed-session-count']);
    }
    assert.equal(successes, 1, 'the accepted notice');
    assert.equal(failures.get('wrong-domain'), 2);
    assert.equal(failures.get('fetch-unknown-id'), 1, 'a permanent refusal: one attempt');
    assert.deepEqual([...failures.keys()].sort(), ['fetch-unknown-id', 'wrong-domain']);
    // Reported counters are gone: no second report.
    assert.equal((await r.server.store.twmReports.finished('9999-12-31', 10)).length, 0);
  });
});
