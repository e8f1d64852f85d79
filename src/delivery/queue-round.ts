/**
 * One round of the queue worker: the transport calls of one message started
 * by one poll, then its DSNs, then the recipients' new states. See the
 * design note in queue-worker.ts. Every state is written under this
 * process's lease (`owner`): when another process took an entry over (this
 * one hung past the lease), the write is refused and logged, and the
 * entry's outcome is the other process's.
 */
import type { RetrySchedule } from '../core/retry-schedule.ts';
import type { QueueEntry, QueueState } from '../core/types.ts';
import type { DsnKind } from '../mail/dsn.ts';
import type { QueueRepository } from '../store/types.ts';
import type { ActiveSet } from './queue-active-set.ts';
import { decide, deliverGroup, describe, isNullSender, resultFor, roundDsn, type Group, type Pending } from './queue-decide.ts';
import type { OutboundMessage, RecipientResult, Transport } from './types.ts';

/** What a round's transport calls leave for its end: the recipients that need a DSN. */
interface RoundOutcome {
  failed: Pending[];
  delayed: Pending[];
}

export interface RoundContext {
  queue: QueueRepository;
  route: (domain: string) => Transport;
  notify: (dsn: { kind: DsnKind; sender: string; raw: Buffer }) => Promise<void>;
  active: ActiveSet;
  owner: string;
  schedule: RetrySchedule;
  clock: () => Date;
  random: () => number;
  dsn: { reportingMta: string; postmaster: string };
  log: (obj: object, msg: string) => void;
}

export function createRoundRunner(ctx: RoundContext) {
  const { queue, active, log, clock } = ctx;

  /**
   * Writes a recipient's state under our lease and takes it out of the active set (also when the write fails: it is then still due).
   * A final state drops the message's body in the same commit once no recipient is left to deliver (the store checks).
   */
  async function write(entry: QueueEntry, state: QueueState): Promise<void> {
    try {
      if (await queue.update(entry.id, state, ctx.owner, entry.messageId)) {
        log({ id: entry.id, messageId: entry.messageId, recipient: entry.recipient, ...describe(state) }, `recipient ${state.state}`);
      } else {
        log({ id: entry.id, messageId: entry.messageId, recipient: entry.recipient, outcome: state.state, owner: ctx.owner }, 'late write refused: the lease on this recipient was taken over by another process');
      }
    } catch (err) {
      log({ err, id: entry.id, messageId: entry.messageId }, 'could not write a queue state; the recipient stays due');
    } finally {
      active.inFlight.delete(entry.id);
    }
  }

  /** Sends one DSN for all `pending` recipients, then writes their states. */
  async function report(kind: DsnKind, sender: string, first: QueueEntry, original: Buffer, pending: Pending[]): Promise<void> {
    if (pending.length === 0) return;
    let sent = false;
    try {
      const raw = roundDsn(kind, sender, first, original, pending, { ...ctx.dsn, date: clock(), giveUpAfterMs: ctx.schedule.giveUpAfterMs });
      await ctx.notify({ kind, sender, raw });
      sent = true;
      log({ messageId: first.messageId, kind, sender, recipients: pending.map((p) => p.entry.recipient) }, 'delivery status notification sent');
    } catch (err) {
      log({ err, messageId: first.messageId, kind, sender }, 'could not send a delivery status notification; will try again');
    }
    for (const p of pending) await write(p.entry, sent ? p.reported : p.unreported);
  }

  /** The transport calls of one group, each recipient's outcome written or kept for its DSN. */
  async function deliver(group: Group, message: OutboundMessage | undefined, reportable: boolean, out: RoundOutcome): Promise<void> {
    let results: RecipientResult[];
    try {
      results = await deliverGroup(ctx.route, log, group, message);
    } finally {
      active.release(group.domain);
    }
    for (const entry of group.entries) {
      const outcome = decide(entry, resultFor(entry, results), reportable, clock(), ctx.schedule, ctx.random);
      if ('write' in outcome) {
        await write(entry, outcome.write);
      } else {
        (outcome.pending.kind === 'failed' ? out.failed : out.delayed).push(outcome.pending);
      }
    }
  }

  async function runRound(messageId: string, groups: Group[]): Promise<void> {
    let message: { raw: Buffer } | undefined;
    try {
      message = await queue.message(messageId);
    } catch (err) {
      log({ err, messageId }, 'could not read a queued message');
    }
    const first = groups[0]!.entries[0]!;
    const sender = isNullSender(first.sender) ? null : first.sender;
    const out: RoundOutcome = { failed: [], delayed: [] };
    await Promise.all(groups.map((group) => deliver(group, message && { messageId, sender, raw: message.raw }, sender !== null, out)));
    if (sender !== null) {
      const original = message?.raw ?? Buffer.alloc(0);
      await report('failed', sender, first, original, out.failed);
      await report('delayed', sender, first, original, out.delayed);
    }
  }

  return { runRound };
}
