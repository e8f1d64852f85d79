/**
 * Seeded fuzzing helpers: a small PRNG and byte/text mutators, so that every
 * fuzz run is reproducible from one number.
 *
 * - `FUZZ_SEED=<n>` repeats a run (each test prints its seed as a diagnostic
 *   and in every failure message); without it a fresh seed is drawn.
 * - `FUZZ_ITERATIONS=<n>` overrides each fuzz target's iteration count
 *   (`npm run soak` sets it high; `npm test` keeps the small defaults).
 *
 * A case's generator must draw only from the `Rng` it is given, never from
 * Math.random or the clock, or the seed stops describing the case.
 */

/** mulberry32: 32-bit state, good enough spread for test inputs, trivially reproducible. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** A derived generator for case `i`, so that cases do not depend on each other's draws. */
  fork(i: number): Rng {
    return new Rng(Math.imul(this.#state ^ (i + 1), 0x9e3779b1) ^ (i * 0x85ebca6b));
  }
}

/** The run's seed: FUZZ_SEED, or a fresh one (printed by the caller). */
export function fuzzSeed(): number {
  const given = process.env.FUZZ_SEED;
  if (given !== undefined && given !== '') {
    const n = Number(given);
    if (!Number.isInteger(n)) throw new Error(`FUZZ_SEED must be an integer, got ${JSON.stringify(given)}`);
    return n >>> 0;
  }
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** FUZZ_ITERATIONS, or the target's default. */
export function fuzzIterations(defaultCount: number): number {
  const n = Number(process.env.FUZZ_ITERATIONS);
  return Number.isInteger(n) && n > 0 ? n : defaultCount;
}

/** Tokens that tend to break parsers: separators, escapes, encodings, controls. */
const NASTY = [
  '\0', '\r', '\n', '\r\n', '\t', ' ', '"', "'", '\\', ':', ';', '=', ',', '[', ']', '{', '}', '<', '>', '@', '%', '!',
  '=?utf-8?B?', '=?iso-8859-1?Q?=E9?=', '?=', '=\r\n', '=ZZ', '--', '\u00e9', '\u{1F600}', '\uFEFF', '\uD800', '\x7f', '\xff',
  '${', '0x', '-1', '1e999', 'NaN', '99999999999999999999', 'true', 'null',
];

/** Applies 1..maxOps random edits to a text: deletions, duplications, insertions of junk and nasty tokens, case flips, truncation. */
export function mutateText(rng: Rng, text: string, maxOps = 4): string {
  let s = text;
  const ops = rng.range(1, maxOps);
  for (let k = 0; k < ops; k++) {
    const at = rng.int(s.length + 1);
    const len = rng.int(Math.min(40, s.length - at) + 1);
    switch (rng.int(9)) {
      case 0: // delete a slice
        s = s.slice(0, at) + s.slice(at + len);
        break;
      case 1: // duplicate a slice
        s = s.slice(0, at + len) + s.slice(at, at + len) + s.slice(at + len);
        break;
      case 2: // insert a nasty token
        s = s.slice(0, at) + rng.pick(NASTY) + s.slice(at);
        break;
      case 3: // insert random bytes (as latin1 characters)
        s = s.slice(0, at) + rng.bytes(rng.range(1, 8)).toString('latin1') + s.slice(at);
        break;
      case 4: // flip the case of a slice
        s = s.slice(0, at) + swapCase(s.slice(at, at + len)) + s.slice(at + len);
        break;
      case 5: // truncate
        s = s.slice(0, at);
        break;
      case 6: { // swap two lines
        const lines = s.split('\n');
        if (lines.length > 1) {
          const i = rng.int(lines.length);
          const j = rng.int(lines.length);
          [lines[i], lines[j]] = [lines[j]!, lines[i]!];
        }
        s = lines.join('\n');
        break;
      }
      case 7: { // repeat a line many times
        const lines = s.split('\n');
        const i = rng.int(lines.length);
        lines.splice(i, 0, ...Array<string>(rng.range(2, 200)).fill(lines[i] ?? ''));
        s = lines.join('\n');
        break;
      }
      default: // a long run of one character
        s = s.slice(0, at) + rng.pick(['a', ' ', '=', '[', '"', '\\', '-']).repeat(rng.range(100, 5000)) + s.slice(at);
    }
  }
  return s;
}

function swapCase(s: string): string {
  let out = '';
  for (const c of s) out += c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase();
  return out;
}

/** Runs `check` for `count` cases, each with its own forked Rng; failures name the seed and the case. */
export async function forEachCase(seed: number, count: number, check: (rng: Rng, i: number) => Promise<void> | void): Promise<void> {
  const root = new Rng(seed);
  for (let i = 0; i < count; i++) {
    try {
      await check(root.fork(i), i);
    } catch (err) {
      const e = err as Error;
      e.message = `[FUZZ_SEED=${seed} case ${i}] ${e.message}`;
      throw e;
    }
  }
}
