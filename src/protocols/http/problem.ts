/**
 * RFC 9457 problem details: the only error shape this API ever sends.
 *
 * Every failure path ends here: DomainErrors from the services (a status
 * per kind) and ReplyErrors (the status their thrower chose, else 400 for
 * a permanent refusal and 503 for a temporary one; never a status guessed
 * from the enhanced code), input validation (InputError, 400
 * naming the field), fastify's own client errors (malformed JSON, body too
 * large, unsupported media type, bad URL), unknown routes (404) and anything
 * unexpected (500 with a generic detail; the cause goes to the log only).
 *
 * We use `type: "about:blank"` throughout, so `title` is the HTTP status
 * phrase as RFC 9457 section 4.2.1 asks; `detail` carries the specifics.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, type DomainErrorKind, insufficientStorage, isStorageFull, isStoreUnavailable, ReplyError, storeUnavailable } from '../../core/errors.ts';
import { InputError, type InputIssue } from './validation.ts';

export const PROBLEM_TYPE = 'application/problem+json';

/** Both schemes this API accepts, so a client learns it may use either (RFC 9110 section 11.6.1). */
export const WWW_AUTHENTICATE = 'Bearer realm="twoway", Basic realm="twoway"';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  /** Extension member: one entry per invalid input field (validation errors only). */
  errors?: InputIssue[];
}

export function problem(status: number, detail: string, instance?: string, errors?: InputIssue[]): Problem {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...(instance === undefined ? {} : { instance }),
    ...(errors === undefined ? {} : { errors }),
  };
}

/**
 * The request path without the query string: enough to identify the
 * occurrence, and never echoes query parameters back.
 */
function instanceOf(request: FastifyRequest): string {
  const q = request.url.indexOf('?');
  return q === -1 ? request.url : request.url.slice(0, q);
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, status: number, detail: string, errors?: InputIssue[]): FastifyReply {
  if (status === 401) reply.header('WWW-Authenticate', WWW_AUTHENTICATE);
  return reply.code(status).type(PROBLEM_TYPE).send(problem(status, detail, instanceOf(request), errors));
}

/**
 * Fastify's client errors whose own messages we replace: the JSON parser's
 * message could quote the body (and so a password) in some versions, and the
 * others read better in our words.
 */
const FASTIFY_DETAILS: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'The request body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'The request body is empty but Content-Type is application/json',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Unsupported Content-Type for this request',
  FST_ERR_BAD_URL: 'The URL is not validly encoded',
  FST_ERR_MAX_PARAM_LENGTH: 'A path segment of the URL is too long',
};

/** The one place a domain error becomes an HTTP status. */
export const STATUS_OF_KIND: Readonly<Record<DomainErrorKind, number>> = {
  'not-found': 404,
  conflict: 409,
  invalid: 400,
  forbidden: 403,
  unauthorized: 401,
  throttled: 429,
};

/** A ReplyError's status: the thrower's, else by permanence alone (the client must change the request, or wait). */
export function statusOfReplyError(err: ReplyError): number {
  return err.status ?? (err.temporary ? 503 : 400);
}

interface Classified {
  status: number;
  detail: string;
  errors?: InputIssue[];
  /** A fault on our side: log it with its cause. */
  fault?: boolean;
}

/** The status and client-safe detail for an error, or undefined if it is an unexpected internal fault. */
export function classify(err: unknown, bodyLimit: number): Classified | undefined {
  if (err instanceof InputError) return { status: 400, detail: err.message, errors: err.issues };
  // A full disk is the operator's to fix, but temporary for the client: 507, logged as a fault.
  if (isStorageFull(err)) err = insufficientStorage(err);
  // PostgreSQL down or restarting: 503, and the client comes back (logged as a fault, for the operator).
  else if (isStoreUnavailable(err)) err = storeUnavailable(err);
  if (err instanceof DomainError) return { status: STATUS_OF_KIND[err.kind], detail: err.text };
  if (err instanceof ReplyError) {
    const status = statusOfReplyError(err);
    // `text` is client-safe by contract; a 5xx one (e.g. internalReply) is still our fault, so it is logged too.
    return { status, detail: err.text, fault: status >= 500 };
  }
  const fe = err as Partial<FastifyError> | null;
  if (fe && typeof fe.code === 'string' && fe.code.startsWith('FST_') && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, detail: `The request body is larger than ${bodyLimit} bytes` };
    return { status: fe.statusCode, detail: FASTIFY_DETAILS[fe.code] ?? fe.message ?? 'Bad request' };
  }
  return undefined;
}

/** Installs the error, not-found and framework-error handlers on the root instance. */
export function installProblemHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err, request, reply) => {
    const known = classify(err, bodyLimit) ?? { status: 500, detail: 'Internal server error', fault: true };
    // Operators get the cause (stack included) in the log; the client gets only the generic detail.
    if (known.fault) request.log.error({ err }, 'error in HTTP API');
    return sendProblem(reply, request, known.status, known.detail, known.errors);
  });

  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, 404, `No route for ${request.method} ${instanceOf(request)}`));
}

/** For fastify's `frameworkErrors` option (bad URL encoding, over-long path parameters). */
export function frameworkErrorHandler(bodyLimit: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const known = classify(err, bodyLimit) ?? { status: 400, detail: 'Bad request' };
    void sendProblem(reply, request, known.status, known.detail);
  };
}
