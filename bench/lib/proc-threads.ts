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

/** What each thread name spent between two readings (threads that ended in between are missed). */
export function threadCpuDelta(before: Map<string, ThreadCpu>, after: Map<string, ThreadCpu>): Record<string, { user: number; system: number }> {
  const by: Record<string, { user: number; system: number }> = {};
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { user: 0, system: 0 };
    const key = a.name;
    const e = (by[key] ??= { user: 0, system: 0 });
    e.user += a.user - b.user;
    e.system += a.system - b.system;
  }
  return by;
}
