/** The messages between the authentication pool (auth-pool.ts) and its worker threads (auth-worker.ts). */
import type { MailauthParams, MailauthSummary } from './mailauth-run.ts';

/** A DNS error as it crosses threads: the fields mailauth and node:dns callers read. */
export interface WireError {
  message: string;
  code?: string;
  syscall?: string;
  hostname?: string;
}

export type ToWorker =
  /** One message to authenticate; `raw`'s buffer is transferred, not copied. */
  | { type: 'job'; id: number; raw: Uint8Array; params: MailauthParams }
  | { type: 'dns-answer'; id: number; ok: true; value: unknown }
  | { type: 'dns-answer'; id: number; ok: false; error: WireError };

export type FromWorker =
  /** Modules loaded, ready for a job. */
  | { type: 'ready' }
  /** A lookup for the main thread's resolver. */
  | { type: 'dns'; id: number; name: string; rrtype: string }
  /** The job's outcome, with its bytes transferred back. */
  | { type: 'done'; id: number; ok: true; summary: MailauthSummary; raw: Uint8Array }
  | { type: 'done'; id: number; ok: false; error: string; raw: Uint8Array };
