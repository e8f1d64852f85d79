/**
 * TWM problem documents (docs/protocol.md 6.5): RFC 9457 with the
 * `twm_error` member, plus `retry_after` (and the Retry-After header) on 429
 * and 503 and `max_size` with `message-too-large`.
 *
 * Only a TwmError (core/twm-types.ts) reaches the client as itself. Anything else (a hook's plain Error, a ReplyError meant for
 * SMTP, a service's DomainError, which the TWM handlers turn into registry
 * codes themselves where one applies, a bug) is a fault on our side: 503 `temporarily-unavailable`, the
 * cause logged and never sent, since `detail` must not leak internals or
 * reveal users (6.5).
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { TWM_ERRORS, TwmError, twmError, type TwmErrorCode } from '../../core/twm-types.ts';
import type { TwmAnswer } from './direct.ts';

export const PROBLEM_TYPE = 'application/problem+json';
/** Retry-After when a 503 or 429 comes without one: the header is REQUIRED there (11.1). */
export const DEFAULT_RETRY_AFTER = 60;
/** Problem documents stay far below the 4,096 octets of 4.3. */
const MAX_DETAIL = 512;

export interface TwmProblem {
  type: 'about:blank';
  title: string;
  status: number;
  detail: string;
  twm_error?: TwmErrorCode;
  retry_after?: number;
  max_size?: number;
}

/** A refusal as the client will see it. */
export interface TwmRefusal {
  code: TwmErrorCode;
  error: TwmError;
}

/** The refusal to answer with: the error itself when it carries a registered code, else 503 (logged). */
export function asTwmRefusal(err: unknown, log: FastifyBaseLogger): TwmRefusal {
  if (err instanceof TwmError) return { code: err.problemCode, error: err };
  const framework = frameworkRefusal(err);
  if (framework) {
    log.debug({ err }, 'TWM request refused by the framework');
    return framework;
  }
  log.error({ err }, 'TWM endpoint fault');
  return { code: 'temporarily-unavailable', error: twmError('temporarily-unavailable', 'temporarily unavailable, try again later', { cause: err }) };
}

/**
 * Fastify refuses some malformed requests itself before our code sees them
 * (a Content-Type header that is not a media type at all:
 * FST_ERR_CTP_INVALID_MEDIA_TYPE, 415). Those are the client's error, not a
 * fault of ours, so they get the registry code for their status rather
 * than 503 (found by test/fuzz-twm.test.ts).
 */
function frameworkRefusal(err: unknown): TwmRefusal | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, statusCode } = err as { code?: unknown; statusCode?: unknown };
  if (typeof code !== 'string' || !code.startsWith('FST_') || typeof statusCode !== 'number' || statusCode < 400 || statusCode > 499) return undefined;
  const mapped: TwmErrorCode = statusCode === 415 ? 'unsupported-media-type' : statusCode === 413 ? 'too-large' : 'invalid-request';
  const detail = mapped === 'unsupported-media-type' ? 'the Content-Type is not a valid media type' : mapped === 'too-large' ? 'the request content is too large' : 'the request is malformed';
  return { code: mapped, error: twmError(mapped, detail) };
}

export function sendTwmProblem(reply: FastifyReply, refusal: TwmRefusal): FastifyReply {
  const { doc, retryAfter } = problemOf(refusal);
  if (retryAfter !== undefined) reply.header('Retry-After', String(retryAfter));
  return noStore(reply).code(doc.status).type(PROBLEM_TYPE).send(doc);
}

/** The same refusal as sendTwmProblem's, as the answer the direct path writes (direct.ts). */
export function twmProblemAnswer(refusal: TwmRefusal): TwmAnswer {
  const { doc, retryAfter } = problemOf(refusal);
  // As fastify sends a JSON media type without a charset: with `charset=utf-8` added.
  const headers: Record<string, string> = { ...(retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) }), 'cache-control': 'no-store', 'content-type': `${PROBLEM_TYPE}; charset=utf-8` };
  return { status: doc.status, headers, body: JSON.stringify(doc) };
}

function problemOf({ code, error }: TwmRefusal): { doc: TwmProblem; retryAfter: number | undefined } {
  const status = error.status;
  const retryable = status === 429 || status === 503;
  const retryAfter = retryable ? (error.retryAfter ?? DEFAULT_RETRY_AFTER) : undefined;
  const doc: TwmProblem = {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail: error.text.slice(0, MAX_DETAIL),
    twm_error: code,
    ...(retryAfter === undefined ? {} : { retry_after: retryAfter }),
    ...(code === 'message-too-large' && error.maxSize !== undefined ? { max_size: error.maxSize } : {}),
  };
  return { doc, retryAfter };
}

/**
 * A whole HTTP/1.1 response carrying a refusal, for requests that never
 * became fastify requests (node's parser refused them: a bad method, a
 * control character in a header, an oversized header block). It ends with
 * `Connection: close`; the caller ends the socket after it.
 */
export function rawTwmProblem(code: TwmErrorCode, detail: string): string {
  const status = TWM_ERRORS[code].status;
  const doc: TwmProblem = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail: detail.slice(0, MAX_DETAIL), twm_error: code };
  const body = JSON.stringify(doc);
  return (
    `HTTP/1.1 ${status} ${doc.title}\r\nContent-Type: ${PROBLEM_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`
  );
}

/**
 * Every TWM answer is `no-store` (4.1). The onSend hook sets it too, but
 * answers to URLs the router refused never run the hooks (found by
 * test/fuzz-twm.test.ts: an over-long fetch id).
 */
function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store').header('X-Content-Type-Options', 'nosniff');
}

/** Answers outside the registry (unknown path, wrong method): a problem document without `twm_error`. */
export function sendPlainProblem(reply: FastifyReply, status: number, detail: string): FastifyReply {
  const doc: TwmProblem = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail };
  return noStore(reply).code(status).type(PROBLEM_TYPE).send(doc);
}
