/**
 * Queue ids: the `queued as` of a 250 and the id of our Received: field, 16
 * hex digits from the CSPRNG, as before.
 *
 * Why a pool: `crypto.randomBytes(8)` is a native job per call (a new
 * ArrayBuffer, OpenSSL's fork check with a getpid), about 15 µs of the event
 * loop per accepted message on the benchmark machine (bench/results.md, "CPU
 * per accepted message"). Filling one block and handing out slices costs the
 * same entropy and nearly nothing per id; Node pools randomUUID's the same way.
 */
import { randomFillSync } from 'node:crypto';

const ID_BYTES = 8;
const pool = Buffer.alloc(ID_BYTES * 512);
let at = pool.length;

export function newQueueId(): string {
  if (at + ID_BYTES > pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  const id = pool.toString('hex', at, at + ID_BYTES);
  at += ID_BYTES;
  return id;
}
