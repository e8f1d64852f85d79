/**
 * Debian's litmus WebDAV suite against the CardDAV server, in a user's
 * address-book home (litmus creates its `litmus/` collection there, which
 * becomes an address book). litmus tests generic WebDAV: arbitrary PUT
 * bodies, plain collections inside collections, COPY, MOVE, dead properties
 * and locks, which a CardDAV server refuses by design. docs/carddav.md lists
 * which tests pass and why the others do not apply; this test keeps that
 * list true: every test named there must pass. Skipped when litmus is not
 * installed, unless CI is set.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from './helpers/server.ts';

const LITMUS = '/usr/bin/litmus';
const missing = !existsSync(LITMUS) && !process.env.CI ? 'litmus is not installed (apt-get install litmus)' : undefined;

/** The tests docs/carddav.md records as passing, per suite. */
export const EXPECTED_PASS: Record<string, string[]> = {
  basic: ['init', 'begin', 'options', 'put_no_parent', 'delete_null', 'mkcol_no_parent', 'mkcol_with_body', 'finish'],
  copymove: ['init', 'begin', 'copy_cleanup', 'move_cleanup', 'finish'],
  props: ['init', 'begin', 'propfind_invalid', 'propfind_invalid2', 'propfind_d0', 'propextended', 'propwformed', 'propcleanup', 'finish'],
  locks: ['init', 'begin', 'options'],
  http: ['init', 'begin', 'finish'],
};

/** Parses litmus output into suite -> test -> result ("pass", "FAIL", "SKIPPED"; a warning counts as its result). */
export function parseLitmus(output: string): Map<string, Map<string, string>> {
  const suites = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of output.split('\n')) {
    const suite = /^-> running `(\w+)':/.exec(line);
    if (suite) {
      current = new Map();
      suites.set(suite[1]!, current);
      continue;
    }
    // "  3. put_get............... FAIL (...)": progress is printed twice on a non-terminal; take the last verdict.
    for (const m of line.matchAll(/\b\d+\. (\w+)\.+ (pass|FAIL|SKIPPED|WARNING)/g)) {
      const verdict = m[2] === 'WARNING' ? 'pass' : m[2]!; // "WARNING: ..." is followed by "pass (with 1 warning)"
      if (current && !current.has(m[1]!)) current.set(m[1]!, verdict);
    }
    const warned = /\.{3,} (pass|FAIL) \(with \d+ warning/.exec(line);
    if (warned && current) {
      const last = [...current.keys()].at(-1);
      if (last) current.set(last, warned[1]!);
    }
  }
  return suites;
}

describe('litmus WebDAV suite', { skip: missing }, () => {
  let t: TestServer;
  let cwd: string;
  before(async () => {
    t = await startTestServer();
    await t.server.services.accounts.add('litmus@example.test', 'password-1');
    cwd = mkdtempSync(join(tmpdir(), 'twoway-litmus-'));
  });
  after(async () => {
    await t.close();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('passes every test documented as passing in docs/carddav.md', async () => {
    const output = await new Promise<string>((resolve, reject) => {
      // -k: run every suite even when one has failures. cwd: litmus writes debug.log there.
      const child = spawn(LITMUS, ['-k', `${t.server.http.url}/dav/addressbooks/litmus@example.test/`, 'litmus@example.test', 'password-1'], { cwd, timeout: 300_000 });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString('latin1')));
      child.stderr.on('data', (c: Buffer) => (out += c.toString('latin1')));
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });
    const results = parseLitmus(output);
    for (const [suite, tests] of Object.entries(EXPECTED_PASS)) {
      const got = results.get(suite);
      assert.ok(got, `suite ${suite} did not run:\n${output}`);
      for (const name of tests) assert.equal(got.get(name), 'pass', `${suite}/${name}\n${output}`);
    }
    // Nothing the server should refuse cleanly ever got a 5xx.
    assert.doesNotMatch(output, /\b5\d\d [A-Z][a-z]+/);
  });
});
