/**
 * Static files of the web app, read once at start-up and served under
 * versioned paths (the version in the path, so they may be cached for good):
 * htmx from the installed `htmx.org` package (no CDN) and our stylesheet.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { STYLESHEET } from './style.ts';

export interface Asset {
  path: string;
  type: string;
  body: Buffer;
}

const require = createRequire(import.meta.url);

function htmx(): Asset {
  const version = (require('htmx.org/package.json') as { version: string }).version;
  return { path: `/static/htmx-${version}.min.js`, type: 'text/javascript; charset=utf-8', body: readFileSync(require.resolve('htmx.org/dist/htmx.min.js')) };
}

function stylesheet(): Asset {
  const body = Buffer.from(STYLESHEET, 'utf8');
  const digest = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { path: `/static/style-${digest}.css`, type: 'text/css; charset=utf-8', body };
}

export function loadAssets(): { htmx: Asset; css: Asset } {
  return { htmx: htmx(), css: stylesheet() };
}
