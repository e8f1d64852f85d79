/**
 * smtp-server holds every new connection 100 ms before the greeting, to
 * catch clients that talk before they are greeted (spamware does; real MTAs
 * wait). Like Postfix's postscreen, an address that has already behaved
 * (reached MAIL FROM after waiting for the greeting) is greeted at once for
 * a while: the hold stays for strangers and is skipped for known peers,
 * which is what caps a busy relay's throughput (100 ms per connection).
 */
import { connectionPrototype } from './smtp-server-internals.ts';

const TRUST_MS = 60 * 60_000;
const MAX_TRUSTED = 50_000;

/** Addresses greeted without the hold, and until when. Shared by all listeners of the process. */
const trusted = new Map<string, number>();
let installed: Promise<void> | null = null;

interface Connection {
  remoteAddress: string;
  _server: { options: { maxClients?: number }; connections: { size: number } };
  name: string;
  send(code: number, data: unknown, context?: unknown): unknown;
  connectionReady(): void;
  _setListeners(callback: () => void): void;
}

export function installGreetingHold(): Promise<void> {
  installed ??= (async () => {
    const proto = await connectionPrototype();
    const original = proto.init;
    proto.init = function (this: Connection) {
      const until = trusted.get(this.remoteAddress);
      if (until === undefined || until < Date.now()) return original.call(this);
      // The same as smtp-server's init, without the timer.
      this._setListeners(() => {
        const { maxClients } = this._server.options;
        if (maxClients && this._server.connections.size > maxClients) {
          this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
          return;
        }
        this.connectionReady();
      });
    };
  })();
  return installed;
}

/** Records that an address waited for its greeting and went on to a transaction. */
export function trustClient(address: string): void {
  trusted.delete(address);
  trusted.set(address, Date.now() + TRUST_MS);
  if (trusted.size > MAX_TRUSTED) trusted.delete(trusted.keys().next().value!);
}
