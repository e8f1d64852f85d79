/**
 * The order in which a client tries SRV targets (RFC 2782, "Usage rules";
 * docs/protocol.md section 3.1): lowest priority first; within a priority,
 * the weighted random selection, so a target with twice the weight is
 * chosen first about twice as often, and weight-0 targets come last unless
 * luck (a draw of exactly 0) favours them.
 */

export interface SrvTarget {
  target: string;
  port: number;
  priority: number;
  weight: number;
}

/** `random` returns a number in [0, 1), like Math.random (injectable for tests). */
export function orderSrvTargets<T extends SrvTarget>(records: readonly T[], random: () => number = Math.random): T[] {
  const priorities = [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b);
  const out: T[] = [];
  for (const priority of priorities) {
    // RFC 2782: weight-0 records are placed at the beginning of the list before the draws.
    const group = records.filter((r) => r.priority === priority);
    const pending = [...group.filter((r) => r.weight === 0), ...group.filter((r) => r.weight > 0)];
    while (pending.length > 0) {
      const total = pending.reduce((sum, r) => sum + r.weight, 0);
      const draw = Math.floor(random() * (total + 1));
      let running = 0;
      let chosen = pending.length - 1;
      for (let i = 0; i < pending.length; i++) {
        running += pending[i]!.weight;
        if (running >= draw) {
          chosen = i;
          break;
        }
      }
      out.push(pending.splice(chosen, 1)[0]!);
    }
  }
  return out;
}
