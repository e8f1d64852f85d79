/**
 * What a spam scan (rspamd, see spam/rspamd-client.ts) tells the rest of the
 * server, as pure data: the scan's outcome, the judgement the policy takes
 * as one more fact (core/policy.ts), and the header lines stored with the
 * message. No I/O here.
 */

/** rspamd's actions, by its own names. */
export const SPAM_ACTIONS = ['no action', 'greylist', 'add header', 'rewrite subject', 'soft reject', 'reject'] as const;
export type SpamAction = (typeof SPAM_ACTIONS)[number];

/**
 * The part of a scan the policy acts on:
 * - `clean`: deliver as without a filter;
 * - `likely`: likely spam (rspamd's `add header` / `rewrite subject`): Junk in
 *   open mode, a request marked likely spam in screen mode;
 * - `greylist`: answer 451 4.7.1 where the channel allows (SMTP);
 * - `reject`: refuse 550 5.7.1 (never an automatic message: backscatter).
 */
export const SPAM_JUDGEMENTS = ['clean', 'likely', 'greylist', 'reject'] as const;
export type SpamJudgement = (typeof SPAM_JUDGEMENTS)[number];

export interface SpamSymbol {
  name: string;
  score: number;
}

/** Why a message was not scanned. */
export type UnscannedReason = 'unreachable' | 'timeout' | 'bad-answer' | 'too-large';

export type SpamScan =
  | {
      status: 'scanned';
      action: SpamAction;
      score: number;
      /** rspamd's score for `reject` (its `required_score`). */
      required: number;
      symbols: SpamSymbol[];
      judgement: SpamJudgement;
    }
  | { status: 'unscanned'; why: UnscannedReason };

/** Score thresholds, when the server judges by score instead of rspamd's actions. Null: that step is off. */
export interface SpamThresholds {
  reject: number | null;
  junk: number | null;
  greylist: number | null;
}

/** The judgement of rspamd's action. `soft reject` is temporary, like greylisting. */
export function judgementOfAction(action: SpamAction): SpamJudgement {
  switch (action) {
    case 'reject':
      return 'reject';
    case 'add header':
    case 'rewrite subject':
      return 'likely';
    case 'greylist':
    case 'soft reject':
      return 'greylist';
    case 'no action':
      return 'clean';
  }
}

/** The judgement of a score against the server's own thresholds (highest step first). */
export function judgementOfScore(score: number, t: SpamThresholds): SpamJudgement {
  if (t.reject !== null && score >= t.reject) return 'reject';
  if (t.junk !== null && score >= t.junk) return 'likely';
  if (t.greylist !== null && score >= t.greylist) return 'greylist';
  return 'clean';
}

/** The judgement the policy gets: an unscanned message (or no filter at all) counts as clean. */
export function judgementOf(scan: SpamScan | null): SpamJudgement | null {
  return scan?.status === 'scanned' ? scan.judgement : null;
}

const fixed = (n: number) => (Math.round(n * 100) / 100).toFixed(2);

/**
 * The header lines (CRLF-terminated) stored on top of a judged message:
 * `X-Spam: yes|no|unscanned; ...` and, when scanned, `X-Spam-Symbols` with
 * rspamd's symbols that scored, highest first, folded. Stored with the
 * trace headers, so the topmost X-Spam is always this server's.
 */
export function spamHeaders(scan: SpamScan): string {
  if (scan.status === 'unscanned') return `X-Spam: unscanned; reason=${scan.why}\r\n`;
  const verdict = scan.judgement === 'clean' || scan.judgement === 'greylist' ? 'no' : 'yes';
  let out = `X-Spam: ${verdict}; score=${fixed(scan.score)}; required=${fixed(scan.required)}; action="${scan.action}"\r\n`;
  const symbols = scan.symbols
    .filter((s) => s.score !== 0)
    .sort((a, b) => b.score - a.score || (a.name < b.name ? -1 : 1))
    .map((s) => `${s.name}(${fixed(s.score)})`);
  if (symbols.length > 0) {
    const lines: string[] = [];
    let line = 'X-Spam-Symbols:';
    for (const [i, s] of symbols.entries()) {
      const piece = ` ${s}${i < symbols.length - 1 ? ',' : ''}`;
      if (line.length + piece.length > 76 && line !== 'X-Spam-Symbols:') {
        lines.push(line);
        line = ' ';
      }
      line += piece;
    }
    lines.push(line);
    out += `${lines.join('\r\n')}\r\n`;
  }
  return out;
}

/** What `mail show --json` reports: this server's topmost X-Spam and X-Spam-Symbols, if any. */
export interface SpamView {
  status: string;
  score: number | null;
  required: number | null;
  action: string | null;
  reason: string | null;
  symbols: SpamSymbol[];
}

/**
 * Reads this server's spam headers back from a stored message. Only the
 * header block's first X-Spam (and the X-Spam-Symbols right after it) count:
 * ours are stored on top, anything below came from elsewhere.
 */
export function spamOfMessage(raw: Buffer): SpamView | null {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 65536) : end).toString('utf8').replace(/\r\n[ \t]+/g, ' ');
  const lines = head.split('\r\n');
  const i = lines.findIndex((l) => /^x-spam:/i.test(l));
  if (i < 0) return null;
  const value = lines[i]!.slice('x-spam:'.length).trim();
  const [status, ...params] = value.split(';').map((p) => p.trim());
  const param = (name: string) => params.find((p) => p.toLowerCase().startsWith(`${name}=`))?.slice(name.length + 1).replace(/^"|"$/g, '') ?? null;
  const number = (v: string | null) => (v === null || !Number.isFinite(Number(v)) ? null : Number(v));
  const next = lines[i + 1] ?? '';
  const symbols: SpamSymbol[] = /^x-spam-symbols:/i.test(next)
    ? [...next.matchAll(/([A-Za-z0-9_]+)\((-?[0-9.]+)\)/g)].map((m) => ({ name: m[1]!, score: Number(m[2]) }))
    : [];
  return { status: status ?? '', score: number(param('score')), required: number(param('required')), action: param('action'), reason: param('reason'), symbols };
}
