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
  const declared = Number(headers['content-length']);
  // A declared length over the limit is refused before reading a single octet.
  if (Number.isFinite(declared) && declared > limit) {
    done(tooLarge(limit), undefined);
    return;
  }
  new ContentReader(payload, limit, done);
}

const tooLarge = (limit: number) => twmError('too-large', `the request content is larger than ${limit} octets`);

/**
 * One request's content being read. A class, not closures: each request read through this
 * (every signed request) made three functions, and under tsx (the benchmarks) each one also
 * costs a call that names it.
 */
class ContentReader {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private finished = false;
  private readonly onData: (chunk: Buffer) => void;

  constructor(
    private readonly payload: Readable,
    private readonly limit: number,
    private readonly done: (err: Error | null, body?: Buffer) => void,
  ) {
    this.onData = this.data.bind(this);
    payload.on('data', this.onData);
    payload.once('end', this.end.bind(this));
    payload.once('error', this.finish.bind(this));
  }

  private finish(err: Error | null, body?: Buffer): void {
    if (this.finished) return;
    this.finished = true;
    this.payload.removeListener('data', this.onData);
    this.done(err, body);
  }

  private data(chunk: Buffer): void {
    this.size += chunk.length;
    // Nothing past the limit is kept: the chunk that crosses it is dropped and the request refused.
    if (this.size > this.limit) this.finish(tooLarge(this.limit));
    else this.chunks.push(chunk);
  }

  private end(): void {
    // One chunk (the usual notice) is the body itself: no copy.
    this.finish(null, this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size));
  }
}
