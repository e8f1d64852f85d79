/**
 * No function in src/ is longer than 80 lines (CONTRIBUTING.md, "Style"): a
 * function that wraps a whole module is split into named parts with one job
 * each. Every function node is measured from its first token to its closing
 * brace, nested ones separately (their lines count in the enclosing function
 * too). An exception is listed in EXEMPT below with its reason.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { longFunctions, typeScriptFiles } from './helpers/function-length.ts';

const LIMIT = 80;
const root = fileURLToPath(new URL('..', import.meta.url));

/** `path name` -> why this function may stay longer than the limit. */
const SHIPPED_MIGRATION = 'a shipped migration is never edited (CONTRIBUTING.md, "Adding a migration")';
const EXEMPT: Record<string, string> = {
  'src/store/migrations.ts initial': SHIPPED_MIGRATION,
  'src/store/migrations.ts up': SHIPPED_MIGRATION,
  'src/store/migration-0003-twm.ts twm': SHIPPED_MIGRATION,
  'src/store/migration-0003-twm.ts up': SHIPPED_MIGRATION,
};

test(`no function in src/ spans more than ${LIMIT} lines`, () => {
  // Unit tests (src/**/*.test.ts) are left out, as test/ is: a describe()
  // callback groups tests around a shared fixture, it is not a part of the program.
  const files = typeScriptFiles(`${root}src`).filter((f) => !f.endsWith('.test.ts'));
  assert.ok(files.length > 100, `only ${files.length} files found under src/: the scan is broken`);
  const offenders: string[] = [];
  const exemptSeen = new Set<string>();
  for (const file of files) {
    const path = relative(root, file);
    for (const f of longFunctions(path, readFileSync(file, 'utf8'), LIMIT)) {
      const key = `${path} ${f.name}`;
      if (key in EXEMPT) exemptSeen.add(key);
      else offenders.push(`  ${path}:${f.line} ${f.name} (${f.lines} lines)`);
    }
  }
  assert.equal(offenders.length, 0, `functions over ${LIMIT} lines (split them into named parts):\n${offenders.join('\n')}`);
  const stale = Object.keys(EXEMPT).filter((k) => !exemptSeen.has(k));
  assert.deepEqual(stale, [], 'exemptions that no function needs any more; remove them');
});

test('the measure finds each kind of long function and names it', () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
  const source = [
    `export function declared() {\n${body(79)}\n}`, // 81 lines
    `const arrow = () => {\n${body(78)}\n};`, // 80 lines: allowed
    `export const outer = function () {\n  const inner = async (x: number) => {\n${body(80)}\n  };\n};`,
    `class Box {\n  method() {\n${body(79)}\n  }\n  get size() { return 1; }\n}`,
    `const hooks = { login(user: string) {\n${body(79)}\n} };`,
    `describe('a suite', () => {\n${body(79)}\n});`,
  ].join('\n');
  const found = longFunctions('sample.ts', source, LIMIT).map((f) => `${f.line} ${f.name} (${f.lines})`);
  assert.deepEqual(found, [
    '1 declared (81)',
    '162 outer (84)',
    '163 inner (82)',
    '247 Box.method (81)',
    '330 login (81)',
    "411 describe 'a suite' callback (81)",
  ]);
});
