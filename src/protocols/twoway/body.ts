/**
 * Step 2 of section 5.4 (and 4.3): the request content, read into memory up
 * to the limit and refused with 413 `too-large` beyond it. Installed as
 * fastify's only content-type parser, for every media type, so that size is
 * judged before the media type (step 3), as the procedure orders; the
 * direct path of the signed endpoints (direct.ts) reads through the same
 * function.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { twmError } from '../../core/twm-types.ts';

export function installBodyReader(app: FastifyInstance, limit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => readContent(request.headers, payload, limit, done));
}

/** Reads `payload` whole, or calls back `too-large` as soon as it is known to pass `limit`. */
export function readContent(headers: IncomingHttpHeaders, payload: Readable, limit: number, done: (err: Error | null, body?: Buffer) => void): void {
  const tooLarge = () => twmError('too-large', `the request content is larger than ${limit} octets`);
  const declared = Number(headers['content-length']);
  // A declared length over the limit is refused before reading a single octet.
  if (Number.isFinite(declared) && declared > limit) {
    done(tooLarge(), undefined);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (err: Error | null, body?: Buffer) => {
    if (finished) return;
    finished = true;
    payload.removeListener('data', onData);
    done(err, body);
  };
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    // Nothing past the limit is kept: the chunk that crosses it is dropped and the request refused.
    if (size > limit) return finish(tooLarge());
    chunks.push(chunk);
  };
  payload.on('data', onData);
  // One chunk (the usual notice) is the body itself: no copy.
  payload.once('end', () => finish(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
  payload.once('error', (err) => finish(err));
}
