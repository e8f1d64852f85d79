/** The messages between the authentication pool (auth-pool.ts) and its worker threads (auth-worker.ts). */
import type { MailauthParams, MailauthSummary } from './mailauth-run.ts';
import type { StructureColumns } from '../core/prepared-body.ts';

/** A DNS error as it crosses threads: the fields mailauth and node:dns callers read. */
export interface WireError {
  message: string;
  code?: string;
  syscall?: string;
  hostname?: string;
}

export type ToWorker =
  /** One message to authenticate; `raw`'s buffer is transferred, not copied. */
  /** `prefix`: with it, the worker also prepares the stored form (`prefix`, the authentication headers, `raw`). */
  | { type: 'job'; id: number; raw: Uint8Array; params: MailauthParams; prefix?: string }
  | { type: 'dns-answer'; id: number; ok: true; value: unknown }
  | { type: 'dns-answer'; id: number; ok: false; error: WireError };

export type FromWorker =
  /** Modules loaded, ready for a job. */
  | { type: 'ready' }
  /** A lookup for the main thread's resolver. */
  | { type: 'dns'; id: number; name: string; rrtype: string }
  /** The job's outcome, with its bytes transferred back. */
  | { type: 'done'; id: number; ok: true; summary: MailauthSummary; raw: Uint8Array; stored?: WireStored; mimeDepth?: number }
  | { type: 'done'; id: number; ok: false; error: string; raw: Uint8Array };

/** The stored form a job with a `prefix` asked for (core/prepared-body.ts), its bytes transferred. */
export interface WireStored {
  /** The header lines before `raw`: the job's prefix and the summary's authentication headers. */
  prepend: string;
  raw: Uint8Array;
  sha256: string;
  columns: StructureColumns;
}
