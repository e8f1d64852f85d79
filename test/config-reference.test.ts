/**
 * The README's configuration reference is generated from the zod schema
 * (scripts/config-reference.ts); this fails when someone edits one without
 * the other. Fix: add a `.describe()` text in src/config/schema.ts and run
 * `npm run docs:config`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import { configKeys, configReferenceTable, README_PATH, withConfigReference } from '../scripts/config-reference.ts';

test('the README configuration reference matches src/config/schema.ts (run `npm run docs:config`)', () => {
  const readme = readFileSync(README_PATH, 'utf8');
  const expected = withConfigReference(readme);
  if (readme !== expected) {
    const have = readme.split('\n');
    const want = expected.split('\n');
    const line = want.findIndex((l, i) => l !== have[i]);
    assert.fail(`README.md differs from the schema at line ${line + 1}:\n  README: ${have[line]}\n  schema: ${want[line]}\nRun \`npm run docs:config\`.`);
  }
});

test('every configuration key is described, and each appears once in the reference', () => {
  const keys = configKeys();
  assert.ok(keys.length > 40, `only ${keys.length} keys found: the walk of the schema is broken`);
  for (const k of keys) assert.ok(k.meaning.length > 5, `${k.key}: description too short`);
  const table = configReferenceTable(keys);
  for (const k of ['hostname', 'delivery.give_up_after', 'twm.client_burst', 'log.level']) {
    assert.equal(table.split('\n').filter((l) => l.startsWith(`| \`${k}\` |`)).length, 1, k);
  }
});

test('defaults are written as TOML, computed defaults come from the description', () => {
  const byKey = new Map(configKeys().map((k) => [k.key, k]));
  assert.equal(byKey.get('hostname')?.default, '(required)');
  assert.equal(byKey.get('delivery.give_up_after')?.default, '`"5d"`');
  assert.equal(byKey.get('limits.message_size')?.default, '`26214400`');
  assert.equal(byKey.get('dns.servers')?.default, '`[]`');
  assert.equal(byKey.get('http.tls')?.default, '`true`');
  assert.equal(byKey.get('dkim.key')?.default, '`<data_dir>/dkim.key`');
  assert.ok(!byKey.get('dkim.key')?.meaning.includes('Default:'));
});

test('a key without a description is refused, naming the key', () => {
  const schema = z.object({ a: z.object({ b: z.number().default(1) }).prefault({}) });
  assert.throws(() => configKeys(schema), /config key a\.b has no \.describe\(\) text/);
});

test('the README lacking the markers is an error, not a silent no-op', () => {
  assert.throws(() => withConfigReference('# readme\n'), /lacks the markers/);
});
