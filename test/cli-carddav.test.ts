/**
 * The CLI's parts of the address-book issue: `twoway dns` prints the RFC 6764
 * CardDAV records, and `twoway contacts import` of a large file draws a
 * progress bar on a terminal (the CLI's sources in a child process on a
 * pseudo-terminal from util-linux's `script`) and none when stderr is not one
 * (in-process, through the program builder).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, CLI_ARGS } from './helpers/cli.ts';
const SCRIPT = '/usr/bin/script';
const CARDS = 300; // enough for the bar to move through every percent

const twoway = cli;

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('twoway CLI: CardDAV records and the import progress bar', () => {
  let dir: string;
  let cfg: string;
  let vcf: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-cli-carddav-'));
    cfg = join(dir, 'twoway.toml');
    assert.equal((await twoway(['init', '--domain', 'a.test', '--dir', dir, '--smtp-port', '0', '--http-port', '8443'])).code, 0);
    assert.equal((await twoway(['user', 'add', 'ann@a.test', '--config', cfg], 'secret-pw\n')).code, 0);
    const cards: string[] = [];
    for (let i = 0; i < CARDS; i++) cards.push(`BEGIN:VCARD\r\nVERSION:4.0\r\nUID:bulk-${i}\r\nFN:Person ${i}\r\nEMAIL:p${i}@bulk.test\r\nEND:VCARD\r\n`);
    cards.push('BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Old\r\nEND:VCARD\r\n');
    vcf = join(dir, 'big.vcf');
    writeFileSync(vcf, cards.join(''));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('twoway dns prints the _carddavs._tcp SRV and TXT records', async () => {
    const r = await twoway(['dns', '--config', cfg]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^_carddavs\._tcp\.a\.test\.\t3600\tIN\tSRV\t0 1 8443 mail\.a\.test\.\t/m);
    assert.match(r.out, /^_carddavs\._tcp\.a\.test\.\t3600\tIN\tTXT\t"path=\/dav\/"\t/m);
  });

  // 120 s, not the default 60: a child process on a pseudo-terminal starts the TypeScript sources through tsx, which alone takes tens of seconds on a loaded machine.
  it('import draws a progress bar on a terminal, and ends with the summary', { skip: !existsSync(SCRIPT) && !process.env.CI ? 'no script(1)' : undefined, timeout: 120_000 }, () => {
    const command = [process.execPath, ...CLI_ARGS, 'contacts', 'import', 'ann@a.test', vcf, '--config', cfg].map(shellQuote).join(' ');
    // script runs the command on a pseudo-terminal: stdout and stderr are TTYs, and both come back on script's stdout.
    const r = spawnSync(SCRIPT, ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, TWOWAY_CONFIG: '' } });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const frames = [...r.stdout.matchAll(/\r\[(#*)( *)\] +(\d+)% (\d+)\/(\d+) cards/g)];
    assert.ok(frames.length >= 50, `a bar redrawn as the import goes (${frames.length} frames)`);
    const pcts = frames.map((f) => Number(f[3]));
    assert.deepEqual(pcts, [...pcts].sort((a, b) => a - b), 'the percentage only grows');
    const last = frames.at(-1)!;
    assert.equal(last[1]!.length, 30);
    assert.equal(`${last[3]} ${last[4]}/${last[5]}`, `100 ${CARDS + 1}/${CARDS + 1}`);
    assert.ok(frames.every((f) => f[1]!.length + f[2]!.length === 30), 'a fixed-width bar');
    assert.match(r.stdout, new RegExp(`imported ${CARDS}, merged 0, rejected 1\\r?\\n {2}line ${CARDS * 6 + 2}: .*VERSION`));
  });

  it('no bar when stderr is not a terminal', async () => {
    const r = await twoway(['contacts', 'import', 'ann@a.test', vcf, '--config', cfg]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.match(r.out, new RegExp(`^imported 0, merged ${CARDS}, rejected 1\\n`));
  });
});
