/**
 * Helper threads (the authentication workers, the message writer, V8's and libuv's helpers) run
 * at a lower priority than the event loop.
 *
 * Why: the event loop hands every message to these threads and hears back from them, and each
 * hand-off wakes a thread. On Linux a woken thread at the same priority often takes the CPU from
 * the thread that woke it: the event loop, which then waits while the SMTP sessions it serves
 * wait for their replies. At a lower priority the woken thread runs on an idle core or once the
 * event loop yields, and it still gets its share of a busy machine (bench/results.md, session 16:
 * side by side, 6% more messages accepted per second at 20 sessions for the same CPU per message).
 *
 * The offset is from the event loop's own nice value, so a server started with `nice` or under a
 * service manager's `Nice=` keeps its helpers the same distance below its event loop.
 *
 * Linux keeps the nice value per thread (setpriority(2), "the nice value is a per-thread
 * attribute"), and a thread's id is in /proc/thread-self. Elsewhere, or where /proc is not
 * mounted, nothing changes: this is a scheduling hint, never a requirement.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** How far below the event loop helper threads run: weight 172 against its 1,024 (at nice 0) when both want a core. */
export const HELPER_NICE_OFFSET = 8;
/** The lowest priority Linux has. */
const LOWEST = 19;

/** The nice value for helper threads: the event loop's (the main thread's id is the process id) plus the offset. */
function helperNice(): number {
  return Math.min(LOWEST, getPriority(process.pid) + HELPER_NICE_OFFSET);
}

/** Lowers the calling thread to helperNice() (never raises it). Returns whether it did. */
export function lowerThreadPriority(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    return lower(Number(readlinkSync('/proc/thread-self').split('/').pop()), helperNice());
  } catch {
    return false;
  }
}

/**
 * Lowers every other thread of the process that exists now, called from the main thread once the
 * server runs: V8's platform threads (garbage collection and compilation helpers) and libuv's
 * pool. Threads started later by the main thread inherit its priority; ours lower their own.
 */
export function lowerHelperThreads(): void {
  if (process.platform !== 'linux') return;
  try {
    const nice = helperNice();
    for (const entry of readdirSync('/proc/self/task')) {
      const tid = Number(entry);
      if (tid !== process.pid) lower(tid, nice);
    }
  } catch {
    // no /proc: nothing to lower
  }
}

function lower(tid: number, nice: number): boolean {
  if (!Number.isInteger(tid) || tid <= 0) return false;
  try {
    if (getPriority(tid) >= nice) return false;
    setPriority(tid, nice);
    return true;
  } catch {
    // The thread ended meanwhile, or the system refuses: a hint, not a requirement.
    return false;
  }
}
