/** CPU time of a process from /proc (Linux), to tell CPU-bound from waiting. */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux this runs on

/** User + system CPU seconds consumed so far by `pid` (its threads included), or null off Linux. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * CPU seconds of a process tree rooted at a daemon that forks workers (Postfix's
 * master): the root's own time plus the reaped children's (cutime, cstime) plus
 * the live direct children's. Children that exit between two readings are
 * counted once they are reaped, so read it after the work has settled.
 */
export function treeCpuSeconds(rootPid: number): number | null {
  const fieldsOf = (pid: number | string): string[] | null => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    } catch {
      return null;
    }
  };
  const root = fieldsOf(rootPid);
  if (!root) return null;
  // After the command name: state (0), ppid (1), ... utime (11), stime (12), cutime (13), cstime (14).
  let ticks = Number(root[11]) + Number(root[12]) + Number(root[13]) + Number(root[14]);
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return ticks / TICKS_PER_SECOND;
  }
  for (const pid of entries) {
    const f = fieldsOf(pid);
    if (f && Number(f[1]) === rootPid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / TICKS_PER_SECOND;
}

/**
 * CPU seconds of a process tree split into main threads (a process's first thread: its event
 * loop) and every other thread (worker threads, libuv's pool, V8's GC and compiler threads),
 * summed over `rootPid` and its direct children (a supervisor's workers), and `root`: the root
 * process alone (with several processes, the supervisor). Live threads only.
 */
export function threadCpuSeconds(rootPid: number): { main: number; other: number; root: number } | null {
  const ticksOf = (path: string): number | null => {
    try {
      const stat = readFileSync(path, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    } catch {
      return null;
    }
  };
  const pids = [rootPid];
  try {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === rootPid) pids.push(Number(e));
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    return null;
  }
  let main = 0;
  let other = 0;
  let root = 0;
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const t = ticksOf(`/proc/${pid}/task/${tid}/stat`);
      if (t === null) continue;
      if (Number(tid) === pid) main += t;
      else other += t;
      if (pid === rootPid) root += t;
    }
  }
  return { main: main / TICKS_PER_SECOND, other: other / TICKS_PER_SECOND, root: root / TICKS_PER_SECOND };
}

/**
 * Write system calls (every write, pwrite, writev and send of the process: sockets included) and
 * bytes so far from /proc/<pid>/io, or null off Linux. Counted per message, the difference
 * between two store layouts shows as fewer WAL page writes.
 */
export function writeCounters(pid: number): { calls: number; bytes: number } | null {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1]);
    const calls = field('syscw');
    const bytes = field('wchar');
    return Number.isFinite(calls) && Number.isFinite(bytes) ? { calls, bytes } : null;
  } catch {
    return null;
  }
}
