/**
 * Where one accepted message's time goes (BENCH_TRACE=1 in the benchmark
 * child, bench/lib/twoway-server.ts): timestamps per SMTP stage of every
 * connection, the authentication worker's round trips and DNS questions,
 * and the message group commit's rounds, summed per stage. For profiling
 * only: it patches smtp-server's connection prototype, worker_threads'
 * Worker and the message repository's GroupCommit at run time, and the
 * normal path is untouched without it.
 *
 * A connection's stages, as the server sees them (each from the previous):
 *   greeting   accept -> 220 written (the early-talker hold, if any)
 *   ehlo-wait  220 -> EHLO read (the client's turn: loopback, smtp-source, our event loop)
 *   ehlo       EHLO read -> its reply written
 *   mail-wait, mail, rcpt-wait, rcpt, data-wait, data (the 354)
 *   body       354 -> end of data (the client's 10 KB and our reads)
 *   accept     end of data -> 250 written (authentication, ingest, group commit, fsync)
 *   quit-wait  250 -> QUIT read
 *   quit       QUIT read -> 221 written
 *   close      221 -> the socket closed
 * Inside `accept` (means over the messages, not a partition of it):
 *   accept.before-auth     end of data -> the job posted to a worker: mostly the wait for a free
 *                          worker (the pool has min(2, cores) and takes one message each)
 *   accept.auth            the job posted -> its answer read, per connection
 *   accept.auth-done-to-submit  the answer -> the message submitted to the group commit (ingest)
 *   auth       the job posted to a worker -> its answer read (DNS questions to the main thread inside)
 *   commit     GroupCommit.submit -> resolved: waiting for the round, the transaction, the fsync
 *   round-wait submit -> the round that holds the message starts
 *   tx, fsync  the round's transaction, then the WAL fdatasync
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

interface Conn {
  t: Map<string, number>;
  /** The last command read. */
  command: string;
}

interface Sums {
  n: number;
  stages: Record<string, number[]>;
}

const sums: Sums = { n: 0, stages: {} };
const add = (stage: string, ms: number) => {
  sums.stages[stage] ??= [];
  sums.stages[stage].push(ms);
};
const conns = new WeakMap<object, Conn>();
/** The connection whose end of data is being handled, through every promise that handling starts. */
const current = new AsyncLocalStorage<Conn>();
const loopDelay = monitorEventLoopDelay({ resolution: 1 });
/**
 * Connections past the end of data whose authentication job is not yet
 * posted. A job the pool had to queue is posted later from another context
 * (a worker's answer frees a slot), so it is matched to the oldest waiting
 * connection: the pool serves its queue in order.
 */
const awaitingAuth: Conn[] = [];

interface DataStream {
  emit(e: string | symbol, ...a: unknown[]): boolean;
  on(e: string, f: (chunk: Buffer) => void): unknown;
}

interface Proto {
  init(this: object): void;
  send(this: object, code: number, data: unknown, context?: unknown): unknown;
  _onCommand(this: object, command: Buffer, callback?: () => void): unknown;
  _onClose(this: object): unknown;
  handler_DATA(this: object & { _dataStream?: DataStream | false }, command: Buffer, callback: () => void): unknown;
}

/** Installs the patches; call before the server starts (the prototype patches of the server itself come later and call through). */
export async function installAcceptTrace(): Promise<void> {
  loopDelay.enable();
  const entry = createRequire(import.meta.url).resolve('smtp-server');
  const file = join(dirname(entry), '..', 'esm', 'smtp-connection.js');
  const mod = (await import(pathToFileURL(file).href)) as { SMTPConnection: { prototype: Proto } };
  const proto = mod.SMTPConnection.prototype;
  const mark = (self: object, name: string) => {
    const c = conns.get(self);
    if (c) c.t.set(name, performance.now());
  };
  const { init, send, _onCommand, _onClose, handler_DATA } = proto;
  proto.init = function () {
    conns.set(this, { t: new Map([['accept', performance.now()]]), command: '' });
    return init.call(this);
  };
  proto._onCommand = function (command, callback) {
    const verb = command.toString('latin1', 0, 4).toUpperCase();
    const name = verb === 'HELO' ? 'EHLO' : verb;
    mark(this, `${name}<`);
    const c = conns.get(this);
    if (c) c.command = name;
    return _onCommand.call(this, command, callback);
  };
  proto.send = function (code, data, context) {
    const c = conns.get(this);
    if (c) {
      // The first 250 after EHLO, MAIL, RCPT; the 250 after the data is the one after `eod`.
      const key = code === 220 ? '220>' : code === 354 ? '354>' : code === 221 ? '221>' : c.t.has('354>') ? `${code}>eod` : `${code}>${c.command}<`;
      if (!c.t.has(key)) c.t.set(key, performance.now());
    }
    return send.call(this, code, data, context);
  };
  proto.handler_DATA = function (command, callback) {
    const r = handler_DATA.call(this, command, callback);
    const stream = this._dataStream;
    const c = conns.get(this);
    if (stream && c) {
      let chunks = 0;
      stream.on('data', () => chunks++);
      const emitOf = stream.emit;
      stream.emit = function (e, ...a) {
        if (e !== 'end') return emitOf.call(this, e, ...a);
        c.t.set('eod', performance.now());
        awaitingAuth.push(c);
        add('body.chunks', chunks);
        // The end-of-data handler (and every promise it starts) runs with the connection as its context.
        return current.run(c, () => emitOf.call(this, e, ...a));
      };
    }
    return r;
  };
  proto._onClose = function () {
    const c = conns.get(this);
    if (c) {
      c.t.set('closed', performance.now());
      // A message refused before authentication never posts a job.
      const waiting = awaitingAuth.indexOf(c);
      if (waiting >= 0) awaitingAuth.splice(waiting, 1);
      record(c.t);
      conns.delete(this);
    }
    return _onClose.call(this);
  };

  // The authentication worker's round trips (auth-pool.ts posts `job`, the worker answers `done`; `dns` in between).
  const jobs = new Map<number, number>();
  const jobConns = new Map<number, Conn>();
  const dnsAsked = new Map<string, number>();
  const wproto = Worker.prototype as unknown as { postMessage(this: Worker, m: unknown, t?: unknown): void; emit(this: Worker, e: string | symbol, ...a: unknown[]): boolean };
  const { postMessage, emit } = wproto;
  const ids = new WeakMap<Worker, number>();
  let nextWorker = 0;
  const wid = (w: Worker) => {
    let id = ids.get(w);
    if (id === undefined) {
      id = ++nextWorker;
      ids.set(w, id);
    }
    return id;
  };
  wproto.postMessage = function (m, t) {
    const msg = m as { type?: string; id?: number };
    if (msg?.type === 'job' && typeof msg.id === 'number') {
      jobs.set(msg.id, performance.now());
      // A worker's events keep the context it was started in (an old connection's): only a waiting connection counts.
      const own = current.getStore();
      const at = own ? awaitingAuth.indexOf(own) : -1;
      const c = awaitingAuth.splice(Math.max(at, 0), 1)[0];
      if (c) {
        c.t.set('auth-posted', performance.now());
        jobConns.set(msg.id, c);
      }
    }
    if (msg?.type === 'dns-answer' && typeof msg.id === 'number') {
      const k = `${wid(this)}:${msg.id}`;
      const at = dnsAsked.get(k);
      if (at !== undefined) add('auth.dns-round-trip', performance.now() - at);
      dnsAsked.delete(k);
    }
    return postMessage.call(this, m, t);
  };
  wproto.emit = function (e, ...a) {
    if (e === 'message') {
      const msg = a[0] as { type?: string; id?: number };
      if (msg?.type === 'done' && typeof msg.id === 'number') {
        const at = jobs.get(msg.id);
        if (at !== undefined) add('auth', performance.now() - at);
        jobs.delete(msg.id);
        jobConns.get(msg.id)?.t.set('auth-done', performance.now());
        jobConns.delete(msg.id);
      }
      if (msg?.type === 'dns' && typeof msg.id === 'number') {
        dnsAsked.set(`${wid(this)}:${msg.id}`, performance.now());
        add('auth.dns-asked', 1);
      }
    }
    return emit.call(this, e, ...a);
  };
}

/** Wraps the message repository's group commit (the `committer` of store.messages). */
export function traceCommits(store: object, walSyncOwner: object | null): void {
  const committer = (store as { messages?: { committer?: GroupCommitLike } }).messages?.committer;
  if (!committer) throw new Error('BENCH_TRACE: no store.messages.committer');
  const { submit } = committer;
  const original = committer.commit;
  let roundStart = 0;
  committer.commit = async (items) => {
    const t0 = performance.now();
    roundStart = t0;
    add('round.items', items.length);
    try {
      return await original.call(committer, items);
    } finally {
      add('round', performance.now() - t0);
    }
  };
  committer.submit = (items) => {
    const t0 = performance.now();
    current.getStore()?.t.set('submitted', t0);
    const p = submit.call(committer, items);
    let started = 0;
    // The round that takes this submit starts after it: the first commit() call after t0.
    const poll = () => {
      if (roundStart >= t0) started = roundStart;
    };
    return p.then((r) => {
      poll();
      const now = performance.now();
      add('commit', now - t0);
      current.getStore()?.t.set('committed', now);
      if (started) add('commit.round-wait', started - t0);
      return r;
    });
  };
  // The WAL fdatasync (wal-sync.ts), when the store has one.
  const owner = walSyncOwner as { walSync?: (() => Promise<void>) & { close?: () => Promise<void> } } | null;
  if (owner?.walSync) {
    const ws = owner.walSync;
    const wrapped = async () => {
      const t0 = performance.now();
      // The round's transaction (and any checkpoint inside its COMMIT) ran on the event loop before this.
      if (roundStart) add('round.tx', t0 - roundStart);
      try {
        await ws();
      } finally {
        add('fsync', performance.now() - t0);
      }
    };
    owner.walSync = Object.assign(wrapped, { close: () => ws.close?.() ?? Promise.resolve() });
  }
}

interface GroupCommitLike {
  commit: (items: unknown[]) => Promise<unknown[]>;
  submit: (items: unknown[]) => Promise<unknown[]>;
}

const ORDER: Array<[string, string, string]> = [
  ['greeting', 'accept', '220>'],
  ['ehlo-wait', '220>', 'EHLO<'],
  ['ehlo', 'EHLO<', '250>EHLO<'],
  ['mail-wait', '250>EHLO<', 'MAIL<'],
  ['mail', 'MAIL<', '250>MAIL<'],
  ['rcpt-wait', '250>MAIL<', 'RCPT<'],
  ['rcpt', 'RCPT<', '250>RCPT<'],
  ['data-wait', '250>RCPT<', 'DATA<'],
  ['data', 'DATA<', '354>'],
  ['body', '354>', 'eod'],
  ['accept', 'eod', '250>eod'],
  ['accept.before-auth', 'eod', 'auth-posted'],
  ['accept.auth-to-submit', 'auth-posted', 'submitted'],
  ['accept.auth', 'auth-posted', 'auth-done'],
  ['accept.auth-done-to-submit', 'auth-done', 'submitted'],
  ['accept.commit', 'submitted', 'committed'],
  ['accept.after-commit', 'committed', '250>eod'],
  ['quit-wait', '250>eod', 'QUIT<'],
  ['quit', 'QUIT<', '221>'],
  ['close', '221>', 'closed'],
  ['total', 'accept', 'closed'],
];

function record(t: Map<string, number>): void {
  if (!t.has('250>eod')) return;
  sums.n++;
  for (const [stage, from, to] of ORDER) {
    const a = t.get(from);
    const b = t.get(to);
    if (a !== undefined && b !== undefined) add(stage, b - a);
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? 0;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

/** The summary since the last call (then reset): per stage mean, p50, p90 in ms (counts for *.items, dns-asked). */
export function takeTrace(): Record<string, unknown> {
  const out: Record<string, unknown> = { connections: sums.n };
  for (const [stage, xs] of Object.entries(sums.stages)) {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    out[stage] = stage === 'auth.dns-asked' ? { count: xs.length } : { n: xs.length, mean: r2(mean), p50: r2(pct(xs, 50)), p90: r2(pct(xs, 90)), max: r2(Math.max(...xs)), sum: r2(xs.reduce((a, b) => a + b, 0)) };
  }
  out.loopDelay = { mean: r2(loopDelay.mean / 1e6), p50: r2(loopDelay.percentile(50) / 1e6), p99: r2(loopDelay.percentile(99) / 1e6), max: r2(loopDelay.max / 1e6) };
  loopDelay.reset();
  sums.n = 0;
  sums.stages = {};
  return out;
}
