/**
 * `twoway demo`, the README's first command, run as a user would: the
 * CLI's sources in a child process. It must show a TWM delivery, a stranger's request
 * that stored no body, approval with the fetch, and SMTP to the legacy domain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_ARGS } from './helpers/cli.ts';

const run = promisify(execFile);

test('the demo runs three domains and shows TWM next to SMTP', { timeout: 120_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'twoway-demo-test-'));
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI_ARGS, 'demo', '--dir', 'demo'], { cwd, timeout: 110_000 });
    assert.equal(stderr.trim(), '', 'nothing on stderr');
    assert.match(stdout, /1\. bob@south\.test -> alice \(allowed\), by Two-Way Mail/);
    assert.match(stdout, /stored it in alice's INBOX, and sent a receipt/);
    assert.match(stdout, /contact request with dave's introduction:\n +"Hi Alice, I saw your talk/);
    assert.match(stdout, /dave's status: pending\./);
    assert.match(stdout, /^ +2 +TWM, stranger +\d[\d,]* B +0 B +Screener request$/m);
    assert.match(stdout, /^ +3 +TWM, approval +[\d,]+ B +[\d,]+ B +INBOX$/m);
    assert.match(stdout, /^ +4 +SMTP, legacy +[\d,]+ B +[\d,]+ B +carol's INBOX$/m);
    // The stranger's notice is a small fraction of the body it stands for.
    const notice = Number(/TWM, stranger +([\d,]+) B/.exec(stdout)![1]!.replace(/,/g, ''));
    const body = Number(/TWM, approval +[\d,]+ B +([\d,]+) B/.exec(stdout)![1]!.replace(/,/g, ''));
    assert.ok(notice * 5 < body, `notice ${notice} B vs body ${body} B`);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
