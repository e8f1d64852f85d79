#!/usr/bin/env node
/**
 * Builds the browser extension (extension/) into dist/extension/ and the
 * store packages dist/twoway-extension-chromium.zip and
 * dist/twoway-extension-firefox.zip (one manifest for both). Bundles with
 * esbuild (tldts, the Public Suffix List, goes into the bundle), zips with
 * yazl. Usage: npm run build:extension [-- --out DIR]
 */
import { build } from 'esbuild';
import { copyFileSync, createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import yazl from 'yazl';

const root = resolve(import.meta.dirname, '..');
const outArg = process.argv.indexOf('--out');
const dist = outArg > 0 ? resolve(process.argv[outArg + 1]) : join(root, 'dist');
const src = join(root, 'extension');
const out = join(dist, 'extension');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['background', 'content', 'popup', 'options'].map((n) => join(src, 'src', `${n}.js`)),
  outdir: out,
  bundle: true,
  format: 'iife', // classic scripts: a content script and a Firefox background script cannot be modules
  target: ['chrome120', 'firefox128'],
  minify: false, // store reviewers read the code
  legalComments: 'inline',
  logLevel: 'warning',
});
copyFileSync(join(src, 'manifest.json'), join(out, 'manifest.json'));
for (const f of ['popup.html', 'options.html', 'ui.css']) copyFileSync(join(src, 'src', f), join(out, f));

const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
for (const target of ['chromium', 'firefox']) {
  const zip = new yazl.ZipFile();
  for (const f of readdirSync(out).sort()) if (statSync(join(out, f)).isFile()) zip.addFile(join(out, f), f, { mtime: new Date('2026-01-01T00:00:00Z') });
  const file = join(dist, `twoway-extension-${target}.zip`);
  const done = once(zip.outputStream.pipe(createWriteStream(file)), 'close');
  zip.end();
  await done;
  console.log(`${file} (${manifest.name} ${manifest.version})`);
}
