/**
 * Two-Way Mail (TWM/1) as data: the messages of docs/protocol.md section 6,
 * the per-recipient states of sections 7.2 and 8.3, and the error registry of
 * section 11.1. Pure types and tables; the zod schemas that parse the wire
 * form are in twm-schema.ts, signatures in twm-signature.ts.
 */
export const TWM_PURPOSES = ['ownership-confirmation'] as const;

/** A notice (section 6.1), as parsed. Times are ISO 8601 UTC strings on the wire, Dates here. */
export interface Notice {
  id: string;
  from: string;
  to: string[];
  size: number;
  /** Lower-case hex SHA-256 of the message octets. */
  sha256: string;
  created: Date;
  expires: Date;
  intro?: string;
  /** A registered purpose (section 11.3); an unregistered one is dropped when parsing. */
  purpose?: string;
  listId?: string;
}

export type NoticeStatus = 'accepted' | 'pending' | 'unknown' | 'deferred';
export interface NoticeResultEntry {
  rcpt: string;
  status: NoticeStatus;
  /** Seconds; present iff status is `deferred`. */
  retryAfter?: number;
}
/** Section 6.2: one entry per `to` address, in the notice's order. */
export interface NoticeResult {
  id: string;
  results: NoticeResultEntry[];
}

/** Section 6.3. */
export interface FetchRequest {
  rcpt: string[];
}

export type ReceiptStatus = 'delivered' | 'declined' | 'failed';
export type ReceiptError = 'size-mismatch' | 'digest-mismatch' | 'from-mismatch' | 'message-too-large';
export interface ReceiptEntry {
  rcpt: string;
  status: ReceiptStatus;
  /** Sent iff status is `failed`; absent on a parsed `failed` entry whose code this server does not know (6.6). */
  error?: ReceiptError;
}
/** Section 6.4. */
export interface Receipt {
  id: string;
  results: ReceiptEntry[];
  /** Parsed only: recipients whose entry had a status this server does not know, ignored (6.6). */
  ignored?: string[];
}

export const TWM_MEDIA_TYPES = {
  notice: 'application/twm-notice+json',
  noticeResult: 'application/twm-notice-result+json',
  fetch: 'application/twm-fetch+json',
  receipt: 'application/twm-receipt+json',
  message: 'message/rfc822',
} as const;

export const TWM_PATHS = {
  notice: '/.well-known/twm/v1/notice',
  fetch: (id: string) => `/.well-known/twm/v1/fetch/${id}`,
  receipt: '/.well-known/twm/v1/receipt',
} as const;

/** The header field that marks the SMTP copy of a testing-mode sender's message (section 6.6). */
export const TWM_TESTING_HEADER = 'TWM-Testing';

/** Request content limit for notices, fetch requests and receipts (section 4.3). */
export const TWM_REQUEST_LIMIT = 16_384;
/** Receipts are accepted this long after a notice's expiry (section 6.4). */
export const TWM_RECEIPT_GRACE_MS = 24 * 3_600_000;
/**
 * Attempts per notice for its fetch, and again for its receipt (sections 8.4 and 12.2): a notice
 * whose sender's SRV names a third party's host costs that host at most this many attempts, each
 * of at most 20 addresses (3.1), within at most this many backoff intervals (each at most
 * `delivery.max_backoff`): the total-time cap. A sender's retry of the notice after the fetch was
 * given up on this count starts it again (8.4), once per retry, as a new notice would.
 */
export const MAX_CONTACT_ATTEMPTS = 8;

/** Section 11.1: the `twm_error` codes, their HTTP status, and whether a client retries. */
export const TWM_ERRORS = {
  unsigned: { status: 401, temporary: false },
  'bad-signature': { status: 401, temporary: false },
  'stale-signature': { status: 401, temporary: true },
  'unknown-key': { status: 401, temporary: true },
  'digest-mismatch': { status: 400, temporary: false },
  'invalid-request': { status: 400, temporary: false },
  'wrong-domain': { status: 403, temporary: false },
  'not-listed': { status: 403, temporary: false },
  'unknown-id': { status: 404, temporary: false },
  replay: { status: 409, temporary: false },
  'id-conflict': { status: 409, temporary: false },
  expired: { status: 410, temporary: false },
  'too-large': { status: 413, temporary: false },
  'unsupported-media-type': { status: 415, temporary: false },
  'not-served': { status: 421, temporary: false },
  'message-too-large': { status: 422, temporary: false },
  'rate-limited': { status: 429, temporary: true },
  'temporarily-unavailable': { status: 503, temporary: true },
} as const satisfies Record<string, { status: number; temporary: boolean }>;
export type TwmErrorCode = keyof typeof TWM_ERRORS;

/**
 * The TWM wire error: a registry code (the problem document's `twm_error`),
 * its HTTP status and retry class from the registry, and a client-safe
 * detail. It carries no SMTP reply: TWM refusals never leave over SMTP.
 */
export class TwmError extends Error {
  /** HTTP status, from the registry. */
  readonly status: number;
  /** Whether the client retries (the registry's class). */
  readonly temporary: boolean;
  /** Seconds a client should wait before retrying (Retry-After, `retry_after`). */
  readonly retryAfter: number | undefined;
  /** The largest acceptable size in octets (`max_size` with `message-too-large`). */
  readonly maxSize: number | undefined;

  constructor(
    readonly problemCode: TwmErrorCode,
    /** Client-safe detail. */
    readonly text: string,
    options: { retryAfter?: number; maxSize?: number; cause?: unknown } = {},
  ) {
    super(`${problemCode}: ${text}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TwmError';
    this.status = TWM_ERRORS[problemCode].status;
    this.temporary = TWM_ERRORS[problemCode].temporary;
    this.retryAfter = options.retryAfter;
    this.maxSize = options.maxSize;
  }
}

export function twmError(code: TwmErrorCode, detail: string, options: { retryAfter?: number; maxSize?: number; cause?: unknown } = {}): TwmError {
  return new TwmError(code, detail, options);
}

/** Sender side, per recipient (section 7.2). */
export const TWM_OUT_STATES = ['queued', 'accepted', 'pending', 'fetched', 'delivered', 'declined', 'failed', 'expired', 'unconfirmed'] as const;
export type TwmOutState = (typeof TWM_OUT_STATES)[number];
export const TWM_OUT_FINAL: ReadonlySet<TwmOutState> = new Set(['delivered', 'declined', 'failed', 'expired', 'unconfirmed']);

/** Recipient side, per notice and recipient (section 8.3). `refused` is never stored. */
export const TWM_IN_STATES = ['unknown', 'pending', 'held', 'scheduled', 'stored', 'receipt-due', 'closed', 'expired'] as const;
export type TwmInState = (typeof TWM_IN_STATES)[number];
export const TWM_IN_FINAL: ReadonlySet<TwmInState> = new Set(['unknown', 'closed', 'expired']);

/** The keyid of a signing key: `<selector>._twoway.<domain>` (section 5.1). */
export const keyIdOf = (selector: string, domain: string): string => `${selector}._twoway.${domain}`.toLowerCase();
