/**
 * Random bytes for ids on the accept path (SMTP session ids, queue ids),
 * drawn from one block of the CSPRNG refilled when used up.
 *
 * Why: `crypto.randomBytes(n)` is a native job per call (a new ArrayBuffer,
 * OpenSSL's fork check with a getpid); the two ids of an accepted message cost
 * about 25 µs of the event loop that way (bench/results.md, session 7). Slices
 * of a pooled block are the same entropy at nearly no cost per id; Node pools
 * randomUUID's the same way. Not for secrets that must never share memory
 * with anything else (keys, tokens): those keep `randomBytes`.
 */
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let at = pool.length;

/** Calls `read` with the pool and the offset of `n` fresh random bytes (n ≤ 4096), to read them before anyone else draws. */
export function withRandomBytes<T>(n: number, read: (bytes: Buffer, offset: number) => T): T {
  if (at + n > pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  const offset = at;
  at += n;
  return read(pool, offset);
}

/** `n` random bytes as 2n hex digits. */
export function randomHex(n: number): string {
  return withRandomBytes(n, (b, o) => b.toString('hex', o, o + n));
}
