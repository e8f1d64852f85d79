/**
 * The OpenAPI 3.1 document, generated from the route definitions (route.ts),
 * so every served route is described and every description is of a served
 * route. zod 4 emits JSON Schema draft 2020-12, which is OpenAPI 3.1's
 * schema dialect, so the schemas are used as they come.
 */
import { z } from 'zod';
import { defineRoute, VCARD_TYPES, type ApiRoute } from './route.ts';

type JsonObject = Record<string, unknown>;

/** JSON Schema of what a client sends (`io: input`: query strings before their numeric transform). */
function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonObject;
  return rest;
}

const problemRef = { $ref: '#/components/schemas/Problem' };
const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: problemRef } } });

/** `:name` (fastify) to `{name}` (OpenAPI). */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

function parameters(route: ApiRoute): JsonObject[] {
  const out: JsonObject[] = [];
  for (const [where, schema] of [
    ['path', route.params],
    ['query', route.query],
  ] as const) {
    if (!schema) continue;
    const json = schemaOf(schema, 'input');
    const props = (json.properties ?? {}) as Record<string, JsonObject>;
    const required = new Set((json.required ?? []) as string[]);
    for (const [name, prop] of Object.entries(props)) {
      const { description, ...propSchema } = prop;
      out.push({
        name,
        in: where,
        required: where === 'path' || required.has(name),
        ...(typeof description === 'string' ? { description } : {}),
        schema: propSchema,
      });
    }
  }
  return out;
}

function operation(route: ApiRoute): JsonObject {
  const { response } = route;
  const responses: JsonObject = {};
  responses[String(response.status)] =
    response.status === 204
      ? { description: response.description }
      : {
          description: response.description,
          content: response.mediaType
            ? { [response.mediaType]: { schema: { type: 'string', contentMediaType: response.mediaType } } }
            : { 'application/json': { schema: schemaOf(response.schema, 'output') } },
        };
  if (route.body || route.query || route.params) responses['400'] = problemResponse('Invalid input; `errors` names each bad field');
  if (route.auth) {
    responses['401'] = problemResponse('Missing or invalid credentials');
    if (!route.anyScope) {
      responses['403'] = problemResponse(
        route.account ? 'An app password (or a session opened with one) cannot use this route' : 'A contacts-only app password cannot use the API',
      );
    }
  } else if (route.method === 'POST' && route.url === '/api/session') responses['401'] = problemResponse('Wrong address or password');
  if (route.notFound) responses['404'] = problemResponse(route.notFound);
  if (route.conflict) responses['409'] = problemResponse(route.conflict);
  if (route.body) {
    responses['413'] = problemResponse('The body is too large');
    responses['415'] = problemResponse('Wrong Content-Type');
  }
  responses.default = problemResponse('Any other error');

  const op: JsonObject = {
    operationId: `${route.method.toLowerCase()}${openApiPath(route.url).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    // An empty requirement list overrides the document-wide security: the route is public.
    ...(route.auth ? {} : { security: [] }),
  };
  const params = parameters(route);
  if (params.length > 0) op.parameters = params;
  if (route.body) {
    op.requestBody = {
      required: true,
      content:
        route.body.kind === 'json'
          ? { 'application/json': { schema: schemaOf(route.body.schema, 'input') } }
          : Object.fromEntries(VCARD_TYPES.map((t) => [t, { schema: { type: 'string', contentMediaType: t } }])),
    };
  }
  op.responses = responses;
  return op;
}

export function buildOpenApi(routes: readonly ApiRoute[]): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routes) {
    paths[openApiPath(route.url)] ??= {};
    const path = paths[openApiPath(route.url)]!;
    path[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Two-Way Mail API',
      version: '1.0.0',
      description:
        'Manage a Two-Way Mail account: the address book that is the allowlist, the Screener of contact requests, and mail. Every error is an RFC 9457 problem (application/problem+json).',
    },
    security: [{ bearer: [] }, { basic: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A token from POST /api/session' },
        basic: { type: 'http', scheme: 'basic', description: 'The address and its password or an app password' },
      },
      schemas: {
        Problem: {
          type: 'object',
          description: 'RFC 9457 problem details',
          required: ['type', 'title', 'status', 'detail'],
          properties: {
            type: { type: 'string', format: 'uri-reference' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            instance: { type: 'string', format: 'uri-reference' },
            errors: {
              type: 'array',
              description: 'Validation errors only: one per bad field',
              items: {
                type: 'object',
                required: ['in', 'field', 'detail'],
                properties: { in: { enum: ['body', 'query', 'path'] }, field: { type: 'string' }, detail: { type: 'string' } },
              },
            },
          },
        },
      },
    },
  };
}

/**
 * GET /api/openapi.json, public. It takes the route list lazily because it
 * is itself one of the routes it describes; the document is built once.
 */
export function openApiRoute(routes: () => readonly ApiRoute[]): ApiRoute {
  let doc: JsonObject | undefined;
  return defineRoute({
    method: 'GET',
    url: '/api/openapi.json',
    tag: 'meta',
    auth: false,
    summary: 'This document',
    response: { status: 200, description: 'The OpenAPI 3.1 document', schema: z.record(z.string(), z.unknown()) },
    async handler() {
      doc ??= buildOpenApi(routes());
      return doc;
    },
  });
}
