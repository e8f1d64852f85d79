/**
 * Step 2 of section 5.4 (and 4.3): the request content, read into memory up
 * to the limit and refused with 413 `too-large` beyond it. Installed as
 * fastify's only content-type parser, for every media type, so that size is
 * judged before the media type (step 3), as the procedure orders.
 */
import type { FastifyInstance } from 'fastify';
import { twmError } from '../../core/twm-types.ts';

export function installBodyReader(app: FastifyInstance, limit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    const tooLarge = () => twmError('too-large', `the request content is larger than ${limit} octets`);
    const declared = Number(request.headers['content-length']);
    // A declared length over the limit is refused before reading a single octet.
    if (Number.isFinite(declared) && declared > limit) return done(tooLarge(), undefined);
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
    payload.once('end', () => finish(null, Buffer.concat(chunks, size)));
    payload.once('error', (err) => finish(err));
  });
}
