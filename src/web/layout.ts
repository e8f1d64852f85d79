/** The page shell every HTML page shares: head (CSP-clean: no inline script or style), header, main. */
import { html, type SafeHtml } from './html.ts';

export interface PageAssets {
  htmxPath: string;
  cssPath: string;
}

export type Section = 'screener' | 'mail' | 'compose' | 'sent' | 'contacts' | 'settings' | 'sessions' | 'sign-in' | 'error';

/**
 * htmx settings for a strict CSP: no injected <style> for indicators, no
 * eval (so no hx-on or js: values), no scripts from swapped content.
 */
const HTMX_CONFIG = JSON.stringify({ includeIndicatorStyles: false, allowEval: false, allowScriptTags: false, historyCacheSize: 0 });

export function page(o: {
  title: string;
  section: Section;
  assets: PageAssets;
  body: SafeHtml;
  /** Signed in: the address and the session's CSRF token (for the sign-out form). */
  who?: { address: string; csrf: string } | undefined;
}): SafeHtml {
  const link = (href: string, label: string, s: Section) => html`<li><a href="${href}" ${o.section === s ? html`aria-current="page"` : ''}>${label}</a></li>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="htmx-config" content="${HTMX_CONFIG}">
<title>${o.title} · twoway</title>
<link rel="stylesheet" href="${o.assets.cssPath}">
<script src="${o.assets.htmxPath}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<span class="brand">twoway</span>
${
  o.who
    ? html`<nav aria-label="Main"><ul>${link('/screener', 'Screener', 'screener')}${link('/mail/INBOX', 'Mail', 'mail')}${link('/compose', 'Compose', 'compose')}${link('/sent', 'Sent', 'sent')}${link('/contacts', 'Contacts', 'contacts')}${link('/settings', 'Settings', 'settings')}${link('/sessions', 'Sessions', 'sessions')}</ul></nav>
<form method="post" action="/sign-out"><input type="hidden" name="_csrf" value="${o.who.csrf}"><span class="muted">${o.who.address}</span> <button type="submit">Sign out</button></form>`
    : ''
}
</header>
<main id="main">
${o.body}
</main>
</body>
</html>
`;
}
