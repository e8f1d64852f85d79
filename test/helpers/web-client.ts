/**
 * A browser without a browser, for the web app's HTTP-level tests: a cookie
 * jar, the CSRF token of the last page seen, redirects not followed.
 */
import assert from 'node:assert/strict';
import type { TestServer } from './server.ts';
import { davFetch } from './carddav.ts';

export interface WebResponse {
  status: number;
  location: string | null;
  text: string;
}

export function webClient(t: TestServer, password: string) {
  const { fetch: f, close } = davFetch(t);
  const base = t.server.http.url;
  const jar = new Map<string, string>();
  let csrf = '';
  async function request(method: string, path: string, body?: { form?: Record<string, string | string[]>; multipart?: FormData; raw?: Buffer; type?: string }): Promise<WebResponse> {
    const headers: Record<string, string> = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    let payload: BodyInit | undefined;
    if (body?.form) {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(body.form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
      payload = p.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (body?.multipart) payload = body.multipart;
    else if (body?.raw) {
      payload = new Uint8Array(body.raw);
      headers['content-type'] = body.type ?? 'application/octet-stream';
    }
    const res = await f(`${base}${path}`, { method, headers, body: payload, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    const text = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text);
    if (token) csrf = token[1]!;
    return { status: res.status, location: res.headers.get('location'), text };
  }
  return {
    get: (path: string) => request('GET', path),
    /** A form post with this session's CSRF token (unless the fields set `_csrf` themselves). */
    post: (path: string, fields: Record<string, string | string[]> = {}) => request('POST', path, { form: { _csrf: csrf, ...fields } }),
    postRaw: (path: string, body: { form?: Record<string, string>; multipart?: FormData; raw?: Buffer; type?: string }) => request('POST', path, body),
    get csrf() {
      return csrf;
    },
    get cookie() {
      return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    },
    async signIn(address: string) {
      await request('GET', '/sign-in');
      const r = await request('POST', '/sign-in', { form: { _csrf: csrf, address, password } });
      assert.equal(r.status, 303, r.text);
      await request('GET', '/contacts');
    },
    close,
  };
}
