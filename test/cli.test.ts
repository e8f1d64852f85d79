/**
 * The `twoway` CLI as a user runs it: a config written by `init`, one-line
 * errors and exit codes. The commands run in-process through the program
 * builder (the same commander program the bin runs); what needs a real
 * process (the environment, the binary's exit code) runs as a child.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, cliChild } from './helpers/cli.ts';

const twoway = (args: string[], options: { input?: string } = {}) => cli(args, options.input);

describe('twoway CLI', () => {
  let dir: string;
  let cfg: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-cli-'));
    cfg = join(dir, 'twoway.toml');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const c = (args: string[], input?: string) => twoway([...args, '--config', cfg], { input });

  it('init writes the config and the keys', async () => {
    const r = await twoway(['init', '--domain', 'a.test', '--dir', dir, '--smtp-port', '0', '--http-port', '0', '--dns', '127.0.0.1:5353']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /wrote .*twoway\.toml/);
    assert.ok(existsSync(join(dir, 'data/dkim.key')));
    assert.ok(existsSync(join(dir, 'data/tls/cert.pem')));
    const again = await twoway(['init', '--domain', 'a.test', '--dir', dir]);
    assert.equal(again.code, 5);
    assert.match(again.err, /^twoway: .*exists already/);
  });

  it('manages users, with the password from stdin', async () => {
    assert.equal((await c(['user', 'add', 'ann@a.test', '--mode', 'screen'], 'secret-pw\n')).code, 0);
    const dup = await c(['user', 'add', 'ann@a.test'], 'x\n');
    assert.equal(dup.code, 5);
    assert.equal(dup.err.trim().split('\n').length, 1, 'errors are one line');
    assert.match((await c(['user', 'add', 'ann@other.test'], 'pw\n')).err, /not a domain this server serves/);
    assert.equal((await c(['user', 'add', 'ann@other.test'], 'pw\n')).code, 2);
    assert.match((await c(['user', 'add', 'bob@a.test'])).err, /no password on standard input/);
    const users = JSON.parse((await c(['user', 'list', '--json'])).out) as Array<{ address: string; mode: string }>;
    assert.deepEqual(users.map((u) => [u.address, u.mode]), [['ann@a.test', 'screen']]);
    assert.equal((await c(['user', 'mode', 'ann@a.test', 'strict'])).code, 0);
    const bad = await c(['user', 'mode', 'ann@a.test', 'paranoid']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /Unknown mode "paranoid": expected one of open, screen, strict/);
    assert.equal((await c(['user', 'mode', 'nobody@a.test', 'open'])).code, 4);
    assert.equal((await c(['user', 'passwd', 'ann@a.test'], 'new-secret\n')).code, 0);
  });

  it('edits contacts as vCards', async () => {
    assert.match((await c(['contacts', 'allow', 'ann@a.test', 'Bob@Friends.test'])).out, /allowed: Bob@Friends\.test/);
    assert.match((await c(['contacts', 'allow', 'ann@a.test', 'bob@friends.test'])).out, /already allowed/);
    assert.equal((await c(['contacts', 'allow', 'ann@a.test', '@corp.test'])).code, 0);
    assert.equal((await c(['contacts', 'block', 'ann@a.test', 'spam@x.test'])).code, 0);
    const cards = JSON.parse((await c(['contacts', 'list', 'ann@a.test', '--json'])).out) as Array<{ vcard: string; entries: Array<{ kind: string; value: string; action: string }> }>;
    const entries = cards.flatMap((k) => k.entries.map((e) => `${e.action}:${e.kind}:${e.value}`)).sort();
    assert.deepEqual(entries, ['allow:address:bob@friends.test', 'allow:domain:corp.test', 'block:address:spam@x.test']);
    assert.ok(cards.every((k) => k.vcard.startsWith('BEGIN:VCARD\r\nVERSION:4.0\r\n')));
    assert.equal((await c(['contacts', 'remove', 'ann@a.test', 'spam@x.test'])).code, 0);
    const missing = await c(['contacts', 'remove', 'ann@a.test', 'spam@x.test']);
    assert.equal(missing.code, 4);
    assert.match(missing.err, /no contact names spam@x\.test/);
    assert.equal((await c(['contacts', 'allow', 'ann@a.test', 'not an address'])).code, 2);
  });

  it('imports a .vcf export and reports what was imported, merged and rejected', async () => {
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
    const first = await c(['contacts', 'import', 'ann@a.test', vcf, '--json']);
    assert.equal(first.code, 0, first.err);
    const summary = JSON.parse(first.out) as { imported: number; merged: number; rejected: Array<{ line: number; reason: string }> };
    assert.equal(summary.imported, 2);
    assert.equal(summary.merged, 0);
    assert.deepEqual(summary.rejected.map((r) => r.line), [13, 17]);
    assert.match(summary.rejected[0]!.reason, /VERSION/);
    const again = await c(['contacts', 'import', 'ann@a.test', vcf]);
    assert.match(again.out, /^imported 0, merged 2, rejected 2\n {2}line 13: .*VERSION/);
    const cards = JSON.parse((await c(['contacts', 'list', 'ann@a.test', '--json'])).out) as Array<{ uid: string; vcard: string }>;
    const two = cards.find((k) => k.uid === 'imp-2');
    assert.equal(two?.vcard, 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:imp-2\r\nFN:Imp Two\r\nEMAIL;TYPE=INTERNET:two@imp.test\r\nEND:VCARD\r\n', 'stored as written');
    assert.equal((await c(['contacts', 'import', 'ann@a.test', join(dir, 'missing.vcf')])).code, 2);
  });

  it('lists requests and mail, with clear errors for bad ids', async () => {
    assert.deepEqual(JSON.parse((await c(['requests', 'list', 'ann@a.test', '--json'])).out), []);
    assert.equal((await c(['requests', 'approve', 'ann@a.test', 'who@x.test'])).code, 4);
    assert.deepEqual(JSON.parse((await c(['mail', 'list', 'ann@a.test', '--mailbox', 'inbox', '--json'])).out), []);
    assert.equal((await c(['mail', 'list', 'ann@a.test', '--mailbox', 'Spam'])).code, 2);
    assert.equal((await c(['mail', 'show', 'ann@a.test', 'abc'])).code, 2);
    assert.equal((await c(['mail', 'show', 'ann@a.test', '999'])).code, 4);
  });

  it('sends from a script and manages the queue', async () => {
    const msg = 'From: ann@a.test\r\nTo: zed@far.test\r\nSubject: scripted\r\n\r\nhello\r\n';
    const sent = await c(['send', '--from', 'ann@a.test', '--to', 'zed@far.test', 'yan@far.test'], msg);
    assert.equal(sent.code, 0, sent.err);
    assert.match(sent.out, /^queued [0-9a-f]+ for zed@far\.test, yan@far\.test/);
    const entries = JSON.parse((await c(['queue', 'list', '--json'])).out) as Array<{ id: number; recipient: string; state: string }>;
    assert.deepEqual(entries.map((e) => [e.recipient, e.state]).sort(), [['yan@far.test', 'scheduled'], ['zed@far.test', 'scheduled']]);
    const mail = JSON.parse((await c(['mail', 'list', 'ann@a.test', '--mailbox', 'Sent', '--json'])).out) as Array<{ subject: string }>;
    assert.deepEqual(mail.map((m) => m.subject), ['scripted']);
    const cards = JSON.parse((await c(['contacts', 'list', 'ann@a.test', '--json'])).out) as Array<{ entries: Array<{ value: string }> }>;
    assert.ok(cards.some((k) => k.entries.some((e) => e.value === 'zed@far.test')), 'recipients become contacts');
    assert.match((await c(['queue', 'retry', String(entries[0]!.id)])).out, /scheduled for now/);
    const beforeFlush = Date.now();
    assert.equal((await c(['queue', 'flush'])).out, '2 entries scheduled for now\n');
    const flushed = JSON.parse((await c(['queue', 'flush', '--json'])).out) as Array<{ id: number; state: string; nextAttemptAt: string }>;
    assert.deepEqual(flushed.map((e) => e.id).sort(), entries.map((e) => e.id).sort());
    assert.ok(flushed.every((e) => e.state === 'scheduled' && Date.parse(e.nextAttemptAt) >= beforeFlush), 'every entry due from now');
    assert.equal((await c(['queue', 'delete', String(entries[0]!.id)])).code, 0);
    assert.equal((await c(['queue', 'delete', String(entries[0]!.id)])).code, 4);
    assert.equal((await c(['queue', 'retry', 'x'])).code, 2);
    assert.equal((await c(['queue', 'list', '--state', 'lost'])).code, 2);
    const forged = await c(['send', '--from', 'ann@a.test', '--to', 'zed@far.test'], 'From: boss@a.test\r\nSubject: x\r\n\r\nx\r\n');
    // The message as given is refused: bad input (2), like every other refusal of input.
    assert.equal(forged.code, 2);
    assert.match(forged.err, /^twoway: From: address rejected: boss@a\.test is not an address of ann@a\.test/);
    const empty = await c(['send', '--from', 'ann@a.test', '--to', 'zed@far.test'], '');
    assert.equal(empty.code, 2);
    assert.match(empty.err, /empty message/);
  });

  it('reports a broken DKIM key when the server starts, naming the key', async () => {
    const keyFile = join(dir, 'data/dkim-ed25519.key');
    const good = readFileSync(keyFile);
    writeFileSync(keyFile, '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n');
    try {
      const r = await c(['start']);
      assert.equal(r.code, 3);
      assert.match(r.err, /^twoway: key "dkim\.ed25519_key": .*dkim-ed25519\.key is not a PEM private key/);
    } finally {
      writeFileSync(keyFile, good);
    }
  });

  it('prints the DNS records to publish', async () => {
    const r = await c(['dns']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^a\.test\.\t3600\tIN\tMX\t10 mail\.a\.test\./m);
    assert.match(r.out, /^twoway\._domainkey\.a\.test\.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p=/m);
    assert.match(r.out, /^_dmarc\.a\.test\..*v=DMARC1/m);
    assert.match(r.out, /v=spf1 mx -all/);
  });

  it('takes the config from TWOWAY_CONFIG', async () => {
    // A child process: the environment is the point.
    const r = cliChild(['user', 'list', '--json'], { env: { TWOWAY_CONFIG: cfg } });
    assert.equal(r.code, 0, r.err);
  });

  it('reports config and usage errors in one line with distinct exit codes', async () => {
    const none = await twoway(['user', 'list', '--config', join(dir, 'missing.toml')]);
    assert.equal(none.code, 3);
    assert.match(none.err, /^twoway: no configuration file at .*missing\.toml/);
    const badFile = join(dir, 'bad.toml');
    writeFileSync(badFile, 'hostname = "mx.a.test"\ndomains = ["a.test"]\n[smtp]\nport = "x"\n');
    const bad = await twoway(['user', 'list', '--config', badFile]);
    assert.equal(bad.code, 3);
    assert.match(bad.err, /key "smtp\.port"/);
    assert.ok(!/\n\s+at /.test(bad.err), 'no stack trace');
    const unknown = await twoway(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown command 'frobnicate'/);
    const missingArg = await twoway(['contacts', 'allow', 'ann@a.test', '--config', cfg]);
    assert.equal(missingArg.code, 2);
    assert.match(missingArg.err, /missing required argument 'sender'/);
  });
  it('expects an ownership confirmation from a domain for a while', async () => {
    const started = Date.now();
    const r = await c(['expect', 'ann@a.test', 'Shop.test', '--for', '2h', '--uses', '3']);
    assert.equal(r.code, 0, r.err);
    const m = /^expecting shop\.test until (\S+) \(3 uses\): card ([0-9a-f-]{36})\n$/.exec(r.out);
    assert.ok(m, r.out);
    const ms = Date.parse(m[1]!) - started;
    assert.ok(ms >= 7_199_000 && ms <= 7_260_000, `expires in 2h, got ${ms} ms`);
    const cards = JSON.parse((await c(['contacts', 'list', 'ann@a.test', '--json'])).out) as Array<{ uid: string; vcard: string }>;
    const card = cards.find((k) => k.uid === m[2]);
    assert.match(card?.vcard.replace(/\r\n[ \t]/g, '') ?? '', /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=3:shop\.test\r\n/);
    const json = JSON.parse((await c(['expect', 'ann@a.test', 'shop.test', '--json'])).out) as { until: string; uses: number };
    assert.equal(json.uses, 1, 'one use by default');
    assert.ok(Math.abs(Date.parse(json.until) - Date.now() - 86_400_000) < 60_000, 'for 24 hours by default');
    assert.equal((await c(['expect', 'ann@a.test', 'shop.test', '--for', 'soon'])).code, 2);
    assert.equal((await c(['expect', 'ann@a.test', 'shop.test', '--uses', '0'])).code, 2);
    assert.equal((await c(['expect', 'ann@a.test', 'not a domain'])).code, 2);
    // --from and --require-marker are written into the card; a public suffix is refused.
    const marked = JSON.parse((await c(['expect', 'ann@a.test', 'shop.test', '--from', 'Mailer.test', '--require-marker', '--json'])).out) as { uid: string };
    const all = JSON.parse((await c(['contacts', 'list', 'ann@a.test', '--json'])).out) as Array<{ uid: string; vcard: string }>;
    assert.match(all.find((k) => k.uid === marked.uid)?.vcard.replace(/\r\n[ \t]/g, '') ?? '', /;USES=1;FROM=mailer\.test;MARKER=REQUIRED:shop\.test\r\n/);
    const suffix = await c(['expect', 'ann@a.test', 'co.uk']);
    assert.equal(suffix.code, 2, suffix.err);
    assert.match(suffix.err, /public suffix/);
    assert.equal((await c(['expect', 'ann@a.test', 'shop.test', '--from', 'a.test,b.test'])).code, 2);
  });
});
