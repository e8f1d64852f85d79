/**
 * Helper threads run below the event loop (src/platform/thread-priority.ts): a worker thread lowers
 * itself and no other thread, never raises itself, the authentication workers and the message
 * writer do so as they start (so that one started later, a replacement, is lowered too), and a
 * running server has its helper threads
 * (V8's, libuv's, the authentication workers, the message writer) at the helpers' nice value
 * while its main thread keeps its own. Linux only: elsewhere the hint does nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createResolver } from '../src/dns/resolver.ts';
import { createAuthPool } from '../src/mail/auth-pool.ts';
import { HELPER_NICE_OFFSET } from '../src/platform/thread-priority.ts';
import { openStore } from '../src/store/open.ts';
import { eventually, startTestServer } from './helpers/server.ts';

const linux = process.platform === 'linux';

/** The nice value of each thread of this process, from /proc (field 19 of stat). */
function niceByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${entry}/stat`, 'utf8');
      out.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Runs `body` (CommonJS, with `lower` bound to lowerThreadPriority) in a worker thread; resolves with what it posts. */
function inWorker(body: string): Promise<{ tid: number; lowered: boolean; before: number; after: number }> {
  const module = new URL('../src/platform/thread-priority.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { readlinkSync } = require('node:fs');
    const os = require('node:os');
    import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(module)}); }).then(({ lowerThreadPriority: lower }) => {
      const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
      ${body}
    });`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', (m) => {
      resolve(m as { tid: number; lowered: boolean; before: number; after: number });
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('helper threads below the event loop', { skip: linux ? false : 'nice per thread is a Linux feature' }, () => {
  it('a worker thread lowers itself to the helpers nice value, and only itself', async () => {
    const mainBefore = niceByThread().get(process.pid);
    const r = await inWorker(`const before = os.getPriority(tid); const lowered = lower(); parentPort.postMessage({ tid, lowered, before, after: os.getPriority(tid) });`);
    assert.equal(r.before, mainBefore, 'a new thread starts at the main thread priority');
    assert.equal(r.lowered, true);
    assert.equal(r.after, Math.min(19, mainBefore! + HELPER_NICE_OFFSET), 'the offset below the event loop');
    assert.notEqual(r.tid, process.pid);
    assert.equal(niceByThread().get(process.pid), mainBefore, 'the main thread is untouched');
  });

  it('never raises a thread that is already lower', async () => {
    const r = await inWorker(`os.setPriority(tid, 19); const before = os.getPriority(tid); const lowered = lower(); parentPort.postMessage({ tid, lowered, before, after: os.getPriority(tid) });`);
    assert.equal(r.before, 19);
    assert.equal(r.lowered, false);
    assert.equal(r.after, 19);
  });

  // Before the server's test below, which lowers every thread of this process then present.
  it('the authentication workers and the message writer lower themselves as they start', async () => {
    const mainBefore = niceByThread().get(process.pid)!;
    const target = Math.min(19, mainBefore + HELPER_NICE_OFFSET);
    const lowered = () => [...niceByThread().entries()].filter(([tid, nice]) => tid !== process.pid && nice === target).length;
    const before = lowered();
    const pool = createAuthPool({ resolver: createResolver({ servers: ['127.0.0.1:9'] }), size: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'twoway-priority-'));
    const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
    try {
      pool.warm();
      store.messages.warm();
      // warm() starts one authentication worker (the rest on demand) and the writer: two threads more
      // at the helpers' value, lowered by nobody but themselves.
      await eventually(async () => (lowered() >= before + 2 ? true : undefined), 15_000, 'the new threads at the helpers nice value');
      assert.equal(niceByThread().get(process.pid), mainBefore, 'the event loop keeps its priority');
    } finally {
      await pool.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a running server keeps its event loop at its priority and its helpers below it', async () => {
    const mainBefore = niceByThread().get(process.pid)!;
    const s = await startTestServer();
    try {
      const helpers = await eventually(async () => {
        const target = Math.min(19, mainBefore + HELPER_NICE_OFFSET);
        const n = [...niceByThread().entries()].filter(([tid, nice]) => tid !== process.pid && nice === target).length;
        return n >= 3 ? n : undefined;
      }, 15_000, 'helper threads at the helpers nice value');
      assert.ok(helpers >= 3, `${helpers} helper threads lowered`);
      assert.equal(niceByThread().get(process.pid), mainBefore, 'the event loop keeps its priority');
    } finally {
      await s.close();
    }
  });
});
