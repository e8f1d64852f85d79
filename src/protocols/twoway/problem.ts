/**
 * TWM problem documents (docs/protocol.md 6.5): RFC 9457 with the
 * `twm_error` member, plus `retry_after` (and the Retry-After header) on 429
 * and 503 and `max_size` with `message-too-large`.
 *
 * Only a ReplyError carrying a registered `problemCode` reaches the client
 * as itself. Anything else (a hook's plain Error, a ReplyError meant for
 * SMTP, a bug) is a fault on our side: 503 `temporarily-unavailable`, the
 * cause logged and never sent, since `detail` must not leak internals or
 * reveal users (6.5).
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { ReplyError } from '../../core/errors.ts';
import { TWM_ERRORS, twmError, type TwmErrorCode } from '../../core/twm-types.ts';

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
  error: ReplyError;
}

const isCode = (code: string | undefined): code is TwmErrorCode => code !== undefined && Object.hasOwn(TWM_ERRORS, code);

/** The refusal to answer with: the error itself when it carries a registered code, else 503 (logged). */
export function asTwmRefusal(err: unknown, log: FastifyBaseLogger): TwmRefusal {
  if (err instanceof ReplyError && isCode(err.problemCode)) return { code: err.problemCode, error: err };
  log.error({ err }, 'TWM endpoint fault');
  return { code: 'temporarily-unavailable', error: twmError('temporarily-unavailable', 'temporarily unavailable, try again later', { cause: err }) };
}

export function sendTwmProblem(reply: FastifyReply, { code, error }: TwmRefusal): FastifyReply {
  const status = error.status ?? TWM_ERRORS[code].status;
  const retryable = status === 429 || status === 503;
  const retryAfter = retryable ? (error.retryAfter ?? DEFAULT_RETRY_AFTER) : undefined;
  if (retryAfter !== undefined) reply.header('Retry-After', String(retryAfter));
  const doc: TwmProblem = {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail: error.text.slice(0, MAX_DETAIL),
    twm_error: code,
    ...(retryAfter === undefined ? {} : { retry_after: retryAfter }),
    ...(code === 'message-too-large' && error.maxSize !== undefined ? { max_size: error.maxSize } : {}),
  };
  return reply.code(status).type(PROBLEM_TYPE).send(doc);
}

/** Answers outside the registry (unknown path, wrong method): a problem document without `twm_error`. */
export function sendPlainProblem(reply: FastifyReply, status: number, detail: string): FastifyReply {
  const doc: TwmProblem = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail };
  return reply.code(status).type(PROBLEM_TYPE).send(doc);
}
