/**
 * smtp-server names each connection with 80 random bits in base 32
 * (`session.id`, 16 characters), drawn by `crypto.randomBytes(10)` and
 * converted through a BigInt: about 15 µs of the event loop per connection,
 * one connection per message under `smtp-source` (bench/results.md, session
 * 7). Without a PROXY header to read (the only case this server configures),
 * the same id comes from the pooled random bytes of core/random-pool.ts;
 * with one, smtp-server's own code runs unchanged.
 */
import { SMTPServer } from 'smtp-server';
import type { Socket } from 'node:net';
import { withRandomBytes } from '../../core/random-pool.ts';

interface ServerInternals {
  options: { ignoredHosts?: string[] };
  _expectsProxyHeader(socket: Socket): boolean;
  _handleProxy(socket: Socket, callback: (err: Error | null, options: { id: string; ignore?: boolean }) => void): void;
}

/** 80 random bits as 16 base-32 digits, as smtp-server writes them: two halves of 40 bits, 8 digits each. */
export function newSessionId(): string {
  return withRandomBytes(10, (b, o) => {
    const half = (i: number) => (b[i]! * 2 ** 32 + b.readUInt32BE(i + 1)).toString(32).padStart(8, '0');
    return half(o) + half(o + 5);
  });
}

let installed = false;

export function installPooledSessionIds(): void {
  if (installed) return;
  const proto = SMTPServer.prototype as unknown as Partial<ServerInternals>;
  const original = proto._handleProxy;
  if (typeof original !== 'function' || typeof proto._expectsProxyHeader !== 'function') {
    throw new Error('smtp-server layout changed: no SMTPServer._handleProxy or _expectsProxyHeader');
  }
  proto._handleProxy = function (this: ServerInternals, socket, callback) {
    if (this._expectsProxyHeader(socket)) return original.call(this, socket, callback);
    const ignore = Boolean(this.options.ignoredHosts?.includes(socket.remoteAddress ?? ''));
    const socketOptions = { id: newSessionId(), ignore };
    setImmediate(() => callback(null, socketOptions));
  };
  installed = true;
}
