/**
 * The import table of docs/architecture.md ("Layers and the import rule")
 * holds for every import in src/. The rules are read from the document
 * (test/helpers/import-rules.ts), so the table cannot drift from the code:
 * a forbidden import fails here with its file and line, and so does a folder
 * without a row or a listed exception that nothing needs any more.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { checkImports, checkRepository, importsOf, parseImportRules, type ImportRules } from './helpers/import-rules.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

test('every import in src/ is allowed by the table in docs/architecture.md', () => {
  const { violations, unusedExceptions, files, edges } = checkRepository(root);
  assert.ok(files.length > 100 && edges.length > 500, `only ${files.length} files and ${edges.length} imports found: the scan is broken`);
  const report = violations.map((v) => `  src/${v.file}:${v.line}: ${v.message}`).join('\n');
  assert.equal(violations.length, 0, `forbidden imports (fix the import, or change docs/architecture.md with a reason):\n${report}`);
  const stale = unusedExceptions.map((x) => `  ${x.from} -> ${x.to.join(', ')}`).join('\n');
  assert.equal(unusedExceptions.length, 0, `exceptions in docs/architecture.md that no import needs any more; remove them:\n${stale}`);
});

test('the table covers the layering facts the rest of the document states', () => {
  const { rules } = checkRepository(root).rules;
  const row = (scope: string) => {
    const r = rules.find((x) => x.scope === scope);
    assert.ok(r, `no row for ${scope}`);
    return r;
  };
  // core is pure: nothing from src/, no I/O modules.
  assert.deepEqual(row('core/').values, []);
  assert.deepEqual(row('core/').types, []);
  assert.ok(row('core/').packages && !row('core/').packages!.some((p) => /^node:(fs|net|dgram|dns|http|https|tls|child_process)$|^node:\*$/.test(p)));
  // Wire code knows nothing of storage.
  for (const p of ['protocols/smtp/', 'protocols/http/', 'protocols/carddav/', 'protocols/twoway/']) {
    const r = row(p);
    for (const t of [...(r.values ?? ['(any)']), ...r.types]) assert.ok(!/^(store|services|ingest|delivery)/.test(t), `${p} may import ${t}`);
    assert.ok(r.packages && !r.packages.some((x) => ['kysely', 'pg', 'better-sqlite3'].includes(x)), `${p} may use a database driver`);
  }
});

const sample: ImportRules = parseImportRules(`
<!-- import-rules:start -->
| folder | may import | only types from | packages |
|---|---|---|---|
| \`core/\` | nothing | nothing | \`node:crypto\` |
| \`store/\` | \`core\` | nothing | \`node:*\`, \`kysely\` |
| \`protocols/smtp/\` | \`core\` | \`store/types.ts\` | \`node:*\` |
| \`main.ts\` | any except \`cli\` | | any |

| file or folder | imports | why |
|---|---|---|
| \`protocols/smtp/legacy.ts\` | \`store/open.ts\` | an old shortcut |
<!-- import-rules:end -->
`);

function check(files: Record<string, string>) {
  const edges = Object.entries(files).flatMap(([f, text]) => importsOf('/x/src', f, text));
  return checkImports(sample, edges, Object.keys(files));
}

test('the checker reports forbidden imports, value imports of type-only targets, packages and unknown folders', () => {
  const { violations, unusedExceptions } = check({
    'core/a.ts': "import { readFileSync } from 'node:fs';\nimport { x } from '../store/types.ts';\nimport { createHash } from 'node:crypto';",
    'protocols/smtp/server.ts': "import type { Store } from '../../store/types.ts';\nimport { StoreError } from '../../store/types.ts';\nimport { q } from '../../store/open.ts';",
    'protocols/smtp/dyn.ts': "export type T = typeof import('../../store/kysely.ts');\nconst m = await import('kysely');",
    'main.ts': "import { run } from './cli/index.ts';\nimport { s } from './store/open.ts';",
    'web/page.ts': "export const x = 1;",
  });
  const got = violations.map((v) => `${v.file}:${v.line} ${v.message.split(':')[0]}`);
  assert.deepEqual(got, [
    'web/page.ts:1 no row of the import table in docs/architecture.md covers src/web/page.ts; add one',
    'core/a.ts:1 imports node',
    'core/a.ts:2 imports values from store/types.ts',
    'protocols/smtp/server.ts:2 imports values from store/types.ts',
    'protocols/smtp/server.ts:3 imports values from store/open.ts',
    'protocols/smtp/dyn.ts:1 imports types from store/kysely.ts',
    'protocols/smtp/dyn.ts:2 imports kysely',
    'main.ts:1 imports values from cli/index.ts',
  ]);
  assert.equal(unusedExceptions.length, 1, 'the unused exception is reported');
});

test('an exception allows exactly what it lists', () => {
  const { violations, unusedExceptions } = check({
    'protocols/smtp/legacy.ts': "import { q } from '../../store/open.ts';\nimport { r } from '../../store/kysely.ts';",
  });
  assert.deepEqual(
    violations.map((v) => v.line),
    [2],
  );
  assert.equal(unusedExceptions.length, 0);
});
