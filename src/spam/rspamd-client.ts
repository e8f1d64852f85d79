/**
 * rspamd over its HTTP protocol: `POST /checkv2` on the normal worker scans
 * a message; `POST /learnspam` and `/learnham` on the controller teach its
 * Bayes classifier (statistics in the Redis rspamd is configured with).
 *
 * The client never throws into the delivery path: a scan that cannot be
 * made (rspamd down, slow, a malformed answer, a message over the size
 * limit) comes back `unscanned` with the reason, and the caller delivers as
 * without a filter. Learning does throw (`LearnError`): it runs as retried
 * work in the store (spam/learn-worker.ts), never in the request path.
 */
import {
  judgementOfAction,
  judgementOfScore,
  SPAM_ACTIONS,
  type SpamAction,
  type SpamScan,
  type SpamSymbol,
  type SpamThresholds,
  type UnscannedReason,
} from '../core/spam.ts';

export interface RspamdOptions {
  /** The normal worker, e.g. `http://127.0.0.1:11333`. */
  url: string;
  /** The controller, e.g. `http://127.0.0.1:11334`. */
  controllerUrl: string;
  /** The controller's password (sent as `Password:`), if it needs one. */
  password: string | null;
  timeoutMs: number;
  /** Larger messages are not sent at all: they are delivered unscanned. */
  maxSize: number;
  /** Judge by rspamd's action, or by the score against these thresholds. */
  judge: { by: 'actions' } | { by: 'score'; thresholds: SpamThresholds };
  /**
   * Told when a scan could not be made because rspamd is unreachable, slow
   * or answered nonsense; at most once per `unreachableLogMs` (default one
   * minute), with how many scans were skipped since the last report.
   */
  onUnreachable?: (info: { why: UnscannedReason; error: string; skipped: number }) => void;
  unreachableLogMs?: number;
  now?: () => number;
}

/** What the SMTP transaction knows about the message, passed to rspamd as request headers. */
export interface ScanInput {
  raw: Buffer;
  envelopeFrom: string | null;
  recipients: string[];
  /** The SMTP client's address and HELO name (absent for TWM fetches). */
  ip?: string;
  helo?: string | null;
  /** This server's id for the transaction, for rspamd's log. */
  queueId?: string;
  /**
   * The transport authenticated the From: domain itself (Two-Way Mail: the signed notice and the
   * fetch from the domain's own server). rspamd's SPF, DKIM and DMARC checks are then switched
   * off for the scan (SENDER_CHECKS_OFF): with no client IP and no DKIM signature (the sender
   * signs only what leaves by SMTP) they could only score the message for what they cannot see.
   */
  senderAuthenticated?: boolean;
}

/** rspamd's `Settings` request header for a scan whose sender the transport authenticated. */
const SENDER_CHECKS_OFF = JSON.stringify({ groups_disabled: ['spf', 'dkim', 'dmarc'] });

export type LearnOutcome = 'learned' | 'already-learned' | 'skipped';

/** A learn request failed and should be retried (rspamd down, 5xx, timeout). `permanent`: retrying will not help. */
export class LearnError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'LearnError';
  }
}

export interface RspamdClient {
  scan(input: ScanInput): Promise<SpamScan>;
  /** Teaches rspamd that the message is spam or ham. Resolves with what rspamd did; throws LearnError. */
  learn(kind: 'spam' | 'ham', raw: Buffer): Promise<LearnOutcome>;
  /** For `doctor`-style checks: both workers answer `/ping`. */
  ping(): Promise<{ normal: boolean; controller: boolean }>;
}

const MAX_ANSWER = 1024 * 1024;

/** A Buffer as fetch's body type wants it (same memory, no copy; a Buffer's memory is never a SharedArrayBuffer). */
const bytes = (b: Buffer) => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength);

async function readBounded(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > limit) throw new Error(`answer larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

const isTimeout = (err: unknown) => err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');

/** Parses a `/checkv2` answer; throws on anything that is not one. */
export function parseCheckAnswer(text: string, judge: RspamdOptions['judge']): SpamScan {
  const body: unknown = JSON.parse(text);
  if (typeof body !== 'object' || body === null) throw new Error('not a JSON object');
  const o = body as Record<string, unknown>;
  const action = o.action;
  const score = o.score;
  if (typeof action !== 'string' || !(SPAM_ACTIONS as readonly string[]).includes(action)) throw new Error(`unknown action ${JSON.stringify(action)}`);
  if (typeof score !== 'number' || !Number.isFinite(score)) throw new Error('no numeric score');
  const required = typeof o.required_score === 'number' ? o.required_score : 0;
  const symbols: SpamSymbol[] = [];
  const raw = o.symbols;
  if (typeof raw === 'object' && raw !== null) {
    for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
      const s = typeof v === 'object' && v !== null ? (v as Record<string, unknown>).score : undefined;
      if (/^[A-Za-z0-9_]{1,64}$/.test(name)) symbols.push({ name, score: typeof s === 'number' && Number.isFinite(s) ? s : 0 });
    }
  }
  const a = action as SpamAction;
  return {
    status: 'scanned',
    action: a,
    score,
    required,
    symbols,
    judgement: judge.by === 'actions' ? judgementOfAction(a) : judgementOfScore(score, judge.thresholds),
  };
}

export function createRspamdClient(options: RspamdOptions): RspamdClient {
  const now = options.now ?? Date.now;
  const logEvery = options.unreachableLogMs ?? 60_000;
  let lastReport = -Infinity;
  let skipped = 0;
  const base = options.url.replace(/\/+$/, '');
  const controller = options.controllerUrl.replace(/\/+$/, '');

  function unscanned(why: UnscannedReason, error: string): SpamScan {
    skipped++;
    const t = now();
    if (t - lastReport >= logEvery) {
      lastReport = t;
      options.onUnreachable?.({ why, error, skipped });
      skipped = 0;
    }
    return { status: 'unscanned', why };
  }

  async function scan(input: ScanInput): Promise<SpamScan> {
    if (input.raw.length > options.maxSize) return { status: 'unscanned', why: 'too-large' };
    const headers: Record<string, string> = { 'Content-Type': 'message/rfc822', 'Pass': 'all' };
    if (input.envelopeFrom !== null) headers.From = input.envelopeFrom;
    if (input.ip) headers.IP = input.ip;
    if (input.helo) headers.Helo = input.helo;
    if (input.queueId) headers['Queue-Id'] = input.queueId;
    if (input.senderAuthenticated) headers.Settings = SENDER_CHECKS_OFF;
    let res: Response;
    try {
      // Rcpt may repeat; fetch's Headers joins repeats with ", ", which rspamd splits again.
      const h = new Headers(headers);
      for (const r of input.recipients) h.append('Rcpt', r);
      res = await fetch(`${base}/checkv2`, { method: 'POST', headers: h, body: bytes(input.raw), signal: AbortSignal.timeout(options.timeoutMs) });
    } catch (err) {
      return unscanned(isTimeout(err) ? 'timeout' : 'unreachable', errorText(err));
    }
    try {
      const text = await readBounded(res, MAX_ANSWER);
      if (res.status !== 200) return unscanned('bad-answer', `HTTP ${res.status}: ${text.slice(0, 200)}`);
      return parseCheckAnswer(text, options.judge);
    } catch (err) {
      return unscanned(isTimeout(err) ? 'timeout' : 'bad-answer', errorText(err));
    }
  }

  return {
    scan,
    learn: (kind, raw) => learn(options, controller, kind, raw),
    ping: () => ping(options.timeoutMs, base, controller),
  };
}

/** Teaches rspamd's controller one message as spam or ham. */
async function learn(options: RspamdOptions, controller: string, kind: 'spam' | 'ham', raw: Buffer): Promise<LearnOutcome> {
  const headers: Record<string, string> = { 'Content-Type': 'message/rfc822' };
  if (options.password !== null) headers.Password = options.password;
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${controller}/learn${kind}`, { method: 'POST', headers, body: bytes(raw), signal: AbortSignal.timeout(options.timeoutMs) });
    text = await readBounded(res, MAX_ANSWER);
  } catch (err) {
    throw new LearnError(`rspamd controller unreachable: ${errorText(err)}`, false);
  }
  if (res.status === 200) return 'learned';
  // 208: rspamd has learned this very message as this class already (it keeps the ids in Redis).
  if (res.status === 208) return 'already-learned';
  // 204: too few tokens to learn from (a near-empty message); nothing to retry.
  if (res.status === 204) return 'skipped';
  const detail = `rspamd /learn${kind} answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}: ${text.slice(0, 200)}`;
  // 403: wrong password; 400: a message rspamd cannot read. Retrying the same request will not help.
  throw new LearnError(detail, res.status === 400 || res.status === 403);
}

/** Whether the normal worker and the controller each answer /ping. */
async function ping(timeoutMs: number, base: string, controller: string) {
  const one = async (url: string) => {
    try {
      const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(timeoutMs) });
      await readBounded(res, 1024);
      return res.status === 200;
    } catch {
      return false;
    }
  };
  const [normal, ctl] = await Promise.all([one(base), one(controller)]);
  return { normal, controller: ctl };
}
