/**
 * The one error type for protocol replies (after maddy's exterrors).
 *
 * Every layer that wants the client to see a specific reply throws a
 * ReplyError. The protocol edge (SMTP, HTTP) maps it to its wire form; any
 * other error is an internal fault and becomes a 451 4.3.0 / HTTP 500 with a
 * generic text, while the cause is logged, never sent to the client.
 */
export class ReplyError extends Error {
  /** SMTP basic code, e.g. 550. */
  readonly code: number;
  /** RFC 3463 enhanced status code, e.g. "5.7.1". */
  readonly enhanced: string;
  /** Client-safe text. */
  readonly text: string;

  /** HTTP status for the JSON API when the SMTP code alone does not say it (404, 409, …). */
  readonly status: number | undefined;
  /** A machine-readable code for HTTP problem documents (TWM's `twm_error`, docs/protocol.md 11.1). */
  readonly problemCode: string | undefined;
  /** Seconds a client should wait before retrying (HTTP Retry-After). */
  readonly retryAfter: number | undefined;
  /** The largest acceptable size in octets, when the error is about size (TWM's `max_size`). */
  readonly maxSize: number | undefined;

  constructor(
    code: number,
    enhanced: string,
    text: string,
    options?: { cause?: unknown; status?: number; problemCode?: string; retryAfter?: number; maxSize?: number },
  ) {
    super(`${code} ${enhanced} ${text}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReplyError';
    this.code = code;
    this.enhanced = enhanced;
    this.text = text;
    this.status = options?.status;
    this.problemCode = options?.problemCode;
    this.retryAfter = options?.retryAfter;
    this.maxSize = options?.maxSize;
  }

  /** Temporary iff 4xx: the client should retry later. */
  get temporary(): boolean {
    return this.code >= 400 && this.code < 500;
  }

  /** The HTTP status that best matches this reply, for the JSON API. */
  get httpStatus(): number {
    if (this.status !== undefined) return this.status;
    if (this.enhanced === '5.1.1') return 404;
    if (this.enhanced.startsWith('5.7')) return 403;
    if (this.enhanced === '5.3.4') return 413;
    if (this.temporary) return 503;
    return 400;
  }
}

/** Anything that is not a ReplyError becomes this at the edge. */
export function internalReply(cause: unknown): ReplyError {
  return new ReplyError(451, '4.3.0', 'Internal error, please try again later', { cause });
}

/**
 * Error codes that mean "no room to store it", from any layer: SQLite's
 * SQLITE_FULL (also its extended codes), the system's ENOSPC and EDQUOT,
 * PostgreSQL's disk_full (SQLSTATE 53100). Checked on the error and its
 * `cause` chain, by code only, so that core stays free of driver imports.
 */
const STORAGE_FULL = /^(SQLITE_FULL(_\w+)?|ENOSPC|EDQUOT|53100)$/;

export function isStorageFull(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && STORAGE_FULL.test(code)) return true;
  }
  return false;
}

/** A full disk: temporary, with its own code (RFC 3463 4.3.1; HTTP 507), so senders retry and operators see why. */
export function insufficientStorage(cause: unknown): ReplyError {
  return new ReplyError(452, '4.3.1', 'Insufficient system storage, please try again later', { cause, status: 507 });
}

export function asReplyError(err: unknown): ReplyError {
  if (err instanceof ReplyError) return err;
  return isStorageFull(err) ? insufficientStorage(err) : internalReply(err);
}

/** Errors of the management operations (CLI, API), carrying their HTTP status. */
export const notFound = (text: string) => new ReplyError(550, '5.1.1', text, { status: 404 });
export const conflict = (text: string) => new ReplyError(550, '5.1.0', text, { status: 409 });
export const invalid = (text: string) => new ReplyError(501, '5.5.4', text, { status: 400 });
export const unauthorized = (text: string) => new ReplyError(535, '5.7.8', text, { status: 401 });
