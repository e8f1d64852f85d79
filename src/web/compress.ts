/**
 * Response compression for the web app's text (HTML, CSS, JavaScript):
 * brotli when the browser accepts it, else gzip, on the thread pool (zlib's
 * async calls), so a page never holds the event loop. @fastify/compress is
 * not a dependency; this is the small part of it the web app needs. The
 * static files (the same Buffer on every answer) are compressed once, at
 * brotli's best quality, and kept; pages are compressed per answer at a fast
 * level. Bodies under 1 KiB go as they are.
 *
 * BREACH (secrets in compressed pages that also reflect input): every page
 * carries the CSRF token, and some reflect what the user typed. The session
 * cookie is SameSite=Strict, so another site cannot have the browser fetch
 * a signed-in page with chosen input and watch its size.
 */
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { FastifyInstance, FastifyRequest } from 'fastify';

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);
const TEXT = /^(text\/html|text\/css|text\/javascript)\b/;
const MIN_BYTES = 1024;

type Coding = 'br' | 'gzip';

/** The coding to use: br, else gzip, when the Accept-Encoding header allows it (q=0 refuses). */
export function chooseCoding(header: string | string[] | undefined): Coding | null {
  const accepted = new Set<string>();
  for (const part of String(header ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    if (name && !(q !== undefined && Number(q.slice(2)) === 0)) accepted.add(name);
  }
  return accepted.has('br') ? 'br' : accepted.has('gzip') ? 'gzip' : null;
}

function compress(body: Buffer, coding: Coding, best: boolean): Promise<Buffer> {
  if (coding === 'gzip') return gz(body, { level: best ? 9 : 6 });
  return brotli(body, {
    params: { [constants.BROTLI_PARAM_QUALITY]: best ? 11 : 5, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
  });
}

export function compressText(app: FastifyInstance): void {
  // Keyed by the static file's Buffer (the same object on every answer); pages are strings.
  const kept = new WeakMap<Buffer, Map<Coding, Promise<Buffer>>>();
  app.addHook('onSend', async (request: FastifyRequest, reply, payload) => {
    if (request.method === 'HEAD' || reply.statusCode === 204 || reply.statusCode === 304 || reply.getHeader('content-encoding') !== undefined) return payload;
    if (!TEXT.test(String(reply.getHeader('content-type') ?? ''))) return payload;
    const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.isBuffer(payload) ? payload : null;
    if (body === null || body.length < MIN_BYTES) return payload;
    reply.header('vary', 'accept-encoding');
    const coding = chooseCoding(request.headers['accept-encoding']);
    if (coding === null) return payload;
    let out: Promise<Buffer>;
    if (Buffer.isBuffer(payload)) {
      const codings = kept.get(payload) ?? new Map<Coding, Promise<Buffer>>();
      kept.set(payload, codings);
      out = codings.get(coding) ?? compress(body, coding, true);
      codings.set(coding, out);
    } else {
      out = compress(body, coding, false);
    }
    reply.header('content-encoding', coding);
    reply.removeHeader('content-length');
    return out;
  });
}
