/**
 * `twoway doctor` against the embedded DNS server: a zone built from what
 * `twoway dns` prints passes; each record missing or wrong fails exactly its
 * own check (a table); the keys are compared with the private keys on disk;
 * the listener checks connect to a running server; the CLI prints one line
 * per check, --json, and exits 1 on a failure.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../src/config/load.ts';
import { ensureMaterials, type Materials } from '../src/config/materials.ts';
import { createPrivateCa } from '../src/config/private-ca.ts';
import { renderConfig } from '../src/config/template.ts';
import { recordsToPublish, type DnsRecordLine } from '../src/config/published-records/dns-records.ts';
import { twmRecordsToPublish } from '../src/config/published-records/twm-records.ts';
import { carddavRecords } from '../src/config/published-records/carddav-records.ts';
import { labTwmSection } from '../src/cli/demo-lab.ts';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver } from '../src/dns/resolver.ts';
import type { DnsRecord } from '../src/dns/types.ts';
import { runDoctor, type CheckResult } from '../src/doctor/index.ts';
import { startTestServer } from './helpers/server.ts';
import { cli } from './helpers/cli.ts';
import { startRspamd } from './helpers/rspamd.ts';

/** A `twoway dns` line as the embedded server's record (the placeholder A record gets a real address). */
function toRecord(r: DnsRecordLine): DnsRecord {
  const name = r.name.replace(/\.$/, '');
  const parts = r.value.split(/\s+/);
  switch (r.type) {
    case 'A/AAAA':
      return { name, type: 'A', data: '192.0.2.25' };
    case 'MX':
      return { name, type: 'MX', data: { preference: Number(parts[0]), exchange: parts[1]!.replace(/\.$/, '') } };
    case 'SRV':
      return { name, type: 'SRV', data: { priority: Number(parts[0]), weight: Number(parts[1]), port: Number(parts[2]), target: parts[3]!.replace(/\.$/, '') } };
    case 'TXT':
      return { name, type: 'TXT', data: r.value };
    default:
      throw new Error(`unexpected record type ${r.type}`);
  }
}

const otherEd25519 = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).subarray(12).toString('base64');
const otherRsa = () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

describe('twoway doctor', () => {
  let dir: string;
  let dns: EmbeddedDnsServer;
  let config: Config;
  let materials: Materials;
  let file: string;
  let zone: DnsRecord[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-doctor-'));
    dns = await startDnsServer();
    const ca = createPrivateCa('doctor test CA');
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, ca.cert);
    file = join(dir, 'twoway.toml');
    const text =
      renderConfig({ hostname: 'mail.a.test', domains: ['a.test'], smtpPort: 0, httpPort: 0, submissionPort: 0, dns: [dns.address] }) +
      `\n${labTwmSection({ ca, caFile, dir, domain: 'a.test', host: '127.0.0.1', extra: ['public_port = 8443'] })}\n`;
    writeFileSync(file, text);
    config = parseConfig(text, file);
    materials = ensureMaterials(config);
    const lines = [...recordsToPublish(config, materials.dkim), ...twmRecordsToPublish(config, materials.twm), ...carddavRecords(config)];
    zone = lines.map(toRecord);
  });
  after(async () => {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const serve = (records: DnsRecord[]) => {
    for (const name of new Set(zone.map((r) => r.name))) dns.remove(name);
    dns.add(records);
  };
  const doctor = () => runDoctor(config, materials, { resolver: createResolver({ servers: [dns.address], cacheTtlCapSeconds: 0, timeoutMs: 2000 }), connectTimeoutMs: 1000 });
  const failing = (results: CheckResult[]) => results.filter((r) => r.status === 'fail').map((r) => r.check);
  const without = (name: string, type: string) => zone.filter((r) => !(r.name === name && r.type === type));
  const withoutTxt = (name: string, prefix: string) => zone.filter((r) => !(r.name === name && r.type === 'TXT' && String(r.data).startsWith(prefix)));
  const replaceTxt = (name: string, prefix: string, data: string) => [...withoutTxt(name, prefix), { name, type: 'TXT' as const, data }];

  it('passes with the zone `twoway dns` prints; each DNS check says what it found', async () => {
    serve(zone);
    const results = await doctor();
    assert.deepEqual(failing(results), [], JSON.stringify(results, null, 2));
    const checks = results.map((r) => r.check);
    for (const c of ['dns MX a.test', 'dns SPF a.test', 'dns DKIM twoway._domainkey.a.test', 'dns DKIM twoway-ed._domainkey.a.test', 'dns DMARC _dmarc.a.test', 'dns TWM SRV _twoway._tcp.a.test', 'dns TWM key twm1._twoway.a.test', 'dns A/AAAA mail.a.test']) {
      assert.ok(checks.includes(c), `${c} in ${checks.join(', ')}`);
    }
    assert.match(results.find((r) => r.check === 'dns DKIM twoway._domainkey.a.test')!.detail, /matches .*dkim\.key/);
    assert.equal(results.find((r) => r.check === 'tls tls name mail.a.test')?.status, 'ok');
    assert.equal(results.find((r) => r.check === 'tls twm.tls name twm.a.test')?.status, 'ok');
  });

  const cases: Array<{ what: string; records: () => DnsRecord[]; fails: string; fix: RegExp }> = [
    { what: 'MX missing', records: () => without('a.test', 'MX'), fails: 'dns MX a.test', fix: /publish: a\.test\.\t3600\tIN\tMX\t10 mail\.a\.test\./ },
    { what: 'MX to another host', records: () => [...without('a.test', 'MX'), { name: 'a.test', type: 'MX', data: { preference: 10, exchange: 'old.a.test' } }], fails: 'dns MX a.test', fix: /MX\t10 mail\.a\.test/ },
    { what: 'SPF missing', records: () => withoutTxt('a.test', 'v=spf1'), fails: 'dns SPF a.test', fix: /v=spf1 mx -all/ },
    { what: 'two SPF records', records: () => [...zone, { name: 'a.test', type: 'TXT', data: 'v=spf1 a -all' }], fails: 'dns SPF a.test', fix: /keep one/ },
    { what: 'DKIM RSA key missing', records: () => withoutTxt('twoway._domainkey.a.test', 'v=DKIM1'), fails: 'dns DKIM twoway._domainkey.a.test', fix: /publish: twoway\._domainkey/ },
    { what: 'DKIM RSA key of another private key', records: () => replaceTxt('twoway._domainkey.a.test', 'v=DKIM1', `v=DKIM1; k=rsa; p=${otherRsa()}`), fails: 'dns DKIM twoway._domainkey.a.test', fix: /k=rsa; p=/ },
    { what: 'DKIM Ed25519 key of another private key', records: () => replaceTxt('twoway-ed._domainkey.a.test', 'v=DKIM1', `v=DKIM1; k=ed25519; p=${otherEd25519()}`), fails: 'dns DKIM twoway-ed._domainkey.a.test', fix: /k=ed25519; p=/ },
    { what: 'DMARC missing', records: () => withoutTxt('_dmarc.a.test', 'v=DMARC1'), fails: 'dns DMARC _dmarc.a.test', fix: /v=DMARC1; p=quarantine/ },
    { what: 'DMARC without a policy', records: () => replaceTxt('_dmarc.a.test', 'v=DMARC1', 'v=DMARC1; rua=mailto:x@a.test'), fails: 'dns DMARC _dmarc.a.test', fix: /v=DMARC1/ },
    { what: 'TWM SRV missing', records: () => without('_twoway._tcp.a.test', 'SRV'), fails: 'dns TWM SRV _twoway._tcp.a.test', fix: /SRV\t10 10 8443 twm\.a\.test\./ },
    { what: 'TWM SRV on another port', records: () => [...without('_twoway._tcp.a.test', 'SRV'), { name: '_twoway._tcp.a.test', type: 'SRV', data: { priority: 10, weight: 10, port: 443, target: 'twm.a.test' } }], fails: 'dns TWM SRV _twoway._tcp.a.test', fix: /8443/ },
    { what: 'TWM key missing', records: () => withoutTxt('twm1._twoway.a.test', 'v=TWM1'), fails: 'dns TWM key twm1._twoway.a.test', fix: /v=TWM1; k=ed25519/ },
    { what: 'TWM key of another private key', records: () => replaceTxt('twm1._twoway.a.test', 'v=TWM1', `v=TWM1; k=ed25519; p=${otherEd25519()}`), fails: 'dns TWM key twm1._twoway.a.test', fix: /v=TWM1/ },
    { what: 'no address for the MX host', records: () => without('mail.a.test', 'A'), fails: 'dns A/AAAA mail.a.test', fix: /A \(and AAAA\) record/ },
  ];
  for (const c of cases) {
    it(`fails the one check for: ${c.what}`, async () => {
      serve(c.records());
      const results = await doctor();
      assert.deepEqual(failing(results), [c.fails]);
      assert.match(results.find((r) => r.check === c.fails)!.fix ?? '', c.fix);
    });
  }

  it('warns, without failing, when an optional CardDAV record is missing or SPF differs from the suggestion', async () => {
    serve(replaceTxt('a.test', 'v=spf1', 'v=spf1 ip4:192.0.2.25 -all').filter((r) => r.type !== 'SRV' || r.name !== '_carddavs._tcp.a.test'));
    const results = await doctor();
    assert.deepEqual(failing(results), []);
    assert.equal(results.find((r) => r.check === 'dns SPF a.test')?.status, 'warn');
    assert.equal(results.find((r) => r.check === 'dns CardDAV SRV _carddavs._tcp.a.test')?.status, 'warn');
  });

  it('the CLI prints one line per check, --json, and exits 1 when a check fails', async () => {
    serve(zone);
    const good = await cli(['doctor', '--config', file]);
    assert.equal(good.code, 0, good.out + good.err);
    assert.match(good.out, /^ok {4}dns MX a\.test: 10 mail\.a\.test$/m);
    assert.ok(good.out.trim().split('\n').every((l) => /^(ok {2}|WARN|FAIL) {2}\S/.test(l)), good.out);
    serve(without('a.test', 'MX'));
    const bad = await cli(['doctor', '--config', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /^FAIL {2}dns MX a\.test: missing -> publish: a\.test\.\t3600\tIN\tMX\t10 mail\.a\.test\./m);
    assert.equal(bad.err, 'twoway: 1 check failed\n');
    const json = await cli(['doctor', '--json', '--config', file]);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.out) as CheckResult[];
    assert.deepEqual(parsed.filter((r) => r.status === 'fail').map((r) => r.check), ['dns MX a.test']);
  });

  it('connects to each listener of a running server, and fails the ones that are down', async () => {
    const t = await startTestServer();
    const c = t.server.config;
    const running: Config = {
      ...c,
      smtp: { ...c.smtp, port: t.server.smtp.port },
      submission: { ...c.submission, port: t.server.submission?.port ?? 0 },
      http: { ...c.http, port: t.server.http.port },
    };
    const resolver = createResolver({ servers: [t.dns.address], cacheTtlCapSeconds: 0, timeoutMs: 1000 });
    const listeners = (r: CheckResult[]) => r.filter((x) => x.check.startsWith('listener ')).map((x) => [x.check, x.status]);
    try {
      const up = await runDoctor(running, ensureMaterials(c), { resolver, connectTimeoutMs: 2000 });
      assert.deepEqual(listeners(up), [['listener smtp', 'ok'], ...(t.server.submission ? [['listener submission', 'ok']] : []), ['listener http', 'ok']]);
    } finally {
      await t.close();
    }
    const down = await runDoctor(running, ensureMaterials(c), { resolver, connectTimeoutMs: 2000 });
    assert.ok(listeners(down).every(([, status]) => status === 'fail'), JSON.stringify(down.filter((x) => x.check.startsWith('listener'))));
    assert.match(down.find((x) => x.check === 'listener smtp')!.detail, /ECONNREFUSED/);
  });

  // Starts a real rspamd inside the test, which takes 30 s and more on a loaded machine (the spam
  // tests start theirs in a before hook).
  it('checks rspamd\'s normal worker and controller when [spam] is present, and only then', { timeout: 180_000 }, async () => {
    const spamChecks = (r: CheckResult[]) => r.filter((x) => x.check.startsWith('spam ')).map((x) => [x.check, x.status]);
    assert.deepEqual(spamChecks(await doctor()), [], 'no [spam] section: no rspamd check');
    const rspamd = await startRspamd({ redisDb: 12 });
    try {
      const withSpam = parseConfig(readFileSync(file, 'utf8') + rspamd.toml(), file);
      const run = () => runDoctor(withSpam, materials, { resolver: createResolver({ servers: [dns.address], cacheTtlCapSeconds: 0, timeoutMs: 2000 }), connectTimeoutMs: 1000 });
      assert.deepEqual(spamChecks(await run()), [['spam rspamd', 'ok'], ['spam rspamd controller', 'ok']]);
      await rspamd.stop();
      const down = await run();
      assert.deepEqual(spamChecks(down), [['spam rspamd', 'fail'], ['spam rspamd controller', 'warn']]);
      assert.match(down.find((x) => x.check === 'spam rspamd')!.detail, /accepted unscanned/);
    } finally {
      await rspamd.close();
    }
  });
});
