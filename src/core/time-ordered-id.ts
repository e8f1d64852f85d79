/**
 * A time prefix for identifiers that are also database keys: 8 characters
 * of base64url's alphabet, in ASCII order, encoding milliseconds since the
 * epoch, so that binary comparison (SQLite's) sorts them as times.
 *
 * Why: TWM notice ids and request nonces lead the keys of rows written for
 * every message (the notices' and recipients' primary keys on both sides,
 * the history index, the stored-copy key, the nonce record). Fully random,
 * each insert and each state change landed on a B-tree page of its own, one
 * more page written to the WAL (and copied by the checkpoint) per index per
 * commit; in time order the rows of a commit share the newest pages
 * (bench/twm-delivery.ts). The random part that follows keeps the 128 bits
 * docs/protocol.md asks for (6.1 for ids, 5.1 for nonces); the time is no
 * secret (a notice carries `created`, a signature its `created`).
 */

/** base64url's 64 characters in ASCII order. */
const SORTED_ALPHABET = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';

/** 8 characters for `ms` (0 to 2^48 - 1, about the year 10889): later times sort after earlier ones. */
export function timePrefix(ms: number): string {
  let rest = Math.min(2 ** 48 - 1, Math.max(0, Math.floor(ms)));
  let out = '';
  for (let i = 0; i < 8; i++) {
    out = SORTED_ALPHABET[rest % 64]! + out;
    rest = Math.floor(rest / 64);
  }
  return out;
}
