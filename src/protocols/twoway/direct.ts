/**
 * The direct path of the three signed endpoints: a well-formed POST (its
 * exact path, its exact media type, a Host header, nothing fastify would
 * have to normalise or refuse on its own) is served on node's request
 * event without going through fastify's router, hooks, content-type parser
 * and reply. Every other request (other methods, unknown or unusual paths,
 * a query, a media type with parameters or in another case, a closing
 * server) takes fastify's way, whose answers are the reference: the direct
 * path answers exactly as fastify does (server.test.ts compares the two).
 *
 * Why: a stranger's notice must cost the recipient at least 5x less CPU
 * than the same message over SMTP (bench/twm-stranger-cost.ts), and
 * fastify's request lifecycle was about a tenth of a notice's CPU for a
 * handful of routes that need none of it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TWM_MEDIA_TYPES } from '../../core/twm-types.ts';
import type { TwmEndpoint } from './types.ts';

export const TWM_BASE = '/.well-known/twm/v1';
const NOTICE_URL = `${TWM_BASE}/notice`;
const RECEIPT_URL = `${TWM_BASE}/receipt`;
const FETCH_PREFIX = `${TWM_BASE}/fetch/`;
/**
 * A fetch id fastify's router would hand over unchanged: no escapes to decode, within its
 * parameter limit (find-my-way's maxParamLength, 100). Any other id goes through fastify.
 */
const PLAIN_ID = /^[A-Za-z0-9_-]{1,100}$/;

export interface DirectRoute {
  endpoint: TwmEndpoint;
  /** The fetch id from the path. */
  id: string;
}

/** The route of a request the direct path may serve, or undefined for fastify. */
export function directRoute(req: IncomingMessage): DirectRoute | undefined {
  if (req.method !== 'POST' || req.headers.host === undefined) return undefined;
  const url = req.url;
  const type = req.headers['content-type'];
  if (url === NOTICE_URL) return type === TWM_MEDIA_TYPES.notice ? { endpoint: 'notice', id: '' } : undefined;
  if (url === RECEIPT_URL) return type === TWM_MEDIA_TYPES.receipt ? { endpoint: 'receipt', id: '' } : undefined;
  if (url?.startsWith(FETCH_PREFIX) && type === TWM_MEDIA_TYPES.fetch) {
    const id = url.slice(FETCH_PREFIX.length);
    if (PLAIN_ID.test(id)) return { endpoint: 'fetch', id };
  }
  return undefined;
}

/** An answer of the signed endpoints, written the same by fastify and by the direct path. */
export interface TwmAnswer {
  status: number;
  /** Header names lower-case, as fastify writes them. */
  headers: Record<string, string>;
  body?: string | Buffer;
}

/**
 * Writes an answer as fastify's reply would after the onSend hook
 * (server.ts installGuards): the same headers, Content-Length for a body,
 * none of Content-Type and Content-Length on 204.
 *
 * The headers go to node as one flat list of names and values, in the order a copy of
 * `answer.headers` with those fields set would have: a copy, its keyed stores and node's walk
 * of an object were a visible share of a stranger's notice (bench/stranger-cpu.ts).
 */
export function writeAnswer(res: ServerResponse, answer: TwmAnswer): void {
  const noBody = answer.status === 204;
  const length = noBody ? '' : String(answer.body === undefined ? 0 : Buffer.byteLength(answer.body));
  const list: string[] = [];
  let lengthSet = false;
  let cacheControl = false;
  let nosniff = false;
  for (const name of Object.keys(answer.headers)) {
    if (name === 'content-length') {
      if (noBody) continue;
      list.push(name, length);
      lengthSet = true;
    } else if (name === 'content-type' && noBody) {
      // No Content-Type on 204.
    } else if (name === 'x-content-type-options') {
      list.push(name, 'nosniff');
      nosniff = true;
    } else {
      // An answer's own cache-control stands.
      if (name === 'cache-control') cacheControl = true;
      list.push(name, answer.headers[name]!);
    }
  }
  if (!noBody && !lengthSet) list.push('content-length', length);
  if (!cacheControl) list.push('cache-control', 'no-store');
  if (!nosniff) list.push('x-content-type-options', 'nosniff');
  res.writeHead(answer.status, list);
  res.end(noBody ? undefined : answer.body);
}
