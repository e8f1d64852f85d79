/**
 * The `twoway` CLI as a user runs it: the real bin in a child process, a
 * config written by `init`, one-line errors and exit codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

  it('lists requests and mail, with clear errors for bad ids', () => {
    assert.deepEqual(JSON.parse(c(['requests', 'list', 'ann@a.test', '--json']).out), []);
    assert.equal(c(['requests', 'approve', 'ann@a.test', 'who@x.test']).code, 4);
    assert.deepEqual(JSON.parse(c(['mail', 'list', 'ann@a.test', '--mailbox', 'inbox', '--json']).out), []);
    assert.equal(c(['mail', 'list', 'ann@a.test', '--mailbox', 'Spam']).code, 2);
    assert.equal(c(['mail', 'show', 'ann@a.test', 'abc']).code, 2);
    assert.equal(c(['mail', 'show', 'ann@a.test', '999']).code, 4);
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
});
