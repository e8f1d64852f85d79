/**
 * The TWM/1 HTTPS client's contract (docs/protocol.md sections 3.1, 4 and 5):
 * discovery of a domain's endpoints from DNS, and signed POSTs to them.
 * The client never takes a host or URL from anything but the SRV records of
 * the domain it is asked to reach, refuses private addresses unless `lab` is
 * on, connects to the address it checked, and follows no redirects.
 */
import type { KeyObject } from 'node:crypto';
import type { DnsResolver, SecureResolver } from '../dns/types.ts';
import type { PolicySource } from './twm-policy-source.ts';
import type { TwmCapabilities } from '../core/twm-capabilities.ts';

/** Section 3.1's lookup outcomes. A temporary DNS failure is thrown as `TwmUnreachableError`. */
export type TwmDiscovery =
  | {
      kind: 'twm';
      targets: Array<{ target: string; port: number; priority: number; weight: number }>;
      /** The SRV answer carried AD (section 3.4): the targets' TLSA records may then be used (3.5). */
      validated?: boolean;
    }
  | { kind: 'legacy' };

/** `[twm] dnssec` (section 3.4). */
export type DnssecMode = 'off' | 'prefer' | 'require';

/** The key a request is signed with: keyid `<selector>._twoway.<domain>`. */
export interface TwmSigningKey {
  selector: string;
  /** The signer domain (lower-case). */
  domain: string;
  privateKey: KeyObject;
}

export interface TwmResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: Buffer;
  /** `target:port` that answered (for logs and status messages). */
  endpoint: string;
  /** The answer was longer than `maxResponse`: `body` holds at most that many octets, the rest was not read. */
  truncated?: boolean;
}

export interface TwmClientOptions {
  resolver: DnsResolver;
  /** PEM trust anchors; empty or absent: Node's bundled public CAs. */
  trustAnchors?: string[];
  /** Allow loopback and private addresses (section 4.4). Off in production. */
  lab?: boolean;
  /** Connect + TLS timeout, and the time a request may go without progress. Default 30 s / 60 s. */
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  now?: () => Date;
  /** Section 3.4; default `off` (node:dns, AD unseen). Anything else needs `secure`. */
  dnssec?: DnssecMode;
  /** Queries that report the AD bit (section 3.4). */
  secure?: SecureResolver;
  /** Policies of domains that cannot sign (section 3.6); consulted for unvalidated answers. */
  policies?: PolicySource;
  /** A problem the operator should hear of (malformed record, policy mismatch); the caller rate-limits. */
  onProblem?: (domain: string, problem: string) => void;
}

export interface TwmClient {
  /** Looks up `_twoway._tcp.<domain>`. */
  discover(domain: string): Promise<TwmDiscovery>;
  /**
   * POSTs `body` to `path` at `domain`'s SRV targets in selection order
   * (section 3.1), signed with `key` (sections 5.1, 5.2). Moves to the next
   * address or target on connection/TLS failures, timeouts, 3xx, 429 and 5xx;
   * any other answer is returned. Reads at most `maxResponse` octets of the
   * answer (a longer one is returned `truncated`). Throws
   * `TwmUnreachableError` when no target gave a final answer (the last
   * answer, if any, is attached).
   */
  post(domain: string, path: string, contentType: string, body: Buffer, key: TwmSigningKey, options: { maxResponse: number }): Promise<TwmResponse>;
  /**
   * GETs `https://<target>/.well-known/twoway` at the first of `domain`'s
   * targets that answers (docs/protocol.md 6.6): the document, or null when
   * it is absent or malformed (then the target speaks TWM/1). Throws
   * `TwmUnreachableError` when no target answered at all.
   */
  capabilities(domain: string): Promise<TwmCapabilities | null>;
  close(): Promise<void>;
}

/** No target of a domain gave a final answer: temporary (retry later). */
/**
 * Why a domain's TWM setup failed validation at the client (docs/protocol.md 3.4-3.6), as the
 * result type its failure report counts (6.6, after RFC 8460's): a bogus or missing validated
 * answer, a policy that rules the targets out, a TLSA lookup that failed, a certificate that
 * matches no TLSA record, a certificate that does not verify for the target name.
 */
export type TwmValidationFailure = 'dnssec-invalid' | 'twm-policy-invalid' | 'tlsa-invalid' | 'dane-mismatch' | 'certificate-invalid';

export class TwmUnreachableError extends Error {
  readonly last: TwmResponse | undefined;
  /** Set when a validation failure (not the network) kept every target out. */
  readonly validation: TwmValidationFailure | undefined;
  /**
   * Every address tried proved not to be a TWM endpoint (a TLS identity failure, no TLS, or an
   * answer that is no TWM answer): a recipient gives up the fetch or receipt at once instead of
   * retrying (docs/protocol.md 12.2).
   */
  readonly permanent: boolean;
  constructor(message: string, last?: TwmResponse, permanent = false, validation?: TwmValidationFailure) {
    super(message);
    this.name = 'TwmUnreachableError';
    this.last = last;
    this.permanent = permanent;
    this.validation = validation;
  }
}

/**
 * The failure report's result type for an exchange that got no answer (docs/protocol.md 6.6): the
 * validation failure that kept the domain's targets out, else `<what>-not-twm` when every target
 * proved no TWM endpoint, else `<what>-unreachable`.
 */
export function reportType(err: unknown, what: 'notice' | 'fetch' | 'receipt'): string {
  if (!(err instanceof TwmUnreachableError)) return `${what}-unreachable`;
  return err.validation ?? (err.permanent ? `${what}-not-twm` : `${what}-unreachable`);
}
