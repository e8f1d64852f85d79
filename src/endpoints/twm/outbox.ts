/**
 * The sender's side of Two-Way Mail after the notice (docs/protocol.md
 * 7.2-7.5): serving fetches, recording receipts, expiry, status messages,
 * and the per-recipient status views of `twoway sent` and the API.
 *
 * Every state change is a conditional update in the store (the first final
 * state wins), so concurrent fetches, receipts and the expiry sweep cannot
 * undo one another. The body is deleted when no recipient can fetch it any
 * more: every recipient final, or the notice expired.
 */
import { TWM_OUT_FINAL, TWM_RECEIPT_GRACE_MS, twmError, type FetchRequest, type Receipt, type TwmOutState } from '../../core/twm-types.ts';
import { buildStatusMessage, type StatusLine } from '../../mail/status-message.ts';
import type { OutboundNoticeFacts, TwmSigner } from '../../protocols/twoway/types.ts';
import type { TwmOutboundRepository, TwmOutNotice } from '../../store/types.ts';
import { VISIBLE_STATUS } from '../../services/sent.ts';

const OPEN: readonly TwmOutState[] = ['queued', 'accepted', 'pending', 'fetched'];
const FETCHABLE: readonly TwmOutState[] = ['queued', 'accepted', 'pending'];

export interface TwmOutboxOptions {
  outbox: TwmOutboundRepository;
  hostname: string;
  /** Delivers a status message to a local user (through ingest, origin system). */
  notifyUser: (address: string, raw: Buffer) => Promise<void>;
  now?: () => Date;
  log?: (obj: object, msg: string) => void;
}

export function createTwmOutbox(options: TwmOutboxOptions) {
  const { outbox } = options;
  const now = options.now ?? (() => new Date());
  const log = options.log ?? (() => undefined);

  async function report(notice: TwmOutNotice, kind: 'failed' | 'expired', recipients: StatusLine[]): Promise<void> {
    if (recipients.length === 0 || !notice.sender) return;
    const raw = buildStatusMessage({
      hostname: options.hostname,
      to: notice.sender,
      kind,
      originalSubject: notice.subject,
      originalMessageId: notice.messageIdHeader,
      recipients,
    });
    await options.notifyUser(notice.sender, raw);
  }

  const hooks = {
    // One read each (the facts, then the body): every fetch and receipt asks.
    async outboundNotice(id: string): Promise<OutboundNoticeFacts | undefined> {
      const n = await outbox.facts(id);
      // Receipts are taken until the grace period after expiry ends (6.4); then the id is forgotten.
      if (!n || now().getTime() > n.expiresAt.getTime() + TWM_RECEIPT_GRACE_MS) return undefined;
      return { domain: n.domain, to: n.recipients, expires: n.expiresAt };
    },

    async fetch(id: string, request: FetchRequest, signer: TwmSigner): Promise<Buffer> {
      const n = await outbox.servable(id);
      if (!n) throw twmError('unknown-id', 'no such notice');
      if (now() > n.expiresAt) throw twmError('expired', 'the notice has expired');
      const rcpts = request.rcpt.map((r) => r.toLowerCase());
      // Served again on request (a recipient may crash between fetch and storage, 7.2); only open recipients change state.
      const body = n.body;
      if (!body) throw twmError('expired', 'the message is no longer held');
      // Not awaited: serving acknowledges nothing (7.2), so the body need not wait for this state's
      // fsync, which was one group commit on every delivery's path from notice to stored. The write
      // is queued before the body leaves, and the writer commits in order: the receipt, which comes
      // only after the recipient stored the body, finds `fetched` written. A crash in between only
      // leaves the state as it was (the receipt still moves it; an expiry says `expired`).
      outbox
        .transition(id, rcpts, { from: FETCHABLE, to: 'fetched' }, now())
        .catch((err: unknown) => log({ err, notice: id }, 'could not record the fetch of a TWM notice'));
      log({ notice: id, domain: signer.domain, rcpts: rcpts.length }, 'twm body served');
      return body;
    },

    async receipt(receipt: Receipt, signer: TwmSigner): Promise<void> {
      const at = now();
      const failed: StatusLine[] = [];
      // One conditional write per status; the store drops the body with the last open recipient.
      for (const { status, reason, rcpts } of groupReceipt(receipt)) {
        const changed = await outbox.transition(receipt.id, rcpts, { from: OPEN, to: status, reason }, at);
        if (status === 'failed') failed.push(...changed.map((recipient) => ({ recipient, status: 'failed', reason })));
      }
      log({ notice: receipt.id, domain: signer.domain, results: receipt.results.length }, 'twm receipt recorded');
      if (failed.length === 0) return;
      const n = await outbox.get(receipt.id);
      if (!n) throw twmError('unknown-id', 'no such notice');
      await report(n, 'failed', failed).catch((err: unknown) => log({ err, notice: n.id }, 'status message failed'));
    },
  };

  const sweep = () => sweepExpired(outbox, now(), report, log);

  return { hooks, sweep };
}

export type TwmOutbox = ReturnType<typeof createTwmOutbox>;

type Report = (notice: TwmOutNotice, kind: 'failed' | 'expired', recipients: StatusLine[]) => Promise<void>;

/** A receipt's results grouped by status and reason: one conditional write each. */
function groupReceipt(receipt: Receipt): Array<{ status: Receipt['results'][number]['status']; reason: string | null; rcpts: string[] }> {
  const byStatus = new Map<string, { status: Receipt['results'][number]['status']; reason: string | null; rcpts: string[] }>();
  for (const entry of receipt.results) {
    const reason = entry.status === 'failed' ? `the recipient server could not use the message: ${entry.error ?? 'a reason this server does not know'}` : null;
    const key = `${entry.status} ${reason}`;
    const group = byStatus.get(key) ?? { status: entry.status, reason, rcpts: [] };
    group.rcpts.push(entry.rcpt.toLowerCase());
    byStatus.set(key, group);
  }
  return [...byStatus.values()];
}

/**
 * Expiry (7.2): open recipients become `expired` at `expires`, fetched
 * ones `unconfirmed` at `expires` + 24 h; a notice whose last open
 * recipient went gets one status message listing every recipient not
 * delivered. Returns how many recipients changed.
 */
async function sweepExpired(outbox: TwmOutboundRepository, at: Date, report: Report, log: (obj: object, msg: string) => void): Promise<number> {
  let changed = 0;
  const touched = new Set<string>();
  for (const [states, before, to] of [
    [FETCHABLE, at, 'expired'],
    [['fetched'] as const, new Date(at.getTime() - TWM_RECEIPT_GRACE_MS), 'unconfirmed'],
  ] as const) {
    for (;;) {
      const batch = await outbox.expiring(states, before, 100);
      for (const n of batch) {
        const open = n.recipients.filter((r) => (states as readonly TwmOutState[]).includes(r.state)).map((r) => r.recipient);
        changed += (await outbox.transition(n.id, open, { from: states, to }, at)).length;
        touched.add(n.id);
      }
      if (batch.length < 100) break;
    }
  }
  for (const id of touched) await reportExpired(outbox, id, at, report, log);
  return changed;
}

/** Drops an expired notice's body, and sends its one status message once every recipient is final. */
async function reportExpired(outbox: TwmOutboundRepository, id: string, at: Date, report: Report, log: (obj: object, msg: string) => void): Promise<void> {
  const n = await outbox.get(id);
  if (!n) return;
  // Past expiry nobody may fetch (7.4), even if a fetched recipient's receipt is still awaited.
  if (!n.bodyRemoved && n.expiresAt <= at) await outbox.removeBody(id);
  if (n.expiryReported || n.recipients.some((r) => !TWM_OUT_FINAL.has(r.state))) return;
  const lines = n.recipients.filter((r) => r.state !== 'delivered').map((r) => ({ recipient: r.recipient, status: VISIBLE_STATUS[r.state], reason: r.reason }));
  try {
    await report(n, 'expired', lines);
    await outbox.setExpiryReported(id);
  } catch (err) {
    log({ err, notice: id }, 'expiry status message failed; retried at the next sweep');
  }
}
