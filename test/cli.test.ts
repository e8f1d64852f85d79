/**
 * The `twoway` CLI as a user runs it: the real bin in a child process, a
 * config written by `init`, one-line errors and exit codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BIN = resolve('bin/twoway.js');

function twoway(args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    input: options.input ?? '',
    encoding: 'utf8',
    env: { ...process.env, TWOWAY_CONFIG: '', ...options.env },
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('twoway CLI', () => {
  let dir: string;
  let cfg: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-cli-'));
    cfg = join(dir, 'twoway.toml');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const c = (args: string[], input?: string) => twoway([...args, '--config', cfg], { input });

  it('init writes the config and the keys', () => {
    const r = twoway(['init', '--domain', 'a.test', '--dir', dir, '--smtp-port', '0', '--http-port', '0', '--dns', '127.0.0.1:5353']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /wrote .*twoway\.toml/);
    assert.ok(existsSync(join(dir, 'data/dkim.key')));
    assert.ok(existsSync(join(dir, 'data/tls/cert.pem')));
    const again = twoway(['init', '--domain', 'a.test', '--dir', dir]);
    assert.equal(again.code, 5);
    assert.match(again.err, /^twoway: .*exists already/);
  });

  it('manages users, with the password from stdin', () => {
    assert.equal(c(['user', 'add', 'ann@a.test', '--mode', 'screen'], 'secret-pw\n').code, 0);
    const dup = c(['user', 'add', 'ann@a.test'], 'x\n');
    assert.equal(dup.code, 5);
    assert.equal(dup.err.trim().split('\n').length, 1, 'errors are one line');
    assert.match(c(['user', 'add', 'ann@other.test'], 'pw\n').err, /not a domain this server serves/);
    assert.equal(c(['user', 'add', 'ann@other.test'], 'pw\n').code, 2);
    assert.match(c(['user', 'add', 'bob@a.test']).err, /no password on standard input/);
    const users = JSON.parse(c(['user', 'list', '--json']).out) as Array<{ address: string; mode: string }>;
    assert.deepEqual(users.map((u) => [u.address, u.mode]), [['ann@a.test', 'screen']]);
    assert.equal(c(['user', 'mode', 'ann@a.test', 'strict']).code, 0);
    const bad = c(['user', 'mode', 'ann@a.test', 'paranoid']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /Unknown mode "paranoid": expected one of open, screen, strict/);
    assert.equal(c(['user', 'mode', 'nobody@a.test', 'open']).code, 4);
    assert.equal(c(['user', 'passwd', 'ann@a.test'], 'new-secret\n').code, 0);
  });

  it('edits contacts as vCards', () => {
    assert.match(c(['contacts', 'allow', 'ann@a.test', 'Bob@Friends.test']).out, /allowed: Bob@Friends\.test/);
    assert.match(c(['contacts', 'allow', 'ann@a.test', 'bob@friends.test']).out, /already allowed/);
    assert.equal(c(['contacts', 'allow', 'ann@a.test', '@corp.test']).code, 0);
    assert.equal(c(['contacts', 'block', 'ann@a.test', 'spam@x.test']).code, 0);
    const cards = JSON.parse(c(['contacts', 'list', 'ann@a.test', '--json']).out) as Array<{ vcard: string; entries: Array<{ kind: string; value: string; action: string }> }>;
    const entries = cards.flatMap((k) => k.entries.map((e) => `${e.action}:${e.kind}:${e.value}`)).sort();
    assert.deepEqual(entries, ['allow:address:bob@friends.test', 'allow:domain:corp.test', 'block:address:spam@x.test']);
    assert.ok(cards.every((k) => k.vcard.startsWith('BEGIN:VCARD\r\nVERSION:4.0\r\n')));
    assert.equal(c(['contacts', 'remove', 'ann@a.test', 'spam@x.test']).code, 0);
    const missing = c(['contacts', 'remove', 'ann@a.test', 'spam@x.test']);
    assert.equal(missing.code, 4);
    assert.match(missing.err, /no contact names spam@x\.test/);
    assert.equal(c(['contacts', 'allow', 'ann@a.test', 'not an address']).code, 2);
  });

  it('imports a .vcf export and reports what was imported, merged and rejected', () => {
    const vcf = join(dir, 'export.vcf');
    writeFileSync(
      vcf,
      [
        'BEGIN:VCARD', 'VERSION:4.0', 'UID:imp-1', 'FN:Imp One', 'EMAIL:one@imp.test', 'END:VCARD',
        'BEGIN:VCARD', 'VERSION:3.0', 'UID:imp-2', 'FN:Imp Two', 'EMAIL;TYPE=INTERNET:two@imp.test', 'END:VCARD',
        'BEGIN:VCARD', 'UID:imp-3', 'FN:No Version', 'END:VCARD',
        'stray text',
      ].join('\r\n'),
    );
    const first = c(['contacts', 'import', 'ann@a.test', vcf, '--json']);
    assert.equal(first.code, 0, first.err);
    const summary = JSON.parse(first.out) as { imported: number; merged: number; rejected: Array<{ line: number; reason: string }> };
    assert.equal(summary.imported, 2);
    assert.equal(summary.merged, 0);
    assert.deepEqual(summary.rejected.map((r) => r.line), [13, 17]);
    assert.match(summary.rejected[0]!.reason, /VERSION/);
    const again = c(['contacts', 'import', 'ann@a.test', vcf]);
    assert.match(again.out, /^imported 0, merged 2, rejected 2\n  line 13: .*VERSION/);
    const cards = JSON.parse(c(['contacts', 'list', 'ann@a.test', '--json']).out) as Array<{ uid: string; vcard: string }>;
    const two = cards.find((k) => k.uid === 'imp-2');
    assert.equal(two?.vcard, 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:imp-2\r\nFN:Imp Two\r\nEMAIL;TYPE=INTERNET:two@imp.test\r\nEND:VCARD\r\n', 'stored as written');
    assert.equal(c(['contacts', 'import', 'ann@a.test', join(dir, 'missing.vcf')]).code, 2);
  });

  it('lists requests and mail, with clear errors for bad ids', () => {
    assert.deepEqual(JSON.parse(c(['requests', 'list', 'ann@a.test', '--json']).out), []);
    assert.equal(c(['requests', 'approve', 'ann@a.test', 'who@x.test']).code, 4);
    assert.deepEqual(JSON.parse(c(['mail', 'list', 'ann@a.test', '--mailbox', 'inbox', '--json']).out), []);
    assert.equal(c(['mail', 'list', 'ann@a.test', '--mailbox', 'Spam']).code, 2);
    assert.equal(c(['mail', 'show', 'ann@a.test', 'abc']).code, 2);
    assert.equal(c(['mail', 'show', 'ann@a.test', '999']).code, 4);
  });

  it('sends from a script and manages the queue', () => {
    const msg = 'From: ann@a.test\r\nTo: zed@far.test\r\nSubject: scripted\r\n\r\nhello\r\n';
    const sent = c(['send', '--from', 'ann@a.test', '--to', 'zed@far.test', 'yan@far.test'], msg);
    assert.equal(sent.code, 0, sent.err);
    assert.match(sent.out, /^queued [0-9a-f]+ for zed@far\.test, yan@far\.test/);
    const entries = JSON.parse(c(['queue', 'list', '--json']).out) as Array<{ id: number; recipient: string; state: string }>;
    assert.deepEqual(entries.map((e) => [e.recipient, e.state]).sort(), [['yan@far.test', 'scheduled'], ['zed@far.test', 'scheduled']]);
    const mail = JSON.parse(c(['mail', 'list', 'ann@a.test', '--mailbox', 'Sent', '--json']).out) as Array<{ subject: string }>;
    assert.deepEqual(mail.map((m) => m.subject), ['scripted']);
    const cards = JSON.parse(c(['contacts', 'list', 'ann@a.test', '--json']).out) as Array<{ entries: Array<{ value: string }> }>;
    assert.ok(cards.some((k) => k.entries.some((e) => e.value === 'zed@far.test')), 'recipients become contacts');
    assert.match(c(['queue', 'retry', String(entries[0]!.id)]).out, /scheduled for now/);
    assert.equal(c(['queue', 'delete', String(entries[0]!.id)]).code, 0);
    assert.equal(c(['queue', 'delete', String(entries[0]!.id)]).code, 4);
    assert.equal(c(['queue', 'retry', 'x']).code, 2);
    assert.equal(c(['queue', 'list', '--state', 'lost']).code, 2);
    const forged = c(['send', '--from', 'ann@a.test', '--to', 'zed@far.test'], 'From: boss@a.test\r\nSubject: x\r\n\r\nx\r\n');
    // The message as given is refused: bad input (2), like every other refusal of input.
    assert.equal(forged.code, 2);
    assert.match(forged.err, /^twoway: From: address rejected: boss@a\.test is not an address of ann@a\.test/);
    const empty = c(['send', '--from', 'ann@a.test', '--to', 'zed@far.test'], '');
    assert.equal(empty.code, 2);
    assert.match(empty.err, /empty message/);
  });

  it('reports a broken DKIM key when the server starts, naming the key', () => {
    const keyFile = join(dir, 'data/dkim-ed25519.key');
    const good = readFileSync(keyFile);
    writeFileSync(keyFile, '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n');
    try {
      const r = c(['start']);
      assert.equal(r.code, 3);
      assert.match(r.err, /^twoway: key "dkim\.ed25519_key": .*dkim-ed25519\.key is not a PEM private key/);
    } finally {
      writeFileSync(keyFile, good);
    }
  });

  it('prints the DNS records to publish', () => {
    const r = c(['dns']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^a\.test\.\t3600\tIN\tMX\t10 mail\.a\.test\./m);
    assert.match(r.out, /^twoway\._domainkey\.a\.test\.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p=/m);
    assert.match(r.out, /^_dmarc\.a\.test\..*v=DMARC1/m);
    assert.match(r.out, /v=spf1 mx -all/);
  });

  it('takes the config from TWOWAY_CONFIG', () => {
    const r = twoway(['user', 'list', '--json'], { env: { TWOWAY_CONFIG: cfg } });
    assert.equal(r.code, 0, r.err);
  });

  it('reports config and usage errors in one line with distinct exit codes', () => {
    const none = twoway(['user', 'list', '--config', join(dir, 'missing.toml')]);
    assert.equal(none.code, 3);
    assert.match(none.err, /^twoway: no configuration file at .*missing\.toml/);
    const badFile = join(dir, 'bad.toml');
    writeFileSync(badFile, 'hostname = "mx.a.test"\ndomains = ["a.test"]\n[smtp]\nport = "x"\n');
    const bad = twoway(['user', 'list', '--config', badFile]);
    assert.equal(bad.code, 3);
    assert.match(bad.err, /key "smtp\.port"/);
    assert.ok(!/\n\s+at /.test(bad.err), 'no stack trace');
    const unknown = twoway(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown command 'frobnicate'/);
    const missingArg = twoway(['contacts', 'allow', 'ann@a.test', '--config', cfg]);
    assert.equal(missingArg.code, 2);
    assert.match(missingArg.err, /missing required argument 'sender'/);
  });
  it('expects an ownership confirmation from a domain for a while', () => {
    const started = Date.now();
    const r = c(['expect', 'ann@a.test', 'Shop.test', '--for', '2h', '--uses', '3']);
    assert.equal(r.code, 0, r.err);
    const m = /^expecting shop\.test until (\S+) \(3 uses\): card ([0-9a-f-]{36})\n$/.exec(r.out);
    assert.ok(m, r.out);
    const ms = Date.parse(m[1]!) - started;
    assert.ok(ms >= 7_199_000 && ms <= 7_260_000, `expires in 2h, got ${ms} ms`);
    const cards = JSON.parse(c(['contacts', 'list', 'ann@a.test', '--json']).out) as Array<{ uid: string; vcard: string }>;
    const card = cards.find((k) => k.uid === m[2]);
    assert.match(card?.vcard.replace(/\r\n[ \t]/g, '') ?? '', /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=3:shop\.test\r\n/);
    const json = JSON.parse(c(['expect', 'ann@a.test', 'shop.test', '--json']).out) as { until: string; uses: number };
    assert.equal(json.uses, 1, 'one use by default');
    assert.ok(Math.abs(Date.parse(json.until) - Date.now() - 86_400_000) < 60_000, 'for 24 hours by default');
    assert.equal(c(['expect', 'ann@a.test', 'shop.test', '--for', 'soon']).code, 2);
    assert.equal(c(['expect', 'ann@a.test', 'shop.test', '--uses', '0']).code, 2);
    assert.equal(c(['expect', 'ann@a.test', 'not a domain']).code, 2);
  });
});
