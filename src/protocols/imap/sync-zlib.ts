/**
 * Raw deflate and inflate (COMPRESS=DEFLATE, RFC 4978) run on the calling
 * thread, on one zlib stream kept for the connection.
 *
 * Why not node:zlib's streams: each of their writes is a trip to libuv's
 * thread pool and back (a futex wake-up each way, two context switches).
 * mbsync sends its ten thousand `UID FETCH` commands in about six thousand
 * TLS records, each inflated on its own, and the responses of each went out
 * as one deflate write: traced (perf on the server during mbsync's initial
 * sync), the thread wake-ups were the largest kernel cost and most of the
 * server's CPU outside V8, for a few KB of zlib work each. Dovecot compresses
 * inline in its one thread. node:zlib has no public API for a synchronous
 * write on a persistent stream (deflateRawSync starts a new stream, and the
 * `_processChunk` it uses closes the stream after one chunk), so this calls
 * the stream's native handle as that function does: `writeSync`, with the
 * counts left in `_writeState`. Those are internals: sync-zlib.test.ts
 * checks them against zlib's own streams, so a Node upgrade that changes
 * them fails there, not on a client's connection.
 */
import zlib from 'node:zlib';

/** The native handle of a zlib stream (node's lib/zlib.js, processChunkSync). */
interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
}

interface ZlibInternals {
  _handle: ZlibHandle | null;
  /** [avail_out, avail_in] after the last write. */
  _writeState: Uint32Array;
}

/** Output is cut from buffers of this size (zlib's default chunk). */
const CHUNK = 16 * 1024;

export const { Z_NO_FLUSH, Z_SYNC_FLUSH } = zlib.constants;

export class SyncZlib {
  readonly #z: zlib.DeflateRaw | zlib.InflateRaw;
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  #out = Buffer.allocUnsafe(CHUNK);
  #offset = 0;

  private constructor(z: zlib.DeflateRaw | zlib.InflateRaw) {
    this.#z = z;
    const internals = z as unknown as ZlibInternals;
    if (typeof internals._handle?.writeSync !== 'function' || !(internals._writeState instanceof Uint32Array)) {
      throw new Error('node:zlib internals changed: no synchronous write on a stream');
    }
    this.#handle = internals._handle;
    this.#state = internals._writeState;
    // A corrupt stream destroys it with an error, emitted later: handled here (process() throws instead).
    z.on('error', () => undefined);
  }

  static deflateRaw(): SyncZlib {
    return new SyncZlib(zlib.createDeflateRaw());
  }

  static inflateRaw(): SyncZlib {
    return new SyncZlib(zlib.createInflateRaw());
  }

  /**
   * Runs `input` through the stream and hands the output to `sink` a piece at a time, as it is
   * made (at most CHUNK octets each: an inflated client stream is not held whole in memory;
   * deflate's ratio reaches 1,000 to 1): with Z_SYNC_FLUSH all of it (a deflater's output then
   * ends on a byte boundary, decodable by the peer), with Z_NO_FLUSH what zlib has ready. The
   * pieces are never written to again. `sink` returning false stops the work (the connection is
   * gone). Throws on bad input.
   */
  process(input: Buffer, flush: number, sink: (piece: Buffer) => boolean | undefined): void {
    // A closed or failed stream's native handle is gone: never written to again.
    if (this.#z.destroyed) throw new Error('zlib: the stream is closed');
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      const outLen = this.#out.length - this.#offset;
      this.#handle.writeSync(flush, input, inOff, inLen, this.#out, this.#offset, outLen);
      // An error (a corrupt stream from the client) destroys the stream before writeSync returns.
      if (this.#z.destroyed) throw new Error('zlib: invalid compressed data');
      const availOut = this.#state[0]!;
      const availIn = this.#state[1]!;
      const have = outLen - availOut;
      let more = true;
      if (have > 0) {
        more = sink(this.#out.subarray(this.#offset, this.#offset + have)) !== false;
        this.#offset += have;
      }
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut === 0 || this.#offset >= this.#out.length) {
        this.#out = Buffer.allocUnsafe(CHUNK);
        this.#offset = 0;
      }
      // Output space left over: zlib took all it could of the input and flushed what was asked.
      if (availOut !== 0 || !more) return;
    }
  }

  close(): void {
    this.#z.close();
  }
}
