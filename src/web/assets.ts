/**
 * Static files of the web app, read once at start-up and served under
 * versioned paths (the version in the path, so they may be cached for good):
 * htmx from the installed `htmx.org` package (no CDN) and our stylesheet.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SCREENER_SCRIPT } from './screener-script.ts';
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

/** A file of ours, under a path named by its content's hash. */
function own(name: string, ext: string, type: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8');
  const digest = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { path: `/static/${name}-${digest}.${ext}`, type, body };
}

/** The Screener's keyboard script (its page links it by this path). */
export const screenerScript: Asset = own('screener', 'js', 'text/javascript; charset=utf-8', SCREENER_SCRIPT);

export function loadAssets(): { htmx: Asset; css: Asset; screenerJs: Asset } {
  return { htmx: htmx(), css: own('style', 'css', 'text/css; charset=utf-8', STYLESHEET), screenerJs: screenerScript };
}
