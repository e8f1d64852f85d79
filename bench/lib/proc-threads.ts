/** Per-thread CPU of a process from /proc (Linux): which thread the CPU of a benchmark went to. */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ

export interface ThreadCpu {
  /** The thread's name (comm), e.g. `node`, `libuv-worker`, `V8 Worker`. */
  name: string;
  user: number;
  system: number;
}

/** CPU seconds per thread of `pid`, by thread id; empty off Linux. */
export function threadCpu(pid: number): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, user: Number(f[11]) / TICKS_PER_SECOND, system: Number(f[12]) / TICKS_PER_SECOND });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/**
 * What each kind of thread spent between two readings of process `pid`: its main thread
 * (`main`), and the others by name (node's helper threads are all named `node`; libuv's pool
 * `libuv-worker`). Threads that ended in between are missed.
 */
export function threadCpuDelta(pid: number, before: Map<string, ThreadCpu>, after: Map<string, ThreadCpu>): Record<string, { user: number; system: number }> {
  const by: Record<string, { user: number; system: number }> = {};
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { user: 0, system: 0 };
    const key = tid === String(pid) ? 'main' : `${a.name} (other)`;
    const e = by[key] ?? { user: 0, system: 0 };
    by[key] = e;
    e.user += a.user - b.user;
    e.system += a.system - b.system;
  }
  return by;
}
