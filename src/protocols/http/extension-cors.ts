/**
 * CORS for the browser extension (docs/extension.md): the extension talks
 * to the user's server from its own origin (`chrome-extension://…`,
 * `moz-extension://…`) without any host permission, so the server answers
 * CORS for those origins only, and only on the paths the extension uses:
 * CardDAV (`/dav/`, `/.well-known/carddav`) and the creation of its app
 * password (`/api/me/app-passwords`). A web page cannot send such an Origin
 * header. No `Access-Control-Allow-Credentials`: the extension sends its
 * credential in the Authorization header itself, never cookies, so a
 * session cookie of the web app is never usable from there.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

const EXTENSION_ORIGIN = /^(chrome-extension|moz-extension):\/\/[a-z0-9-]{1,64}$/;
const PATHS = /^\/(dav\/|\.well-known\/carddav(?:$|[/?])|api\/me\/app-passwords(?:$|\?))/;
const METHODS = 'GET, PUT, DELETE, POST, PROPFIND, REPORT, OPTIONS';
const HEADERS = 'authorization, content-type, if-none-match, if-match, depth';

function extensionOrigin(request: FastifyRequest): string | null {
  const origin = request.headers.origin;
  if (typeof origin !== 'string' || !EXTENSION_ORIGIN.test(origin) || !PATHS.test(request.url)) return null;
  return origin;
}

export function installExtensionCors(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const origin = extensionOrigin(request);
    if (origin === null || request.method !== 'OPTIONS' || !request.headers['access-control-request-method']) return;
    // A preflight: answered here, before any authentication (it carries no credentials).
    return reply
      .code(204)
      .header('access-control-allow-origin', origin)
      .header('access-control-allow-methods', METHODS)
      .header('access-control-allow-headers', HEADERS)
      .header('access-control-max-age', '600')
      .header('vary', 'origin')
      .send();
  });
  app.addHook('onSend', async (request, reply) => {
    const origin = extensionOrigin(request);
    if (origin === null) return;
    reply.header('access-control-allow-origin', origin);
    reply.header('access-control-expose-headers', 'etag, location');
    reply.header('vary', 'origin');
  });
}
