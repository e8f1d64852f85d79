/**
 * The spam filter's parts for the composition root, from `[spam]`: the
 * filter ingest scans strangers' mail with, and the worker that sends queued
 * learning to rspamd. `createSpamFilter(null)` (no [spam] section) is null:
 * nothing changes.
 */
import type { SpamConfig } from '../config/load.ts';
import type { IngestSpamFilter } from '../ingest/ingest.ts';
import type { SpamScan } from '../core/spam.ts';
import type { SpamLearningRepository } from '../store/types.ts';
import { startLearnWorker, type LearnWorker } from './learn-worker.ts';
import { createRspamdClient, type RspamdClient } from './rspamd-client.ts';

type Log = (obj: Record<string, unknown>, msg: string) => void;

export interface SpamFilter {
  client: RspamdClient;
  /** For createIngest's `spam` option. */
  ingest: IngestSpamFilter;
  /** Whether moves and Screener decisions queue learning. */
  learn: boolean;
  /** Starts the learning worker (when `learn`), claiming rows as `owner` for `leaseMs` at a time; null otherwise. */
  startLearning(repo: SpamLearningRepository, backoff: { baseMs: number; maxMs: number }, lease: { owner: string; leaseMs: number }): LearnWorker | null;
  /** Scans a TWM introduction as the plain-text message it would be (endpoints/twm/inbox.ts `scanIntro`). */
  scanIntro(input: { intro: string; from: string; to: string[] }): Promise<SpamScan>;
}

export function createSpamFilter(config: SpamConfig | null, log: { warn: Log; info: Log }): SpamFilter | null {
  if (!config) return null;
  const client = createRspamdClient({
    url: config.url,
    controllerUrl: config.controllerUrl,
    password: config.password,
    timeoutMs: config.timeoutMs,
    maxSize: config.maxSize,
    judge: config.judge,
    // At most once a minute, however many messages go unscanned meanwhile.
    onUnreachable: ({ why, error, skipped }) =>
      log.warn({ why, error, skipped, url: config.url, onUnreachable: config.onUnreachable }, 'rspamd unreachable: mail is not scanned'),
  });
  return {
    client,
    ingest: { scan: (input) => client.scan(input), onUnreachable: config.onUnreachable },
    learn: config.learn,
    // The notice's signature authenticated the sender's domain: rspamd's SPF, DKIM and DMARC have nothing to add.
    scanIntro: ({ intro, from, to }) => client.scan({ raw: introMessage(intro, from), envelopeFrom: from, recipients: to, senderAuthenticated: true }),
    startLearning(repo, backoff, lease) {
      if (!config.learn) return null;
      return startLearnWorker({ repo, client, backoff: { ...backoff, jitter: 0.1 }, owner: lease.owner, leaseMs: lease.leaseMs, log: log.info });
    },
  };
}

/**
 * The introduction as a plain-text message: the sender's address (signed by
 * its domain) as From:, the text as the body. The intro is one line without
 * CR or LF (core/twm-schema.ts), so it cannot add a header field.
 */
function introMessage(intro: string, from: string): Buffer {
  return Buffer.from(`From: <${from}>\r\nSubject: Contact request\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${intro}\r\n`, 'utf8');
}
