/** The messages between the message writer (message-writer.ts) and its thread (message-writer-worker.ts). */
import { ExpectUsedUpError } from '../core/errors.ts';
import type { MessageSummary } from '../core/types.ts';
import type { NewMessage } from './types.ts';

export interface WriterStart {
  /** The SQLite file: the thread opens a connection of its own on it. */
  path: string;
}

export type ToWriter = { type: 'round'; id: number; items: readonly NewMessage[] } | { type: 'close' };

/** An error as it crosses the thread boundary: structured clone keeps no `code`, which callers classify by. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
}

export type FromWriter =
  | { type: 'ready' }
  | { type: 'committed'; id: number; summaries: MessageSummary[] }
  | { type: 'failed'; id: number; error: WireError }
  | { type: 'synced'; id: number }
  | { type: 'sync-failed'; id: number; error: WireError };

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const code = (err as { code?: unknown }).code;
  return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
}

/** Back to an error callers can classify: by its code (driver errors), or as the one class of ours a round throws. */
export function fromWire(wire: WireError): Error {
  if (wire.name === 'ExpectUsedUpError') return new ExpectUsedUpError(wire.message);
  return Object.assign(new Error(wire.message), { name: wire.name, ...(wire.code !== undefined ? { code: wire.code } : {}) });
}
