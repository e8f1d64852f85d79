/** Everything the extension sends, and to whom: only the user's own server (docs/extension.md). */

const basic = (user, pass) => `Basic ${btoa(unescape(encodeURIComponent(`${user}:${pass}`)))}`;

/** A network failure or a 5xx/429: worth retrying. Anything else is final. */
export class Retryable extends Error {}

async function call(url, init) {
  let res;
  try {
    // No cookies, no HTTP auth cache: the Authorization header is the only credential.
    res = await fetch(url, { ...init, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    throw new Retryable(`network: ${err?.message ?? err}`);
  }
  if (res.status >= 500 || res.status === 429) throw new Retryable(`server answered ${res.status}`);
  return res;
}

/** The server's base URL: the typed one, else the RFC 6764 redirect of https://<domain>/.well-known/carddav. */
export async function discover(address, typed) {
  if (typed) return new URL(typed).origin;
  const domain = address.slice(address.lastIndexOf('@') + 1);
  const res = await call(`https://${domain}/.well-known/carddav`, { method: 'GET', redirect: 'follow' });
  await res.body?.cancel();
  return new URL(res.url).origin;
}

/** Signs in once with the account password and creates an app password of scope contacts. */
export async function createAppPassword(server, address, password) {
  const res = await call(`${server}/api/me/app-passwords`, {
    method: 'POST',
    headers: { authorization: basic(address, password), 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'browser extension', scope: 'contacts' }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 201 && res.status !== 200) throw new Error(body.detail ?? body.title ?? `server answered ${res.status}`);
  return body.password;
}

export const bookUrl = (c) => `${c.server}/dav/addressbooks/${encodeURIComponent(c.address)}/default/`;

/** PUT a new card (If-None-Match: *): never overwrites one. Returns the ETag. */
export async function putCard(c, href, text) {
  const res = await call(bookUrl(c) + href, {
    method: 'PUT',
    headers: { authorization: basic(c.address, c.appPassword), 'content-type': 'text/vcard; charset=utf-8', 'if-none-match': '*' },
    body: text,
  });
  const body = await res.text();
  if (res.status !== 201 && res.status !== 204) throw new Error(davMessage(body) ?? `server answered ${res.status}`);
  return res.headers.get('etag');
}

/** The card as the server has it now (it rewrites USES), or null when it is gone (used up or expired). */
export async function getCard(c, href) {
  const res = await call(bookUrl(c) + href, { headers: { authorization: basic(c.address, c.appPassword) } });
  if (res.status === 404) return null;
  const body = await res.text();
  if (res.status !== 200) throw new Error(davMessage(body) ?? `server answered ${res.status}`);
  return body;
}

export async function deleteCard(c, href) {
  const res = await call(bookUrl(c) + href, { method: 'DELETE', headers: { authorization: basic(c.address, c.appPassword) } });
  if (res.status !== 204 && res.status !== 404) throw new Error(`server answered ${res.status}`);
}

/** The human text of a DAV:error body (tw:message), if any. */
function davMessage(xml) {
  const m = /<[a-z]*:?message[^>]*>([\s\S]*?)<\//i.exec(xml);
  return m ? m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&') : null;
}
