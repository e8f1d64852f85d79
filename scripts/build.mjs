#!/usr/bin/env node
/**
 * The production build (`npm run build`, and the package's prepare script, so
 * `npm install` / `npm ci` leave a runnable bin): src/ bundled by esbuild into
 * dist/, which bin/twoway.js runs with plain node.
 *
 * Why a bundle rather than tsc's one file per module: a CLI command's
 * start-up is dominated by resolving and compiling modules (kysely alone is
 * 263 ESM files, zod 95, our own code about 100). One bundle with code
 * splitting loads a handful of files, and the server's heavy parts stay in
 * chunks that only `twoway start` imports. Type-checking is tsc's job
 * (`npm run typecheck`, run first in CI); esbuild only strips types.
 *
 * Only pure-JavaScript packages that every command loads are inlined (a
 * CommonJS one imported from ESM also costs a parse by Node's export lexer:
 * 150 ms for tldts alone). The rest stay external and load from
 * node_modules as before: native addons
 * (better-sqlite3), packages that read files beside themselves or start
 * workers (pino, mailauth, selfsigned, htmx.org), and smtp-server, whose
 * internals src/protocols/smtp/smtp-server-internals.ts resolves by path.
 *
 * Usage: node scripts/build.mjs [--outdir DIR]
 */
import { rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 ? process.argv[at + 1] : join(repo, 'dist');
const INLINE = new Set(['kysely', 'zod', 'smol-toml', 'commander', 'tldts', 'tldts-core', 'ical.js']);

const packageOf = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2) : spec.split('/').slice(0, 1)).join('/');

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: repo,
  entryPoints: {
    'cli/index': 'src/cli/index.ts',
    // Started by src/mail/auth-pool.ts as a worker thread, from the chunk beside it.
    'chunks/auth-worker': 'src/mail/auth-worker.ts',
    // Started by src/store/message-writer.ts, likewise.
    'chunks/message-writer-worker': 'src/store/message-writer-worker.ts',
  },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // V8 scans every byte it loads: 10 % off a CLI command's start-up. Names
  // stay (minifyIdentifiers off) so that stack traces read as the sources.
  minifyWhitespace: true,
  minifySyntax: true,
  metafile: true,
  logLevel: 'warning',
  // Inlined CommonJS packages call require(); an ESM bundle has none of its own.
  banner: { js: "import { createRequire as __twowayRequire } from 'node:module'; const require = __twowayRequire(import.meta.url);" },
  plugins: [
    {
      name: 'externals',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, (args) => {
          const name = packageOf(args.path);
          if (args.path.startsWith('node:') || builtinModules.includes(name)) return { external: true };
          return INLINE.has(name) ? undefined : { external: true };
        });
      },
    },
  ],
});

// Each worker's starter starts `./<worker>.js` beside its own file: it
// must have landed in chunks/.
for (const [starter, worker] of [
  ['src/mail/auth-pool.ts', 'auth-worker'],
  ['src/store/message-writer.ts', 'message-writer-worker'],
]) {
  const out = Object.entries(result.metafile.outputs).find(([, o]) => Object.keys(o.inputs).includes(starter));
  if (!out || dirname(relative(outdir, join(repo, out[0]))) !== 'chunks') {
    console.error(`build: ${starter} is in ${out?.[0] ?? 'no output'}, not beside chunks/${worker}.js`);
    process.exit(1);
  }
}
