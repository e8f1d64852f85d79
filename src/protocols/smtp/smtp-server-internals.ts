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
  proto ??= prototypeOf<ConnectionPrototype>('smtp-connection.js', 'SMTPConnection', ['send', 'init', 'connectionReady', '_setListeners', '_parseAddressCommand', 'handler_QUIT', 'close']);
  return proto;
}

export function streamPrototype(): Promise<StreamPrototype> {
  streamProto ??= prototypeOf<StreamPrototype>('smtp-stream.js', 'SMTPStream', ['_feedDataStream', '_countDataBytes', '_endDataMode']);
  return streamProto;
}

/** The prototype of the class `name` exported by smtp-server's `file`, checked to have every method in `methods`. */
async function prototypeOf<P>(file: string, name: string, methods: ReadonlyArray<keyof P & string>): Promise<P> {
  const entry = createRequire(import.meta.url).resolve('smtp-server');
  const path = join(dirname(entry), '..', 'esm', file);
  const mod = (await import(pathToFileURL(path).href)) as Record<string, { prototype: Record<string, unknown> } | undefined>;
  const p = mod[name]?.prototype;
  for (const m of methods) {
    if (typeof p?.[m] !== 'function') throw new Error(`smtp-server layout changed: no ${name}.${m} in ${path}`);
  }
  return p as P;
}
