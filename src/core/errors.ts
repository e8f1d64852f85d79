/**
 * Two kinds of error leave the services, and each protocol edge translates
 * both in one place (SMTP: src/protocols/smtp/errors.ts; HTTP:
 * src/protocols/http/problem.ts; TWM: src/protocols/twoway/problem.ts; CLI:
 * src/cli/output.ts):
 *
 * - DomainError: what went wrong in the application's terms (not found,
 *   conflict, invalid, forbidden, unauthorized, throttled) with a
 *   client-safe text, and nothing of any protocol;
 * - ReplyError: a protocol reply (core/reply.ts) the thrower chose, such as
 *   a policy refusal at the end of DATA, with the HTTP status spelled out by
 *   the thrower when the error can reach the JSON API.
 *
 * TWM's wire error is TwmError (core/twm-types.ts), with the registry code.
 *
 * Anything else is an internal fault: a 451 4.3.0 / HTTP 500 with a generic
 * text, while the cause is logged, never sent to the client.
 */
import { replies, reply, type ServerReply } from './reply.ts';

export type DomainErrorKind = 'not-found' | 'conflict' | 'invalid' | 'forbidden' | 'unauthorized' | 'throttled';

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    /** Client-safe text. */
    readonly text: string,
    options?: { cause?: unknown },
  ) {
    super(text, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DomainError';
  }
}

export const notFound = (text: string) => new DomainError('not-found', text);
export const conflict = (text: string) => new DomainError('conflict', text);
export const invalid = (text: string) => new DomainError('invalid', text);
export const forbidden = (text: string) => new DomainError('forbidden', text);
export const unauthorized = (text: string) => new DomainError('unauthorized', text);
/** Too many attempts (failed logins): the client must wait. */
export const throttled = (text: string) => new DomainError('throttled', text);

export interface ReplyErrorOptions {
  cause?: unknown;
  /** HTTP status for the JSON API; without one the API answers 400 (permanent) or 503 (temporary). */
  status?: number;
}

/** A protocol reply as an error (after maddy's exterrors). */
export class ReplyError extends Error {
  readonly reply: ServerReply;
  /** HTTP status chosen by the thrower, when the error can reach the JSON API. */
  readonly status: number | undefined;

  constructor(code: number, enhanced: string, text: string, options?: ReplyErrorOptions) {
    super(`${code} ${enhanced} ${text}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReplyError';
    this.reply = reply(code, enhanced, text);
    this.status = options?.status;
  }

  static of(r: ServerReply, options?: ReplyErrorOptions): ReplyError {
    return new ReplyError(r.code, r.enhanced, r.text, options);
  }

  /** SMTP basic code, e.g. 550. */
  get code(): number {
    return this.reply.code;
  }

  /** RFC 3463 enhanced status code, e.g. "5.7.1". */
  get enhanced(): string {
    return this.reply.enhanced;
  }

  /** Client-safe text. */
  get text(): string {
    return this.reply.text;
  }

  /** Temporary iff 4xx: the client should retry later. */
  get temporary(): boolean {
    return this.code >= 400 && this.code < 500;
  }
}

/** Anything that is neither a ReplyError nor a DomainError becomes this at the SMTP edge. */
export function internalReply(cause: unknown): ReplyError {
  return ReplyError.of(replies.internalError(), { cause });
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
  return ReplyError.of(replies.insufficientStorage(), { cause, status: 507 });
}

/**
 * The store cannot be reached (PostgreSQL down, restarting or unreachable):
 * connection errors from the system, PostgreSQL's admin_shutdown,
 * crash_shutdown and cannot_connect_now (57P01-57P03) and its connection
 * exceptions (class 08), and node-postgres's own messages for a connection
 * that ended or never came. Checked like isStorageFull, by code (and these
 * messages) only, so that core stays free of driver imports.
 */
const STORE_UNAVAILABLE_CODES = /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|57P0[123]|08\d{3})$/;
const STORE_UNAVAILABLE_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection refused)/;

export function isStoreUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && STORE_UNAVAILABLE_CODES.test(code)) return true;
    if (typeof message === 'string' && STORE_UNAVAILABLE_MESSAGES.test(message)) return true;
  }
  return false;
}

/**
 * The store is unreachable: temporary for every client (SMTP 451 4.3.0, HTTP
 * 503), until it comes back, which needs nothing from us (the pool connects
 * again on the next request).
 */
export function storeUnavailable(cause: unknown): ReplyError {
  return ReplyError.of(replies.storeUnavailable(), { cause, status: 503 });
}

/**
 * The expected-sender use a delivery was to consume is gone (another
 * delivery took the last one, or the user removed it): the delivery is
 * rolled back and decided again (docs/protocol.md 9.3).
 */
export class ExpectUsedUpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpectUsedUpError';
  }
}
