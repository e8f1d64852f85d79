/**
 * The body of an authentication worker thread (auth-pool.ts): runs mailauth
 * on one message at a time and hands back the summary and the bytes.
 *
 * Every DNS lookup goes back to the main thread, which answers from the
 * server's one resolver and its cache; this thread holds no resolver of its
 * own, so the cache, the configured servers and the tests' embedded DNS
 * server are the same for both threads. It keeps the main thread's answers
 * for a moment (`dnsReuseMs`, at most the resolver's own cache lifetime):
 * a message's SPF and DMARC lookups were two round trips to the main thread,
 * each waiting for a turn of its busy event loop while this worker, which
 * takes one message at a time, sat idle; under load that wait, not CPU, bounded
 * the accept rate (bench/results.md). Only answers the main resolver caches
 * too are kept: records and "no such name/data"; a timeout is asked again.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ResolveFunction } from '../dns/types.ts';
import type { FromWorker, ToWorker, WireError, WireStored } from './auth-worker-protocol.ts';
import { runMailauth, type MailauthSummary } from './mailauth-run.ts';
import { prepareBody } from '../core/prepared-body.ts';
import { MAX_MIME_NESTING, mimeNestingDepth } from './mime-depth.ts';
import { lowerThreadPriority } from '../platform/thread-priority.ts';

/** Largest message whose MIME nesting depth this thread measures (ingest measures the rest, in slices). */
const MAX_DEPTH_SCAN = 1024 * 1024;

const port = parentPort;
if (!port) throw new Error('auth-worker.ts runs only as a worker thread (auth-pool.ts)');
// Below the event loop: waking this thread must not take the CPU from it (platform/thread-priority.ts).
lowerThreadPriority();

const lookups = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
let nextLookup = 0;

const reuseMs = typeof (workerData as { dnsReuseMs?: unknown } | null)?.dnsReuseMs === 'number' ? (workerData as { dnsReuseMs: number }).dnsReuseMs : 0;
/** Answers from the main thread, by `TYPE name`, until `until` (performance.now()); oldest first. */
const recent = new Map<string, { until: number; ok: true; value: unknown } | { until: number; ok: false; error: WireError }>();
const MAX_RECENT = 1000;
const CACHED_ERRORS = new Set(['ENOTFOUND', 'ENODATA']);

const resolve: ResolveFunction = (name, rrtype) => {
  const key = `${rrtype.toUpperCase()} ${name.toLowerCase().replace(/\.$/, '')}`;
  const hit = reuseMs > 0 ? recent.get(key) : undefined;
  if (hit && hit.until > performance.now()) {
    // A copy: mailauth may sort or change what it gets, and the next message must see the answer as it came.
    return hit.ok ? Promise.resolve(structuredClone(hit.value)) : Promise.reject(dnsError(hit.error));
  }
  return new Promise((ok, fail) => {
    const id = ++nextLookup;
    lookups.set(id, {
      resolve: (value) => {
        remember(key, { until: performance.now() + reuseMs, ok: true, value: structuredClone(value) });
        ok(value);
      },
      reject: fail,
    });
    pendingKeys.set(id, key);
    send({ type: 'dns', id, name, rrtype });
  });
};
/** The cache key of each lookup in flight, for remembering a negative answer. */
const pendingKeys = new Map<number, string>();

function remember(key: string, entry: { until: number; ok: true; value: unknown } | { until: number; ok: false; error: WireError }): void {
  if (reuseMs <= 0) return;
  recent.delete(key);
  if (recent.size >= MAX_RECENT) recent.delete(recent.keys().next().value!);
  recent.set(key, entry);
}

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
    const key = pendingKeys.get(message.id);
    lookups.delete(message.id);
    pendingKeys.delete(message.id);
    if (!lookup) return;
    if (message.ok) lookup.resolve(message.value);
    else {
      if (key !== undefined && message.error.code !== undefined && CACHED_ERRORS.has(message.error.code)) {
        remember(key, { until: performance.now() + reuseMs, ok: false, error: message.error });
      }
      lookup.reject(dnsError(message.error));
    }
    return;
  }
  const { id, raw, params, prefix } = message;
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  runMailauth(bytes, params, resolve).then(
    (summary) => {
      const stored = prefix === undefined ? undefined : storedForm(prefix, summary, bytes);
      const transfer = [raw.buffer as ArrayBuffer, ...(stored ? [stored.raw.buffer as ArrayBuffer] : [])];
      // The depth only of a message of moderate size: a pathological large one is seconds of scanning, and that must not count against the budget.
      const mimeDepth = stored && bytes.length <= MAX_DEPTH_SCAN ? mimeNestingDepth(bytes, MAX_MIME_NESTING) : undefined;
      send({ type: 'done', id, ok: true, summary, raw, ...(stored ? { stored } : {}), ...(mimeDepth === undefined ? {} : { mimeDepth }) }, transfer);
    },
    (err: unknown) => send({ type: 'done', id, ok: false, error: err instanceof Error ? err.message : String(err), raw }, [raw.buffer as ArrayBuffer]),
  );
});

/**
 * The bytes ingest will store when nothing else is prepended (the caller's prefix, then the
 * authentication headers), with their SHA-256 and structure columns: work the main thread
 * would otherwise do for every accepted message, done here off its event loop.
 */
function storedForm(prefix: string, summary: MailauthSummary, bytes: Buffer): WireStored {
  const prepend = prefix + summary.headers;
  const head = Buffer.byteLength(prepend, 'utf8');
  // Memory of its own (never the shared pool of small Buffers), as it is transferred.
  const stored = Buffer.allocUnsafeSlow(head + bytes.length);
  stored.write(prepend, 0, 'utf8');
  bytes.copy(stored, head);
  const body = prepareBody(stored);
  return { prepend, raw: stored, sha256: body.sha256, columns: body.columns };
}

// A first run on a tiny message, its lookups failing at once: mailauth loads parts of itself on
// first use, and a fresh worker (a replacement too) must not spend a real message's budget on that.
const warmUp: ResolveFunction = async () => {
  throw Object.assign(new Error('warm-up'), { code: 'ENOTFOUND' });
};
await runMailauth(Buffer.from('From: a@warm-up.invalid\r\n\r\nx\r\n'), { ip: '192.0.2.1', helo: 'warm-up.invalid', envelopeFrom: 'a@warm-up.invalid', mta: 'warm-up.invalid' }, warmUp).catch(() => undefined);
prepareBody(Buffer.from('From: a@warm-up.invalid\r\n\r\nx\r\n'));

// Ready: from now on the thread's busy time is the message's, and the pool counts it.
send({ type: 'ready' });
