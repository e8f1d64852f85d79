/**
 * smtp-server does not export its connection and stream classes; the adaptations in
 * this folder need their prototypes, reached through the package's file layout (pinned to
 * 3.21.x in package.json). A layout change fails loudly at start-up.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ConnectionPrototype {
  send(code: number, data: unknown, context?: unknown): unknown;
  init(): void;
  connectionReady(next?: () => void): void;
  _setListeners(callback: () => void): void;
  _parseAddressCommand(name: string, command: string): ParsedAddressCommand | false;
  handler_QUIT(command: unknown, callback: () => void): void;
  close(): void;
}

/** What smtp-server's MAIL FROM / RCPT TO parser returns: the address and the ESMTP parameters. */
export interface ParsedAddressCommand {
  address: string;
  args: Record<string, string | true> | false;
  duplicate?: string;
}

let proto: Promise<ConnectionPrototype> | null = null;
let streamProto: Promise<StreamPrototype> | null = null;

/** smtp-server's command and DATA parser (a Writable fed by the socket), the parts data-scan.ts replaces. */
export interface StreamPrototype {
  _feedDataStream(chunk: Buffer, done: () => void): void;
  _countDataBytes(len: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, callback: () => void): void;
}

export function connectionPrototype(): Promise<ConnectionPrototype> {
  proto ??= (async () => {
    const entry = createRequire(import.meta.url).resolve('smtp-server');
    const file = join(dirname(entry), '..', 'esm', 'smtp-connection.js');
    const mod = (await import(pathToFileURL(file).href)) as { SMTPConnection?: { prototype: Partial<ConnectionPrototype> } };
    const p = mod.SMTPConnection?.prototype;
    for (const name of ['send', 'init', 'connectionReady', '_setListeners', '_parseAddressCommand', 'handler_QUIT', 'close'] as const) {
      if (typeof p?.[name] !== 'function') throw new Error(`smtp-server layout changed: no SMTPConnection.${name} in ${file}`);
    }
    return p as ConnectionPrototype;
  })();
  return proto;
}

export function streamPrototype(): Promise<StreamPrototype> {
  streamProto ??= (async () => {
    const entry = createRequire(import.meta.url).resolve('smtp-server');
    const file = join(dirname(entry), '..', 'esm', 'smtp-stream.js');
    const mod = (await import(pathToFileURL(file).href)) as { SMTPStream?: { prototype: Partial<StreamPrototype> } };
    const p = mod.SMTPStream?.prototype;
    for (const name of ['_feedDataStream', '_countDataBytes', '_endDataMode'] as const) {
      if (typeof p?.[name] !== 'function') throw new Error(`smtp-server layout changed: no SMTPStream.${name} in ${file}`);
    }
    return p as StreamPrototype;
  })();
  return streamProto;
}
