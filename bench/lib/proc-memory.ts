/**
 * Memory of a server's whole process tree from /proc (the idle-connection
 * benchmarks): RSS, and PSS (smaps_rollup; shared pages split between the
 * processes that map them, the fair sum for servers of many processes).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Memory {
  rssKb: number;
  pssKb: number;
  processes: number;
}

function field(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** RSS and PSS of `root` and all its descendants. */
export function treeMemory(root: number): Memory {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  const m: Memory = { rssKb: 0, pssKb: 0, processes: 0 };
  for (const pid of tree) {
    try {
      m.rssKb += field(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      m.pssKb += field(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      m.processes++;
    } catch {
      // gone meanwhile
    }
  }
  return m;
}

