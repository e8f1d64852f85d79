/**
 * Route definitions that carry everything about a route in one value: its
 * method and path, its input schemas (zod), its success response, its docs
 * and its handler. The same values register the fastify routes (app.ts) and
 * generate the OpenAPI document (openapi.ts), so the document cannot drift
 * from what is served, and the handler's return type is checked against the
 * documented response schema.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ReplyError } from '../../core/errors.ts';
import type { User } from '../../core/types.ts';
import { checkAccess, requireAuth, type Auth } from './auth.ts';
import { InputError, parseInput, type InputIssue, type InputLocation } from './validation.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Media types of request bodies this API reads. */
export const JSON_TYPE = 'application/json';
export const VCARD_TYPES = ['text/vcard', 'text/x-vcard'] as const;

export interface BodySpec<B extends z.ZodType> {
  /** `json`: application/json; `vcard`: the raw text of a text/vcard body. */
  kind: 'json' | 'vcard';
  schema: B;
}

export interface ResponseSpec<R extends z.ZodType> {
  status: number;
  description: string;
  /** What the handler returns; documented as JSON unless `mediaType` says otherwise. */
  schema: R;
  /** A non-JSON response (e.g. message/rfc822): the handler returns a Buffer. */
  mediaType?: string;
}

export interface HandlerContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  request: FastifyRequest;
  reply: FastifyReply;
  /** The authenticated user; only protected routes may use it. */
  readonly user: User;
  readonly auth: Auth;
}

export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType, R extends z.ZodType> {
  method: Method;
  /** fastify syntax, `:name` for path parameters. */
  url: string;
  summary: string;
  description?: string;
  tag: string;
  /** false for the few routes reachable without credentials. */
  auth: boolean;
  /** true: the account's own settings and credentials, never reachable with an app password (403). */
  account?: boolean;
  /** true: reachable with any credential, a contacts-only app password's session too (logging out). */
  anyScope?: boolean;
  params?: P;
  query?: Q;
  body?: BodySpec<B>;
  response: ResponseSpec<R>;
  /** Declares a 404 answer in the docs (unknown id, no such sender, …). */
  notFound?: string;
  /** Declares a 409 answer in the docs. */
  conflict?: string;
  handler: (ctx: HandlerContext<z.output<P>, z.output<Q>, z.output<B>>) => Promise<z.input<R>>;
}

/** A route with its types erased, as app.ts and openapi.ts see it. */
export interface ApiRoute {
  method: Method;
  url: string;
  summary: string;
  description?: string;
  tag: string;
  auth: boolean;
  account?: boolean;
  anyScope?: boolean;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: BodySpec<z.ZodType>;
  response: ResponseSpec<z.ZodType>;
  notFound?: string;
  conflict?: string;
  run(request: FastifyRequest, reply: FastifyReply): Promise<unknown>;
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaTypeOf(header: string | undefined): string | undefined {
  const t = header?.split(';')[0]?.trim().toLowerCase();
  return t ? t : undefined;
}

function checkMediaType(spec: BodySpec<z.ZodType>, request: FastifyRequest): void {
  const got = mediaTypeOf(request.headers['content-type']);
  const ok = spec.kind === 'json' ? got === JSON_TYPE : (VCARD_TYPES as readonly string[]).includes(got ?? '');
  if (!ok) {
    const want = spec.kind === 'json' ? JSON_TYPE : VCARD_TYPES[0];
    // RFC 3463 5.6.1 "media not supported"; the HTTP status is what the client sees.
    throw new ReplyError(554, '5.6.1', `This route takes a ${want} body${got ? `, not ${got}` : ''}`, { status: 415 });
  }
}

const noQuery = z.strictObject({});

export function defineRoute<
  P extends z.ZodType = z.ZodUndefined,
  Q extends z.ZodType = z.ZodUndefined,
  B extends z.ZodType = z.ZodUndefined,
  R extends z.ZodType = z.ZodUndefined,
>(spec: RouteSpec<P, Q, B, R>): ApiRoute {
  const { handler, ...rest } = spec;
  return {
    ...rest,
    async run(request, reply) {
      if (spec.auth && !spec.anyScope) checkAccess(requireAuth(request), spec.account === true);
      if (spec.body) checkMediaType(spec.body, request);
      // Parse everything before reporting, so one answer names every bad field.
      const issues: InputIssue[] = [];
      const parse = (schema: z.ZodType, value: unknown, where: InputLocation): unknown => {
        try {
          return parseInput(schema, value, where);
        } catch (err) {
          if (!(err instanceof InputError)) throw err;
          issues.push(...err.issues);
          return undefined;
        }
      };
      const params = spec.params ? parse(spec.params, request.params, 'path') : undefined;
      // A route without a query schema accepts no query parameters at all.
      const query = parse(spec.query ?? noQuery, request.query, 'query');
      // Bodies sent to routes that take none (GET, DELETE) are ignored, as HTTP allows.
      const body = spec.body ? parse(spec.body.schema, request.body, 'body') : undefined;
      if (issues.length > 0) throw new InputError(issues);
      // Each value is what its own schema produced; the casts restore the static types lost through `unknown`.
      const ctx: HandlerContext<z.output<P>, z.output<Q>, z.output<B>> = {
        params: params as z.output<P>,
        query: query as z.output<Q>,
        body: body as z.output<B>,
        request,
        reply,
        get auth() {
          return requireAuth(request);
        },
        get user() {
          return requireAuth(request).user;
        },
      };
      reply.code(spec.response.status);
      if (spec.response.mediaType) reply.type(spec.response.mediaType);
      const out: unknown = await handler(ctx);
      // JSON answers go through their documented schema: zod objects drop
      // keys they do not name, so a field a service adds later cannot leak
      // out undocumented, and the document's shapes stay true.
      const json = !spec.response.mediaType && spec.response.status !== 204;
      return reply.send(json ? spec.response.schema.parse(out) : out);
    },
  };
}
