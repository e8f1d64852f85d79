/** Each configured listener accepts a TCP connection. */
import { connect } from 'node:net';
import { fail, ok, warn, type CheckResult } from './types.ts';

export interface ListenerToCheck {
  name: string;
  host: string;
  port: number;
}

/** A wildcard listen address is reached on loopback from this machine. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

export async function checkListener(l: ListenerToCheck, timeoutMs: number): Promise<CheckResult> {
  const label = `listener ${l.name}`;
  if (l.port === 0) return warn(label, `port 0 in the configuration: the server picks a port at start`, `set [${l.name}] port to the port peers use`);
  const host = reachableHost(l.host);
  const where = `${host.includes(':') ? `[${host}]` : host}:${l.port}`;
  const error = await new Promise<string | undefined>((resolve) => {
    const socket = connect({ host, port: l.port });
    const done = (e?: string) => {
      socket.destroy();
      resolve(e);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => done());
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
  if (error === undefined) return ok(label, `${where} accepts connections`);
  return fail(label, `${where}: ${error}`, `start the server (twoway start) or check [${l.name}] host and port and the firewall`);
}
