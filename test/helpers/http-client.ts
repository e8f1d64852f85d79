/**
 * A small fetch wrapper for the HTTP API tests: real requests over a real
 * socket, answers decoded by their content type.
 */
export type Credentials = { bearer: string } | { basic: [string, string] } | { header: string };

export interface ApiResponse {
  status: number;
  headers: Headers;
  contentType: string;
  /** Parsed JSON for JSON and problem+json answers, otherwise the text. */
  // biome-ignore lint/suspicious/noExplicitAny: tests index answers freely and assert their shapes.
  body: any;
  text: string;
}

export interface RequestOptions {
  auth?: Credentials;
  /** Sent as application/json. */
  json?: unknown;
  /** Sent as is, with `type` as its Content-Type (if given). */
  raw?: string;
  type?: string;
  headers?: Record<string, string>;
}

export function authHeader(auth: Credentials): string {
  if ('bearer' in auth) return `Bearer ${auth.bearer}`;
  if ('basic' in auth) return `Basic ${Buffer.from(`${auth.basic[0]}:${auth.basic[1]}`, 'utf8').toString('base64')}`;
  return auth.header;
}

export function client(base: string) {
  return async function api(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.auth) headers.authorization = authHeader(options.auth);
    let body: string | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    } else if (options.raw !== undefined) {
      body = options.raw;
      if (options.type) headers['content-type'] = options.type;
    }
    const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    const contentType = res.headers.get('content-type') ?? '';
    const isJson = /^application\/(?:problem\+)?json/.test(contentType);
    return { status: res.status, headers: res.headers, contentType, text, body: isJson && text ? JSON.parse(text) : text };
  };
}
