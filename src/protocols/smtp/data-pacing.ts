/**
 * DATA in slices of the event loop: without a pause, a fast client's data
 * arrives in bursts of megabytes that smtp-server unstuffs and we scan in one
 * task, and other listeners wait (50-70 ms of CPU per burst under a flood of
 * 20 MB messages). After `every` bytes the data stream pauses until the next
 * turn (setImmediate), with backpressure to the socket.
 *
 * Not after every chunk: a message of a few KB arrives as one chunk, and a
 * pause there held its end of data (the authentication, the commit, the 250)
 * for one more turn of a busy loop, in every session (bench/lib/accept-trace.ts).
 */

/** About one socket read (libuv reads up to 64 KiB at a time). */
export const DATA_BYTES_PER_TURN = 64 * 1024;

/** Returns the function to call with each chunk's length as the chunk is read from `stream`. */
export function dataPacer(stream: { pause(): void; resume(): void }, every = DATA_BYTES_PER_TURN): (bytes: number) => void {
  let sincePause = 0;
  return (bytes) => {
    sincePause += bytes;
    if (sincePause < every) return;
    sincePause = 0;
    stream.pause();
    setImmediate(() => stream.resume());
  };
}
