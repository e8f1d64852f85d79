/**
 * A session's view of its selected mailbox: the message list that gives
 * sequence numbers, and the modseq it has caught up to. Other sessions'
 * changes are merged in by `apply`, which returns the untagged responses
 * to send (EXISTS, FETCH FLAGS, EXPUNGE or VANISHED).
 */
import type { MailboxState, MessageMeta } from './hooks.ts';
import { parseSequenceSet, sequenceSet } from './format.ts';

export class SelectedMailbox {
  msgs: MessageMeta[];
  modseq: number;
  /** UIDs another session expunged that this one has not announced yet (not allowed during FETCH/STORE/SEARCH). */
  pendingExpunge = new Set<number>();

  constructor(
    readonly state: MailboxState,
    readonly readOnly: boolean,
    msgs: MessageMeta[],
  ) {
    this.msgs = msgs;
    this.modseq = state.highestModseq;
  }

  get exists(): number {
    return this.msgs.length;
  }

  get maxUid(): number {
    return this.msgs.length > 0 ? this.msgs[this.msgs.length - 1]!.uid : 0;
  }

  indexOfUid(uid: number): number {
    let lo = 0;
    let hi = this.msgs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = this.msgs[mid]!.uid;
      if (u === uid) return mid;
      if (u < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /**
   * Messages named by a sequence set (or UID set), in order, each once, with
   * their sequence numbers. Found by binary search per range, not by a scan
   * of the mailbox: mbsync fetches a 10,000-message mailbox with one
   * `UID FETCH n` per message, and a scan per command made that quadratic.
   */
  resolve(set: string, uid: boolean): Array<{ seq: number; m: MessageMeta }> {
    if (set === '$') throw 'SEARCHRES ($) is not supported';
    const out: Array<{ seq: number; m: MessageMeta }> = [];
    if (uid) {
      // `*` is the largest UID in use (or, on an empty mailbox, nothing matches).
      for (const [a, b] of mergeRanges(parseSequenceSet(set, this.maxUid === 0 ? 0 : this.maxUid))) {
        for (let i = this.firstIndexAtOrAbove(a); i < this.msgs.length && this.msgs[i]!.uid <= b; i++) out.push({ seq: i + 1, m: this.msgs[i]! });
      }
      return out;
    }
    const ranges = parseSequenceSet(set, this.msgs.length);
    for (const [, b] of ranges) if (b > this.msgs.length) throw 'Sequence number beyond the last message';
    for (const [a, b] of mergeRanges(ranges)) for (let seq = Math.max(a, 1); seq <= b; seq++) out.push({ seq, m: this.msgs[seq - 1]! });
    return out;
  }

  /** The index of the first message whose UID is `uid` or above (msgs.length when none). */
  private firstIndexAtOrAbove(uid: number): number {
    let lo = 0;
    let hi = this.msgs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.msgs[mid]!.uid < uid) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Merges changes; returns untagged responses. `allowExpunge` false keeps
   * removals pending (RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE, SEARCH).
   */
  apply(
    changes: { highestModseq: number; changed: MessageMeta[]; expunged: number[] },
    o: { allowExpunge: boolean; condstore: boolean; qresync: boolean },
  ): string[] {
    const out: string[] = [];
    for (const uid of changes.expunged) if (this.indexOfUid(uid) >= 0) this.pendingExpunge.add(uid);
    const fresh: MessageMeta[] = [];
    for (const m of changes.changed) {
      const i = this.indexOfUid(m.uid);
      if (i < 0) {
        if (m.uid > this.maxUid) fresh.push(m);
        continue;
      }
      const old = this.msgs[i]!;
      const same = old.flags.length === m.flags.length && old.flags.every((f) => m.flags.includes(f));
      this.msgs[i] = m;
      if (!same || (o.condstore && old.modseq !== m.modseq)) {
        out.push(`* ${i + 1} FETCH (${o.qresync || o.condstore ? `UID ${m.uid} ` : ''}FLAGS (${m.flags.join(' ')})${o.condstore ? ` MODSEQ (${m.modseq})` : ''})`);
      }
    }
    if (o.allowExpunge && this.pendingExpunge.size > 0) out.push(...this.flushExpunges(o.qresync));
    if (fresh.length > 0) {
      fresh.sort((a, b) => a.uid - b.uid);
      this.msgs.push(...fresh);
      out.push(`* ${this.msgs.length} EXISTS`);
    }
    this.modseq = Math.max(this.modseq, changes.highestModseq);
    return out;
  }

  flushExpunges(qresync: boolean): string[] {
    const gone = [...this.pendingExpunge].filter((u) => this.indexOfUid(u) >= 0).sort((a, b) => a - b);
    this.pendingExpunge.clear();
    if (gone.length === 0) return [];
    return this.remove(gone, qresync);
  }

  /** Removes UIDs from the view; the EXPUNGE (highest first, so numbers stay right) or VANISHED responses. */
  remove(uids: number[], qresync: boolean): string[] {
    const out: string[] = [];
    const present = uids.filter((u) => this.indexOfUid(u) >= 0);
    if (qresync) {
      if (present.length > 0) out.push(`* VANISHED ${sequenceSet(present)}`);
      const set = new Set(present);
      this.msgs = this.msgs.filter((m) => !set.has(m.uid));
      return out;
    }
    for (const uid of [...present].sort((a, b) => b - a)) {
      const i = this.indexOfUid(uid);
      out.push(`* ${i + 1} EXPUNGE`);
      this.msgs.splice(i, 1);
    }
    return out;
  }
}

/** Ranges sorted and merged where they overlap or touch: a message named twice is answered once. */
function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  if (ranges.length <= 1) return ranges;
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [[...sorted[0]!]];
  for (const [a, b] of sorted.slice(1)) {
    const last = out[out.length - 1]!;
    if (a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}
