/**
 * smtp-server advertises AUTH in the EHLO reply even before STARTTLS (it
 * only refuses to use it then, with 538). A client that sees AUTH may send
 * its password in clear text before finding out, so, like Postfix's
 * smtpd_tls_auth_only, AUTH is advertised only on a TLS session unless
 * insecure authentication is explicitly allowed.
 */
import { connectionPrototype } from './smtp-server-internals.ts';

let installed: Promise<void> | null = null;

interface Connection {
  secure: boolean;
  _server: { options: { allowInsecureAuth?: boolean } };
}

export function installAuthAfterTls(): Promise<void> {
  installed ??= (async () => {
    const proto = await connectionPrototype();
    const original = proto.send;
    proto.send = function (this: Connection, code: number, data: unknown, context?: unknown) {
      if (code === 250 && Array.isArray(data) && !this.secure && !this._server.options.allowInsecureAuth) {
        data = data.filter((line) => typeof line !== 'string' || !line.startsWith('AUTH '));
      }
      return original.call(this, code, data, context);
    };
  })();
  return installed;
}
