/**
 * The public TWM/1 endpoint (docs/protocol.md sections 4-6): its own
 * fastify instance, separate from the JSON API, because it faces every
 * server on the Internet and shares nothing with the API (no auth, no
 * cookies, its own limits and error shape).
 *
 * A request goes: route lookup (unknown path: 404; known path, other method:
 * 405 with `Allow: POST`) -> step 1, the per-address token bucket (onRequest)
 * -> step 2, the content read up to its limit (body.ts) -> steps 3-12
 * (verify.ts) -> the endpoint's own checks and its hook (endpoints.ts). Every
 * answer carries `Cache-Control: no-store`; every refusal is a problem
 * document (problem.ts) and is counted through `hooks.onRefused`.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientRateKey } from '../../core/rate-keys.ts';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { pino } from 'pino';
import { noticeResultToJson } from '../../core/twm-schema.ts';
import { CAPABILITIES_PATH, OUR_VERSIONS, capabilitiesToJson } from '../../core/twm-capabilities.ts';
import { contentDigest } from '../../core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_REQUEST_LIMIT, TwmError, twmError, type TwmErrorCode } from '../../core/twm-types.ts';
import { installBodyReader, readContent } from './body.ts';
import { directRoute, TWM_BASE, writeAnswer, type DirectRoute, type TwmAnswer } from './direct.ts';
import { createTokenBuckets, type RateLimit } from '../../core/token-bucket.ts';
import { acceptNotice, fetchRules, noticeRules, receiptRules, recordReceipt, serveFetch, type EndpointContext } from './endpoints.ts';
import { asTwmRefusal, rawTwmProblem, sendPlainProblem, sendTwmProblem, twmProblemAnswer } from './problem.ts';
import type { TwmEndpoint, TwmServerOptions } from './types.ts';
import { normaliseAuthority, verifyTwmRequest, type IncomingTwmRequest, type VerifyContext } from './verify.ts';

const BASE = TWM_BASE;
/** Fastify's defaults, set here because the server is made here (serverFactory): 72 s idle keep-alive, no socket timeout. */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;
/** A peer gets 60 s for an answer (4.3); a request that takes longer to arrive is not a peer's. */
const REQUEST_TIMEOUT_MS = 60_000;
const ENDPOINT_PATH = /^\/\.well-known\/twm\/v1\/(?:notice|receipt|fetch\/[^/]+)$/;
const OTHER_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

export interface TwmAppOptions extends TwmServerOptions {
  tls: { key: string; cert: string };
  /** A pino (or compatible) logger; `false` for none; default: pino at info level. */
  log?: FastifyBaseLogger | false;
  /**
   * Serve well-formed POSTs of the signed endpoints without fastify (direct.ts); default true.
   * Off only to compare the two paths' answers (server.test.ts).
   */
  direct?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which TWM endpoint a route serves, for refusal counting. */
    twmEndpoint?: TwmEndpoint;
  }
}

function makeLogger(log: TwmAppOptions['log']): FastifyBaseLogger | undefined {
  if (log === false) return undefined;
  if (log === undefined) return pino({ level: 'info' });
  return log.child({ component: 'twm' });
}

/** Section 12.7's defaults for step 1. */
export const DEFAULT_CLIENT_RATE: RateLimit = { perSecond: 20, burst: 100 };

export async function createTwmApp(options: TwmAppOptions): Promise<FastifyInstance> {
  const logger = makeLogger(options.log);
  const hooks = options.hooks;
  const now = options.now ?? (() => new Date());
  // Step 1 of 5.4: per client address (IPv6 by /64: core/rate-keys.ts), before anything is read or verified.
  const buckets = createTokenBuckets(options.clientRate ?? DEFAULT_CLIENT_RATE);

  // Set once the app is built: requests arrive only after listening.
  let direct: ((req: IncomingMessage, res: ServerResponse, route: DirectRoute) => void) | undefined;
  const app = Fastify({
    serverFactory: (fastifyHandler) => {
      // Node would answer a request without Host itself (400, no body); it is refused below as a TWM problem instead.
      const server: Server = createServer({ key: options.tls.key, cert: options.tls.cert, requireHostHeader: false }, (req, res) => {
        const route = direct ? directRoute(req) : undefined;
        if (route) direct!(req, res, route);
        else fastifyHandler(req, res);
      });
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      server.requestTimeout = REQUEST_TIMEOUT_MS;
      server.setTimeout(0);
      return server;
    },
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    // Refused notices stay out of the logs (section 13); faults are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: building one (pino bindings) was a measurable share of a
    // stranger's notice (bench/twm-stranger-cost.ts), and nothing is logged for a request that
    // succeeds or is refused. A fault names its request id (installErrorHandlers).
    childLoggerFactory: (logger) => logger,
    exposeHeadRoutes: false,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    clientErrorHandler: answerClientError,
    // A URL the router cannot take (bad escapes, a parameter over maxParamLength) skips the hooks: step 1 is counted here too.
    frameworkErrors: (err, request, reply) => {
      request.log.debug({ err }, 'TWM request refused by the framework');
      const wait = buckets.take(clientRateKey(request.ip), Date.now());
      const error = wait > 0 ? twmError('rate-limited', 'too many requests from this address', { retryAfter: wait }) : twmError('invalid-request', 'the request URL is not valid');
      void sendTwmProblem(reply, { code: wait > 0 ? 'rate-limited' : 'invalid-request', error });
    },
  });

  installBodyReader(app, TWM_REQUEST_LIMIT);
  installGuards(app, buckets);
  // Requests whose signature verified, by request: a later refusal names a domain that is not just claimed.
  const verified = new WeakMap<FastifyRequest, string>();
  const countRefusal = installErrorHandlers(app, hooks, verified);
  // Read per request: main.ts learns its authority only after listening on port 0 (tests, demo).
  // Normalised again only when the list changed (it only grows, once, after listening).
  let authorities: { from: string[]; normalised: string[] } = { from: [], normalised: [] };
  const ours = (): string[] => {
    const from = options.authorities;
    if (from.length !== authorities.from.length || from.some((a, i) => a !== authorities.from[i])) authorities = { from: [...from], normalised: from.map(normaliseAuthority) };
    return authorities.normalised;
  };
  const context = (): EndpointContext & VerifyContext => ({ hooks, options, authorities: ours(), now: now() });
  installEndpoints(app, context, verified);
  installCapabilities(app, options.maxMessageSize);
  await app.ready();
  if (options.direct !== false) direct = directHandler(app, buckets, context, countRefusal);
  return app;
}

/**
 * The direct path (direct.ts): a well-formed POST of notice, fetch or receipt answered on the
 * request event, with the same steps and answers as the fastify routes but without their lifecycle.
 */
function directHandler(
  app: FastifyInstance,
  buckets: ReturnType<typeof createTokenBuckets>,
  context: () => EndpointContext & VerifyContext,
  countRefusal: ReturnType<typeof installErrorHandlers>,
): (req: IncomingMessage, res: ServerResponse, route: DirectRoute) => void {
  // A closing server's answers (503) are fastify's.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  let requests = 0;
  const direct = (req: IncomingMessage, res: ServerResponse, route: DirectRoute): void => {
    if (closing) return void app.routing(req, res);
    // Refusals are answered inside; this only catches a failure to write the answer, which must not
    // become an unhandled rejection (it would end the process).
    serveDirect(req, res, route).catch((err: unknown) => {
      app.log.error({ err }, 'twm direct path: could not answer');
      res.destroy();
    });
  };
  const serveDirect = async (req: IncomingMessage, res: ServerResponse, route: DirectRoute): Promise<void> => {
    let signerDomain: string | undefined;
    let answer: TwmAnswer;
    let reading = false;
    try {
      // Step 1 as the onRequest hook takes it (fastify's request.ip is the socket's address).
      const wait = buckets.take(clientRateKey(req.socket.remoteAddress ?? ''), Date.now());
      if (wait > 0) throw twmError('rate-limited', 'too many requests from this address', { retryAfter: wait });
      reading = true;
      const body = await new Promise<Buffer>((resolve, reject) => readContent(req.headers, req, TWM_REQUEST_LIMIT, (err, b) => (err ? reject(err) : resolve(b!))));
      reading = false;
      const request: IncomingTwmRequest = { method: 'POST', target: req.url!, headers: req.headers, body };
      answer = await answerOf(route.endpoint, route.id, context(), request, (domain) => {
        signerDomain = domain;
      });
    } catch (err) {
      const refusal = asTwmRefusal(err, err instanceof TwmError ? app.log : app.log.child({ reqId: `direct-${++requests}` }));
      countRefusal(route.endpoint, refusal.code, signerDomain);
      answer = twmProblemAnswer(refusal);
      // As fastify does when the content could not be read: the rest of it may still be coming.
      if (reading) answer.headers.connection = 'close';
    }
    writeAnswer(res, answer);
  };
  return direct;
}

/** Headers on every answer, and step 1 of 5.4 (the per-client rate) before anything is read. */
function installGuards(app: FastifyInstance, buckets: ReturnType<typeof createTokenBuckets>): void {
  app.addHook('onSend', async (_request, reply) => {
    if (!reply.hasHeader('Cache-Control')) reply.header('Cache-Control', 'no-store');
    reply.header('X-Content-Type-Options', 'nosniff');
  });

  // Step 1, before anything is read: every request counts, on any path.
  app.addHook('onRequest', async (request) => {
    const wait = buckets.take(clientRateKey(request.ip), Date.now());
    if (wait > 0) throw twmError('rate-limited', 'too many requests from this address', { retryAfter: wait });
    // RFC 9112 3.2: an HTTP/1.1 request without Host is a 400.
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') throw twmError('invalid-request', 'no Host header');
  });

  // An Expect other than 100-continue: node would answer 417 itself; RFC 9110 10.1.1 lets us ignore it and answer the request.
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));
}

/** Every refusal leaves as a TWM problem document, counted per endpoint (and per verified signer). */
function installErrorHandlers(
  app: FastifyInstance,
  hooks: TwmAppOptions['hooks'],
  verified: WeakMap<FastifyRequest, string>,
): (endpoint: TwmEndpoint, code: TwmErrorCode, signerDomain?: string) => void {
  app.setErrorHandler((err, request, reply) => {
    const refusal = asTwmRefusal(err, err instanceof TwmError ? request.log : request.log.child({ reqId: request.id }));
    const endpoint = request.routeOptions.config?.twmEndpoint;
    if (endpoint) countRefusal(endpoint, refusal.code, verified.get(request));
    return sendTwmProblem(reply, refusal);
  });
  app.setNotFoundHandler((request, reply) => {
    // A method fastify has no route table for (PROPFIND, MKCOL...) lands here even on an endpoint's path, which gets 405 (4.1).
    if (ENDPOINT_PATH.test(pathOf(request))) {
      reply.header('Allow', 'POST');
      return sendPlainProblem(reply, 405, `${request.method} is not allowed here; use POST`);
    }
    return sendPlainProblem(reply, 404, `no TWM endpoint at ${pathOf(request)}`);
  });

  function countRefusal(endpoint: TwmEndpoint, code: TwmErrorCode, signerDomain?: string): void {
    try {
      hooks.onRefused?.(endpoint, code, signerDomain);
    } catch (err) {
      app.log.error({ err }, 'onRefused hook failed');
    }
  }
  return countRefusal;
}

/** The three signed endpoints (5.4): notice, fetch, receipt. */
function installEndpoints(app: FastifyInstance, context: () => EndpointContext & VerifyContext, verified: WeakMap<FastifyRequest, string>): void {
  route(app, 'notice', `${BASE}/notice`, async (request, reply) =>
    sendAnswer(reply, await answerOf('notice', '', context(), incoming(request), (domain) => verified.set(request, domain))),
  );
  route(app, 'fetch', `${BASE}/fetch/:id`, async (request, reply) => {
    const { id } = request.params as { id: string };
    return sendAnswer(reply, await answerOf('fetch', id, context(), incoming(request), (domain) => verified.set(request, domain)));
  });
  route(app, 'receipt', `${BASE}/receipt`, async (request, reply) =>
    sendAnswer(reply, await answerOf('receipt', '', context(), incoming(request), (domain) => verified.set(request, domain))),
  );
}

function sendAnswer(reply: FastifyReply, answer: TwmAnswer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/**
 * Steps 3-12 and the endpoint's own work, for fastify's routes and the direct path alike.
 * `verifiedAs` learns the signer domain once the signature verified (a later refusal names it).
 */
async function answerOf(
  endpoint: TwmEndpoint,
  id: string,
  ctx: EndpointContext & VerifyContext,
  req: IncomingTwmRequest,
  verifiedAs: (domain: string) => void,
): Promise<TwmAnswer> {
  if (endpoint === 'notice') {
    const { doc, signer, contentSha256, nonce } = await verifyTwmRequest(req, ctx, noticeRules(ctx));
    verifiedAs(signer.domain);
    const result = await acceptNotice(ctx, doc, signer, contentSha256, nonce);
    return { status: 200, headers: { 'content-type': TWM_MEDIA_TYPES.noticeResult }, body: noticeResultToJson(result) };
  }
  if (endpoint === 'fetch') {
    const { doc, signer, entitlement } = await verifyTwmRequest(req, ctx, fetchRules(ctx, id));
    verifiedAs(signer.domain);
    const message = await serveFetch(ctx, id, entitlement, doc, signer);
    return {
      status: 200,
      headers: { 'content-type': TWM_MEDIA_TYPES.message, 'content-length': String(message.length), 'content-digest': contentDigest(message) },
      body: message,
    };
  }
  const { doc, signer, entitlement } = await verifyTwmRequest(req, ctx, receiptRules(ctx));
  verifiedAs(signer.domain);
  await recordReceipt(ctx, entitlement, doc, signer);
  return { status: 204, headers: {} };
}

function installCapabilities(app: FastifyInstance, maxMessageSize: number): void {
  // The capability document (6.6 "Versions."): unsigned, the same for everyone, so it may be cached
  // for as long as a client keeps the SRV answer that led to it. Step 1 (the rate limit) applies.
  const capabilities = capabilitiesToJson({ versions: [...OUR_VERSIONS], maxSize: maxMessageSize });
  app.route({
    method: 'GET',
    url: CAPABILITIES_PATH,
    handler: async (_request, reply) => reply.code(200).type('application/json').header('Cache-Control', 'max-age=3600').send(capabilities),
  });
  app.route({
    method: ['POST', ...OTHER_METHODS.filter((m) => m !== 'GET')],
    url: CAPABILITIES_PATH,
    handler: async (request, reply) => {
      reply.header('Allow', 'GET');
      return sendPlainProblem(reply, 405, `${request.method} is not allowed here; use GET`);
    },
  });
}

/**
 * Requests node's HTTP parser refuses (a lower-case or unknown method, a
 * control character in a header, a header block over 16 KiB) are answered
 * with a problem document like any other refusal. Fastify's default writes
 * a JSON body and destroys the socket at once, which over TLS usually loses
 * the answer: the peer saw a dropped connection (found by
 * test/fuzz-twm.test.ts). Here the socket is ended, so the answer is flushed
 * first. A request that did not arrive within the request timeout, or a
 * connection already gone, gets nothing.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const answer =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? rawTwmProblem('too-large', 'the request header block is larger than this server reads')
      : rawTwmProblem('invalid-request', 'the request is not valid HTTP/1.1');
  socket.end(answer);
  // A peer that never reads its answer does not keep the socket.
  setTimeout(() => socket.destroy(), 5_000).unref();
}

/** The POST route of an endpoint, and 405 for every other method on the same path (nothing is read). */
function route(app: FastifyInstance, endpoint: TwmEndpoint, url: string, handler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>): void {
  app.route({ method: 'POST', url, config: { twmEndpoint: endpoint }, handler });
  const notAllowed = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('Allow', 'POST');
    return sendPlainProblem(reply, 405, `${request.method} is not allowed here; use POST`);
  };
  app.route({ method: OTHER_METHODS, url, onRequest: notAllowed, handler: notAllowed });
}

function incoming(request: FastifyRequest): IncomingTwmRequest {
  return {
    method: request.method,
    target: request.raw.url ?? request.url,
    headers: request.headers,
    // No body at all (no Content-Type, no length) reaches the handler as undefined.
    body: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
  };
}

/** The path without the query, for details: never echo a query back. */
function pathOf(request: FastifyRequest): string {
  const q = request.url.indexOf('?');
  return (q === -1 ? request.url : request.url.slice(0, q)).slice(0, 200);
}

export interface TwmListener {
  /** The bound port (the real one when 0 was asked for). */
  port: number;
  close(): Promise<void>;
}

export async function startTwmListener(options: { host: string; port: number; app: FastifyInstance }): Promise<TwmListener> {
  const { app } = options;
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return { port, close: () => app.close() };
}
