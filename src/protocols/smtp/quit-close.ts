/**
 * After `221` to QUIT, smtp-server half-closes the socket and keeps reading
 * until the client closes its side (or a deadline passes). Postfix's smtpd
 * closes the connection outright, as RFC 5321 4.1.1.10 has the receiver
 * do. Here too: once the 221 is in the kernel's send buffer, the socket is
 * destroyed, and the kernel still delivers the reply, then the FIN.
 *
 * Why: a client that closes with a reset (smtp-source, many bulk senders)
 * made every connection end in an ECONNRESET read error on the event loop:
 * one more wake-up and read, an error object, its stack formatted (with
 * source maps, through the source-map cache) and the stream's error path,
 * a few percent of the event loop's CPU per accepted message
 * (bench/accept-cpu.ts). The connection's slot (maxClients, the per-IP
 * count) is also free at once instead of when the client gets round to
 * closing.
 *
 * Such a connection skips smtp-server's `close()` too: its half-close (a
 * shutdown request, with its wake-up of libuv), the unpiping and resuming of
 * the socket and the deadline timer serve only a socket that stays open,
 * and they were set up and torn down again within the same call, once per
 * accepted message under one connection per message. What of `close()`
 * still matters is done here: the connection leaves the server's count and
 * is marked closing, and the parser dispatches nothing pipelined after QUIT.
 *
 * Only a plaintext socket whose reply is wholly written (nothing buffered in
 * Node) is destroyed here; a TLS session keeps smtp-server's half-close, so
 * that its close_notify and the 221 record are never cut short.
 */
import { connectionPrototype } from './smtp-server-internals.ts';

interface Connection {
  _socket: { destroyed: boolean; encrypted?: boolean; writableLength: number; destroy(): void };
  _server: { connections: Set<unknown> };
  _closing: boolean;
  _parser: { isClosed: boolean } | false;
  send(code: number, data: unknown, context?: unknown): unknown;
  close(): void;
}

let installed: Promise<void> | null = null;

export function installQuitClose(): Promise<void> {
  installed ??= (async () => {
    const proto = await connectionPrototype();
    const original = proto.handler_QUIT;
    proto.handler_QUIT = function (this: Connection, command: unknown, callback: () => void) {
      const socket = this._socket;
      if (socket.destroyed || socket.encrypted === true) return original.call(this, command, callback);
      this.send(221, 'Bye');
      // writableLength 0: the 221 went to the kernel in the write call itself (a small reply on
      // an idle connection always does), so closing the descriptor cannot drop it.
      if (socket.destroyed || socket.writableLength !== 0) {
        this.close();
        return callback();
      }
      this._server.connections.delete(this);
      this._closing = true;
      if (this._parser) this._parser.isClosed = true;
      socket.destroy();
      callback();
    };
  })();
  return installed;
}
