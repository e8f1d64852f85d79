/**
 * The README's configuration reference, generated from the zod schema
 * (src/config/schema.ts), so that a key, its default and its meaning live in
 * one place. `npm run docs:config` rewrites the README between the markers;
 * test/config-reference.test.ts fails when the README and the schema differ.
 *
 * Conventions read from the schema:
 * - every key carries a `.describe('...')` text (a key without one is an
 *   error here, so the test catches it);
 * - the default column is the zod default (`.default()` / `.prefault()`),
 *   written as TOML; a key without one shows `(required)` or, when optional,
 *   the text after "Default: " at the end of its description (a default
 *   computed at load time, e.g. from `data_dir`), else `(unset)`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { configSchema } from '../src/config/schema.ts';

export const README_PATH = fileURLToPath(new URL('../README.md', import.meta.url));
export const START_MARKER = '<!-- config-reference:start: generated from src/config/schema.ts by `npm run docs:config`; edit the .describe() texts there -->';
export const END_MARKER = '<!-- config-reference:end -->';

export interface ConfigKey {
  key: string;
  default: string;
  meaning: string;
}

// zod's internals are typed per schema class; the walk needs only `def`.
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  defaultValue?: unknown;
}
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Every leaf key of the schema, in declaration order, with its default and description. */
export function configKeys(schema: z.ZodType = configSchema, prefix = ''): ConfigKey[] {
  const object = unwrapToObject(schema);
  if (!object) throw new Error(`${prefix || 'the schema'} is not an object`);
  const out: ConfigKey[] = [];
  for (const [name, child] of Object.entries(object)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (unwrapToObject(child)) {
      out.push(...configKeys(child, key));
      continue;
    }
    out.push(describeKey(key, child));
  }
  return out;
}

/** The shape of an object schema, through its default/prefault/optional wrappers; null for a leaf. */
function unwrapToObject(schema: z.ZodType): Record<string, z.ZodType> | null {
  let s: z.ZodType | undefined = schema;
  while (s) {
    const def = defOf(s);
    if (def.type === 'object') return def.shape ?? null;
    if (def.type === 'default' || def.type === 'prefault' || def.type === 'optional') s = def.innerType;
    else return null;
  }
  return null;
}

function describeKey(key: string, schema: z.ZodType): ConfigKey {
  const description = schema.description ?? innerDescription(schema);
  if (!description) throw new Error(`config key ${key} has no .describe() text in src/config/schema.ts`);
  if (/[\r\n|]/.test(description)) throw new Error(`config key ${key}: a description must be one line without "|"`);
  const def = defOf(schema);
  if (def.type === 'default' || def.type === 'prefault') {
    return { key, default: `\`${toml(def.defaultValue)}\``, meaning: description };
  }
  const stated = /^(.*?)\.?\s*Default: (.+)$/.exec(description);
  if (def.type === 'optional') {
    return stated ? { key, default: stated[2]!, meaning: stated[1]! } : { key, default: '(unset)', meaning: description };
  }
  if (stated) throw new Error(`config key ${key} is required but its description states a default`);
  return { key, default: '(required)', meaning: description };
}

/** A description set on an inner schema (e.g. before `.optional()`), when the outer one has none. */
function innerDescription(schema: z.ZodType): string | undefined {
  let s = defOf(schema).innerType;
  while (s) {
    if (s.description) return s.description;
    s = defOf(s).innerType;
  }
  return undefined;
}

/** A default as one would write it in the TOML file. */
function toml(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(toml).join(', ')}]`;
  // TOML has no null: a null default means the key is not set.
  if (value === null) return '(not set)';
  throw new Error(`cannot write ${JSON.stringify(value)} as a TOML default`);
}

/** The generated Markdown table. */
export function configReferenceTable(keys: ConfigKey[] = configKeys()): string {
  const rows = keys.map((k) => `| \`${k.key}\` | ${k.default} | ${k.meaning} |`);
  return ['| key | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** `readme` with the text between the markers replaced by the generated table. */
export function withConfigReference(readme: string, table: string = configReferenceTable()): string {
  const start = readme.indexOf(START_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (start < 0 || end < start) throw new Error(`README.md lacks the markers ${START_MARKER} … ${END_MARKER}`);
  return `${readme.slice(0, start + START_MARKER.length)}\n${table}\n${readme.slice(end)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const before = readFileSync(README_PATH, 'utf8');
  const after = withConfigReference(before);
  if (after === before) console.log('README.md: configuration reference up to date');
  else {
    writeFileSync(README_PATH, after);
    console.log(`README.md: configuration reference rewritten (${configKeys().length} keys)`);
  }
}
