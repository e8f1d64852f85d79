/**
 * Production runs compiled JavaScript: the package's build (scripts/build.mjs,
 * what `npm install` runs as the prepare script) emits a dist/ that the real
 * bin runs with plain node, importing no devDependency and no TypeScript
 * loader. Built into a temporary copy, so the checkout's dist/ is untouched.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './helpers/cli.ts';

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? jsFiles(p) : n.endsWith('.js') ? [p] : [];
  });
}

// 300 s, not the default 60: the build bundles all of src/, slow on a loaded machine.
describe('the compiled bin', { timeout: 300_000 }, () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'twoway-build-'));
    mkdirSync(join(root, 'bin'));
    copyFileSync(join(REPO, 'bin', 'twoway.js'), join(root, 'bin', 'twoway.js'));
    copyFileSync(join(REPO, 'package.json'), join(root, 'package.json'));
    symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
    execFileSync(process.execPath, [join(REPO, 'scripts', 'build.mjs'), '--outdir', join(root, 'dist')], { stdio: 'pipe' });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const run = (args: string[], input = '') => {
    // No --import: plain node, as `npx twoway` runs it.
    const r = spawnSync(process.execPath, [join(root, 'bin', 'twoway.js'), ...args], { input, encoding: 'utf8', env: { ...process.env, TWOWAY_CONFIG: '' }, timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  it('imports no devDependency, TypeScript loader or .ts file at run time, and no tests are shipped', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const forbidden = [...Object.keys(pkg.devDependencies), 'tsx', 'typescript'];
    const files = jsFiles(join(root, 'dist'));
    assert.ok(files.some((f) => f.endsWith(join('cli', 'index.js'))));
    assert.deepEqual(files.filter((f) => f.endsWith('.test.js')), []);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/(?:from\s+|import\()\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1]!;
        assert.ok(!spec.endsWith('.ts'), `${f} imports ${spec}`);
        assert.ok(!forbidden.some((d) => spec === d || spec.startsWith(`${d}/`)), `${f} imports the devDependency ${spec}`);
      }
    }
  });

  it('runs --version, init, user add and mail list with plain node', () => {
    const version = run(['--version']);
    assert.deepEqual([version.code, version.out, version.err], [0, '0.1.0\n', '']);
    const home = join(root, 'home');
    const cfg = join(home, 'twoway.toml');
    assert.equal(run(['init', '--domain', 'a.test', '--dir', home, '--smtp-port', '0', '--http-port', '0']).code, 0);
    assert.equal(run(['user', 'add', 'ann@a.test', '--config', cfg], 'pw\n').code, 0);
    const listed = run(['mail', 'list', 'ann@a.test', '--json', '--config', cfg]);
    assert.deepEqual([listed.code, listed.out, listed.err], [0, '[]\n', '']);
    // Stored through the message writer's thread (import warms it: store/message-writer.ts), started from its built chunk.
    const mbox = join(home, 'old.mbox');
    writeFileSync(mbox, 'From a@b.test Mon Jan  1 00:00:00 2024\nFrom: a@b.test\nSubject: one\n\nfirst\n\nFrom a@b.test Mon Jan  1 00:00:01 2024\nFrom: a@b.test\nSubject: two\n\nsecond\n');
    assert.equal(run(['import', 'ann@a.test', mbox, '--no-contacts', '--config', cfg]).code, 0);
    const imported = JSON.parse(run(['mail', 'list', 'ann@a.test', '--json', '--config', cfg]).out) as Array<{ subject: string }>;
    assert.deepEqual(imported.map((m) => m.subject).sort(), ['one', 'two']);
    const missing = run(['mail', 'list', 'nobody@a.test', '--config', cfg]);
    assert.equal(missing.code, 4);
    assert.match(missing.err, /^twoway: /);
  });

  it('says how to build when dist/ is missing', () => {
    rmSync(join(root, 'dist'), { recursive: true, force: true });
    const r = run(['--version']);
    assert.match(r.err, /dist\/ is missing: run "npm run build"/);
  });
});
