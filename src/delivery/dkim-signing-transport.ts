/**
 * DKIM at the SMTP hand-off: every message of ours that leaves by SMTP
 * passes here on its way to the SMTP transport, and gets its RSA-SHA256 and
 * Ed25519-SHA256 signatures (mail/dkim-sign.ts) only now.
 *
 * Why not at submission: a message delivered over Two-Way Mail needs no
 * DKIM. The recipient fetches it from the sender domain's own server (found
 * through DNS, over verified TLS, with signed requests), and the notice's
 * signature authenticates the `from` domain (docs/protocol.md 7.6). Signing
 * every message at submission cost the sender about a millisecond of CPU per
 * message (an RSA-2048 signature plus mailauth's canonicalisation) that TWM
 * never used. So the queue, the Sent copy and TWM's served body hold the
 * message as submitted, and SMTP, which needs the signatures, pays for them.
 *
 * - The signing domain is the one the message goes out as
 *   (`mail/relay.ts` `twmIdentity`, the same rule as TWM's notice): the
 *   author's From: when it is ours, else a list's or forwarder's Sender:.
 *   A message with neither under a domain we sign for goes unsigned.
 * - Signed once per message per worker round: the queue worker hands every
 *   recipient domain of one message in a round the same body Buffer, so the
 *   signed form is kept per Buffer (weakly: it goes with the round). A retry
 *   reads the body again and signs again, with a later `t=`.
 */
import { domainOf } from '../core/address.ts';
import type { DkimSigner } from '../mail/dkim-sign.ts';
import { parseHeaders } from '../mail/headers.ts';
import { twmIdentity } from '../mail/relay.ts';
import type { Transport } from './types.ts';

export interface DkimSigningTransportOptions {
  /** The SMTP transport the signed messages go to. */
  smtp: Transport;
  sign: DkimSigner;
  /** Domains we sign for (lower-case). */
  domains: string[];
}

/** The domain `raw` is signed for when it leaves by SMTP, or null (not ours: unsigned). */
export function dkimSigningDomain(raw: Buffer, ours: (domain: string) => boolean): string | null {
  const identity = twmIdentity(parseHeaders(raw), ours);
  return identity === null ? null : domainOf(identity.from);
}

export function createDkimSigningTransport(options: DkimSigningTransportOptions): Transport {
  const ours = new Set(options.domains.map((d) => d.toLowerCase()));
  const isOurs = (domain: string) => ours.has(domain);
  const signed = new WeakMap<Buffer, Promise<Buffer>>();

  function signedForm(raw: Buffer): Promise<Buffer> {
    let pending = signed.get(raw);
    if (!pending) {
      const domain = dkimSigningDomain(raw, isOurs);
      pending = domain === null ? Promise.resolve(raw) : options.sign(raw, domain);
      // A failure is not kept: the worker defers the call (a local error), and the next call tries again.
      pending.catch(() => signed.delete(raw));
      signed.set(raw, pending);
    }
    return pending;
  }

  return {
    async deliver(domain, message, recipients) {
      const raw = await signedForm(message.raw);
      return options.smtp.deliver(domain, raw === message.raw ? message : { ...message, raw }, recipients);
    },
    async close() {
      await options.smtp.close?.();
    },
  };
}
