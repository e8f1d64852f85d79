/**
 * The TWM/1 endpoint's contract with the rest of the server (docs/protocol.md
 * sections 4-6). The wire module (server.ts) does everything that needs no
 * state: size and media-type checks, signature parsing and verification,
 * Content-Digest, JSON schemas, problem documents, the per-client-address
 * rate limit. Everything that needs state or policy comes through these
 * hooks, which main.ts wires to the services. Hooks signal refusals by
 * throwing `twmError(code, detail)` (core/twm-types.ts); any other error
 * becomes 503 `temporarily-unavailable`.
 */
import type { KeyObject } from 'node:crypto';
import type { FetchRequest, Notice, NoticeResult, Receipt, TwmErrorCode } from '../../core/twm-types.ts';

/** Who signed a request, once its signature verified (section 5.4 step 11). */
export interface TwmSigner {
  /** `<selector>._twoway.<domain>`, lower-case. */
  keyid: string;
  /** The signer domain (lower-case). */
  domain: string;
}

/** What the fetch and receipt endpoints need to know about a notice this server sent. */
export interface OutboundNoticeFacts {
  /** The recipient domain the notice went to (lower-case). */
  domain: string;
  /** The notice's `to`, lower-case. */
  to: string[];
  expires: Date;
}

export type TwmEndpoint = 'notice' | 'fetch' | 'receipt';

/** A verified request's nonce (step 12), as rememberNonce takes it. */
export interface TwmNonce {
  keyid: string;
  nonce: string;
  until: Date;
  created: Date;
}

export interface TwmServerHooks {
  /** Step 9 (notice): this server serves the domain (lower-case). */
  servesDomain(domain: string): boolean;
  /** Step 9 (fetch, receipt): a notice this server sent, by id; undefined if unknown or forgotten. */
  outboundNotice(id: string): Promise<OutboundNoticeFacts | undefined>;
  /**
   * Step 10: the Ed25519 public key published at `keyid` (section 3.2), or
   * null when there is no usable key. Throws `twmError('temporarily-unavailable')`
   * on a temporary DNS failure.
   */
  lookupKey(keyid: string): Promise<KeyObject | null>;
  /**
   * Step 12: records (keyid, nonce) until `until`. False if the pair was
   * already recorded (a replay). Either keeps the record across a restart,
   * or throws `twmError('stale-signature')` for signatures `created` before
   * the restart (section 5.5).
   */
  rememberNonce(keyid: string, nonce: string, until: Date, created: Date): Promise<boolean>;

  /**
   * A verified notice. `contentSha256` is the hex SHA-256 of the request
   * content (the id rules of section 5.5). Resolves with the notice result
   * after everything it reports is durable (section 8.1).
   */
  notice(notice: Notice, signer: TwmSigner, contentSha256: string): Promise<NoticeResult>;
  /**
   * Optional: `notice` that remembers the request's nonce itself (step 12), in
   * the same write as the notice, instead of a write of its own before it.
   * When given, step 12 is left to it for the notice endpoint: it must
   * remember the nonce on every path it takes (a repeated notice, a deferral,
   * a refusal), and throw `twmError('replay')` when the nonce was seen, in
   * preference to any other answer, exactly as if step 12 had come first.
   */
  noticeWithNonce?(notice: Notice, signer: TwmSigner, contentSha256: string, nonce: TwmNonce): Promise<NoticeResult>;
  /** A verified fetch (section 7.4): the message octets. */
  fetch(id: string, request: FetchRequest, signer: TwmSigner): Promise<Buffer>;
  /** A verified receipt, recorded durably before this resolves (section 6.4). */
  receipt(receipt: Receipt, signer: TwmSigner): Promise<void>;

  /**
   * Counts a refused request (metrics), by endpoint and code; `signerDomain` only when the
   * refusal came after the signature verified (step 11), so that the domain is not just claimed
   * (the failure reports of 6.6 count by it).
   */
  onRefused?(endpoint: TwmEndpoint, code: TwmErrorCode, signerDomain?: string): void;
}

export interface TwmServerOptions {
  hooks: TwmServerHooks;
  /**
   * This server's own `@authority` values (`host` or `host:port`, port
   * omitted for 443), lower-case: signatures naming another authority are
   * refused (section 5.1). Read at every request, so the caller may add its
   * own after listening on port 0.
   */
  authorities: string[];
  /** The recipient's message size limit (section 8.1: 422 message-too-large above it). */
  maxMessageSize: number;
  /** Per client address before verification (section 12.7): requests per second and burst. */
  clientRate?: { perSecond: number; burst: number };
  now?: () => Date;
}
