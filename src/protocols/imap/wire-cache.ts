/**
 * The wire form of ENVELOPE and BODYSTRUCTURE per stored message,
 * kept in memory by one listener for all its sessions. A stored message
 * never changes (a new version is a new message with a new EMAILID), so an
 * entry never goes stale; it only costs memory, bounded here.
 *
 * Why, now that the store keeps this text (rendered at ingest,
 * core/imap-wire.ts): a FETCH that misses still reads it from the store,
 * one query per 500 messages; with the cache a repeated FETCH (a client
 * opening a folder again, a second session) writes strings it already has
 * (bench/imap-fetch.ts, docs/imap.md "Performance").
 *
 * Sessions only ask for the ids of their own selected mailbox, so an entry
 * is never shown to another user.
 */

export interface RenderedStructure {
  envelope: string;
  /** BODYSTRUCTURE (with the extension data). BODY, rarely asked for, is read from the store each time. */
  bodyStructure: string;
}

export class WireCache {
  private readonly entries = new Map<number, RenderedStructure>();
  private chars = 0;

  /** `maxChars`: the budget in characters (one octet each: the strings are latin1). 0 turns the cache off. */
  constructor(readonly maxChars: number) {}

  get(id: number): RenderedStructure | undefined {
    return this.entries.get(id);
  }

  set(id: number, r: RenderedStructure): void {
    if (this.maxChars === 0 || this.entries.has(id)) return;
    this.entries.set(id, r);
    this.chars += size(r);
    // Oldest first: the Map keeps insertion order, so eviction is O(1) per entry.
    for (const [oldId, old] of this.entries) {
      if (this.chars <= this.maxChars) break;
      this.entries.delete(oldId);
      this.chars -= size(old);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Characters plus a rough overhead for the entry itself. */
const size = (r: RenderedStructure) => r.envelope.length + r.bodyStructure.length + 64;
