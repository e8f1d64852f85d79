/** The HTTP JSON API: see app.ts for the request pipeline and openapi.ts for the document. */
export { apiRoutes, BODY_LIMIT, createHttpApp, startHttpListener, type HttpAppDeps, type HttpListener } from './app.ts';
export { buildOpenApi } from './openapi.ts';
export { PROBLEM_TYPE, WWW_AUTHENTICATE, type Problem } from './problem.ts';
export type { ApiRoute } from './route.ts';
