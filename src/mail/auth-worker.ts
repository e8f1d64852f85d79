/**
 * The body of an authentication worker thread (auth-pool.ts): runs mailauth
 * on one message at a time and hands back the summary and the bytes.
 *
 * Every DNS lookup goes back to the main thread, which answers from the
 * server's one resolver and its cache; this thread holds no resolver of its
 * own, so the cache, the configured servers and the tests' embedded DNS
 * server are the same for both threads.
 */
import { parentPort } from 'node:worker_threads';
import type { ResolveFunction } from '../dns/types.ts';
import type { FromWorker, ToWorker, WireError } from './auth-worker-protocol.ts';
import { runMailauth } from './mailauth-run.ts';

const port = parentPort;
if (!port) throw new Error('auth-worker.ts runs only as a worker thread (auth-pool.ts)');

const lookups = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
let nextLookup = 0;

const resolve: ResolveFunction = (name, rrtype) =>
  new Promise((ok, fail) => {
    const id = ++nextLookup;
    lookups.set(id, { resolve: ok, reject: fail });
    send({ type: 'dns', id, name, rrtype });
  });

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** The error as mailauth expects it: its `code` tells a void lookup (ENOTFOUND, ENODATA) from a temperror. */
function dnsError(e: WireError): Error {
  const err = new Error(e.message) as Error & Partial<Record<'code' | 'syscall' | 'hostname', string>>;
  if (e.code !== undefined) err.code = e.code;
  if (e.syscall !== undefined) err.syscall = e.syscall;
  if (e.hostname !== undefined) err.hostname = e.hostname;
  return err;
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'dns-answer') {
    const lookup = lookups.get(message.id);
    lookups.delete(message.id);
    if (!lookup) return;
    if (message.ok) lookup.resolve(message.value);
    else lookup.reject(dnsError(message.error));
    return;
  }
  const { id, raw, params } = message;
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  runMailauth(bytes, params, resolve).then(
    (summary) => send({ type: 'done', id, ok: true, summary, raw }, [raw.buffer as ArrayBuffer]),
    (err: unknown) => send({ type: 'done', id, ok: false, error: err instanceof Error ? err.message : String(err), raw }, [raw.buffer as ArrayBuffer]),
  );
});

// A first run on a tiny message, its lookups failing at once: mailauth loads parts of itself on
// first use, and a fresh worker (a replacement too) must not spend a real message's budget on that.
const warmUp: ResolveFunction = async () => {
  throw Object.assign(new Error('warm-up'), { code: 'ENOTFOUND' });
};
await runMailauth(Buffer.from('From: a@warm-up.invalid\r\n\r\nx\r\n'), { ip: '192.0.2.1', helo: 'warm-up.invalid', envelopeFrom: 'a@warm-up.invalid', mta: 'warm-up.invalid' }, warmUp).catch(() => undefined);

// Ready: from now on the thread's busy time is the message's, and the pool counts it.
send({ type: 'ready' });
