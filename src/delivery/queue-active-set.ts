/**
 * The queue worker's active set, the only delivery state in memory: the
 * recipients this process is delivering now (their claims in the store are
 * its leases) and the transport calls in flight per destination domain.
 */
import type { QueueEntry } from '../core/types.ts';
import { recipientDomain } from './queue-decide.ts';

export type ActiveSet = ReturnType<typeof createActiveSet>;

export function createActiveSet(maxActive: number, perDomain: number) {
  const inFlight = new Set<number>();
  const domainCalls = new Map<string, number>();
  return {
    inFlight,
    full: () => inFlight.size >= maxActive,
    room: () => Math.max(0, maxActive - inFlight.size),
    /** Whether `domain` is at its concurrency limit. */
    busy: (domain: string) => (domainCalls.get(domain) ?? 0) >= perDomain,
    /** Free calls of the domains with calls in flight (a domain without any has `perDomain`). */
    freeCalls: () => {
      let free = 0;
      for (const calls of domainCalls.values()) free += Math.max(0, perDomain - calls);
      return free;
    },
    /** Domains at their concurrency limit. */
    busyDomains: () => [...domainCalls].filter(([, calls]) => calls >= perDomain).map(([domain]) => domain),
    /** Takes what fits of one domain's entries as one transport call; null when the set or the domain is full. */
    take(domain: string, entries: QueueEntry[]): QueueEntry[] | null {
      const room = maxActive - inFlight.size;
      if (room <= 0 || (domainCalls.get(domain) ?? 0) >= perDomain) return null;
      const taken = entries.slice(0, room);
      for (const entry of taken) inFlight.add(entry.id);
      domainCalls.set(domain, (domainCalls.get(domain) ?? 0) + 1);
      return taken;
    },
    /** A transport call to `domain` ended. */
    release(domain: string): void {
      const calls = (domainCalls.get(domain) ?? 1) - 1;
      if (calls > 0) domainCalls.set(domain, calls);
      else domainCalls.delete(domain);
    },
  };
}

/**
 * message id -> domain -> entries not in flight, in the store's order
 * (oldest first). An entry already in flight here can come back from a
 * claim only if this process's own lease ran out under a stopped clock
 * (tests) or a stalled renewal: it is ours and running, never started twice.
 */
export function groupByMessage(due: QueueEntry[], inFlight: ReadonlySet<number>): Map<string, Map<string, QueueEntry[]>> {
  const byMessage = new Map<string, Map<string, QueueEntry[]>>();
  for (const entry of due) {
    if (inFlight.has(entry.id)) continue;
    const domains = byMessage.get(entry.messageId) ?? new Map<string, QueueEntry[]>();
    byMessage.set(entry.messageId, domains);
    const domain = recipientDomain(entry.recipient);
    const entries = domains.get(domain) ?? [];
    domains.set(domain, entries);
    entries.push(entry);
  }
  return byMessage;
}
