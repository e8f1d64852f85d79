/**
 * Replay protection for TWM requests (docs/protocol.md 5.5): in the store
 * (createNonceStore, what the server uses: every process and every node on
 * one database sees every nonce, so a request replayed at another node is
 * refused `replay`), or in memory (createNonceMemory: one process alone).
 *
 * 5.5 allows two ways: keep `(keyid, nonce)` across a restart, or refuse,
 * after a restart, every signature created before it. This is the second:
 * a signature lives at most 600 s plus 300 s of skew, so a restart costs a
 * sender at most one `stale-signature` answer (temporary; it signs again),
 * while every request saves a durable write (and its bytes) on the hot path
 * a stranger's notice takes.
 *
 * Memory is bounded: entries leave when their signature can no longer pass
 * the clock check, and past `maxEntries` live ones the answer is 503
 * (temporarily unavailable) rather than forgetting a nonce still in use.
 */
import { checkAfterRestart } from '../../core/replay-window.ts';
import { CLOCK_SKEW } from '../../core/twm-signature.ts';
import { twmError } from '../../core/twm-types.ts';
import type { TwmNonceWrite } from '../../store/types.ts';

export interface NonceMemory {
  /** False if seen (a replay); throws `stale-signature` for signatures older than this process. */
  remember(keyid: string, nonce: string, until: Date, created: Date): boolean;
}

/** What createNonceStore needs of the store (store/types.ts TwmNonceRepository). */
export interface NonceRepository {
  remember(key: string, until: Date, now: Date): Promise<boolean>;
}

/**
 * Nonces in the store, shared by every process. Signatures older than this
 * process are still refused as stale: on SQLite a nonce write is not fsynced
 * (store/lease-repository.ts), and the rule keeps a power failure from
 * opening a window for replays; it costs a restarted node's senders one
 * temporary answer at most, as before.
 */
export type NonceStore = ReturnType<typeof createNonceStore>;

export function createNonceStore(repo: NonceRepository, options: { startedAt?: Date; now?: () => Date } = {}) {
  const startedAt = Math.floor((options.startedAt ?? new Date()).getTime() / 1000) * 1000;
  const now = options.now ?? (() => new Date());
  const claim = (keyid: string, nonce: string, until: Date, created: Date): TwmNonceWrite => {
    if (created.getTime() < startedAt) {
      throw twmError('stale-signature', 'signed before this server restarted; sign the request again');
    }
    return { key: `${keyid} ${nonce}`, until, now: now() };
  };
  return {
    async remember(keyid: string, nonce: string, until: Date, created: Date): Promise<boolean> {
      const write = claim(keyid, nonce, until, created);
      return repo.remember(write.key, write.until, write.now);
    },
    /**
     * The write `remember` would make, for a repository that makes it in a transaction of its
     * own (TwmInboundRepository.record); throws `stale-signature` as `remember` does.
     */
    claim,
    /** Makes a claimed write alone: false if the nonce was seen. */
    rememberClaim: (write: TwmNonceWrite): Promise<boolean> => repo.remember(write.key, write.until, write.now),
  };
}

export function createNonceMemory(options: { startedAt?: Date; maxEntries?: number; now?: () => Date } = {}): NonceMemory {
  const startedAt = (options.startedAt ?? new Date()).getTime();
  const maxEntries = options.maxEntries ?? 1_000_000;
  const now = options.now ?? (() => new Date());
  // Insertion order is nearly `until` order (every signature lives 1-600 s), so pruning from the
  // front finds the expired ones; a few stragglers behind a longer-lived one wait for the next pass.
  const seen = new Map<string, number>();

  function prune(at: number): void {
    for (const [key, until] of seen) {
      if (until > at) break;
      seen.delete(key);
    }
  }

  return {
    remember(keyid, nonce, until, created) {
      const at = now().getTime();
      // Not only signatures created before the restart: step 6 let the old process accept `created` up
      // to 300 s ahead of its clock, so those up to restart + skew may have been seen (core/replay-window.ts).
      const restart = checkAfterRestart(Math.floor(created.getTime() / 1000), startedAt, CLOCK_SKEW, at);
      if (restart.kind === 'maybe-seen') {
        throw twmError('stale-signature', 'signed too close to this server\'s restart to rule out a replay; sign the request again later', {
          retryAfter: restart.retryAfter,
        });
      }
      const key = `${keyid} ${nonce}`;
      const known = seen.get(key);
      if (known !== undefined && known > at) return false;
      if (seen.size >= maxEntries) {
        prune(at);
        if (seen.size >= maxEntries) throw twmError('temporarily-unavailable', 'too many requests in flight; try again later', { retryAfter: 60 });
      } else if (seen.size % 1024 === 0) {
        prune(at);
      }
      seen.set(key, until.getTime());
      return true;
    },
  };
}
