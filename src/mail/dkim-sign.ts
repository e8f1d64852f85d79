/**
 * DKIM signing of every outgoing message with the domain's keys: one
 * RSA-SHA256 and one Ed25519-SHA256 signature (RFC 8463 recommends both
 * while verifiers catch up with Ed25519). Keys were validated at start
 * (config/materials.ts), so a bad key fails the start, not the first send.
 *
 * The keys are parsed once. mailauth's `dkimSign` takes PEM text and parses
 * it for every message, and with OpenSSL 3 `createPrivateKey` costs about a
 * millisecond per key (its decoder tries every format in turn): two keys were
 * about 2-3 ms of event-loop time per outgoing message, more than the RSA
 * signature itself (bench/results.md, relay profile). So the signer here is
 * mailauth's own `DkimSigner` (the same parser, body hashes, header
 * canonicalisation and header formatting) with its last step, `finalize`,
 * signing with KeyObjects made once, on libuv's thread pool rather than the
 * event loop.
 */
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Materials } from '../config/materials.ts';

export type DkimSigner = (raw: Buffer, domain: string) => Promise<Buffer>;

const CANONICALIZATION = 'relaxed/relaxed';

interface Signature {
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  key: KeyObject;
}

/** The parts of mailauth's DKIM signer used here (lib/dkim/dkim-signer.js and lib/tools.js, mailauth 4.x; untyped). */
interface MailauthSignerParts {
  DkimSigner: new (options: object) => {
    headers: { parsed: unknown } | null;
    headerList: unknown;
    bodyHashes: Map<string, { hash: string | null }>;
    signatureHeaders: string[];
    errors: unknown[];
    write(chunk: Buffer): boolean;
    end(): void;
    once(event: string, listener: (...args: unknown[]) => void): void;
  };
  writeToStream(stream: object, input: Buffer): Promise<void>;
  getSigningHeaderLines(parsed: unknown, fieldNames: unknown): unknown;
  defaultDKIMFieldNames: string;
  formatSignatureHeaderLine(type: string, values: Record<string, unknown>, folded: boolean): string;
  generateCanonicalizedHeader(type: string, lines: unknown, options: Record<string, unknown>): { canonicalizedHeader: Buffer; dkimHeaderOpts: Record<string, unknown> };
}

let parts: MailauthSignerParts | undefined;

/** Loaded on first use: mailauth is slow to load, and most CLI commands never sign. */
function mailauthParts(): MailauthSignerParts {
  if (parts) return parts;
  const require = createRequire(import.meta.url);
  const { DkimSigner } = require('mailauth/lib/dkim/dkim-signer.js') as Pick<MailauthSignerParts, 'DkimSigner'>;
  const tools = require('mailauth/lib/tools.js') as Pick<MailauthSignerParts, 'writeToStream' | 'getSigningHeaderLines' | 'formatSignatureHeaderLine' | 'defaultDKIMFieldNames'>;
  const { generateCanonicalizedHeader } = require('mailauth/lib/dkim/header/index.js') as Pick<MailauthSignerParts, 'generateCanonicalizedHeader'>;
  parts = { DkimSigner, generateCanonicalizedHeader, ...tools };
  return parts;
}

/** The DKIM-Signature header fields for `raw` (CRLF-terminated, RSA first), as mailauth's `dkimSign` would write them. */
async function signatureHeaders(raw: Buffer, domain: string, signatures: readonly Signature[]): Promise<string> {
  const m = mailauthParts();
  // The private keys are not given to mailauth: it would parse them. A placeholder makes it set up the
  // body hash of each signature; `finalize` below does the signing with the parsed keys.
  const signer = new m.DkimSigner({
    canonicalization: CANONICALIZATION,
    // mailauth's list (the fields present are signed) and the ownership-confirmation marker,
    // which docs/protocol.md 9.2 asks senders to sign: a receiver may ignore an unsigned one.
    headerList: `${m.defaultDKIMFieldNames}:TWM-Purpose`,
    signatureData: signatures.map((s) => ({ signingDomain: domain, selector: s.selector, algorithm: s.algorithm, privateKey: 'parsed once' })),
  });
  // One time for every signature of this message, read once. Without it mailauth stamps t= twice:
  // into the header it signs, then again into the header it writes (formatSignatureHeaderLine's
  // default), and a second that ticks between the two (an RSA signature on a busy thread pool)
  // gives a header whose signature does not verify.
  const signTime = new Date(Date.now());
  const finalize = async () => {
    if (!signer.headers) return;
    for (const s of signatures) {
      // The body hash mailauth computed for this signature's canonicalisation and hash (both sha256, relaxed body).
      const bodyHash = signer.bodyHashes.get('relaxed:sha256:')?.hash;
      if (!bodyHash) throw new Error('DKIM signing: no body hash');
      const lines = m.getSigningHeaderLines(signer.headers.parsed, signer.headerList);
      const { canonicalizedHeader, dkimHeaderOpts } = m.generateCanonicalizedHeader('DKIM', lines, {
        signingDomain: domain,
        selector: s.selector,
        algorithm: s.algorithm,
        canonicalization: CANONICALIZATION,
        bodyHash,
        signTime,
      });
      const rsa = s.algorithm === 'rsa-sha256';
      // RFC 8463: Ed25519 signs the SHA-256 of the canonicalised header, RSA-SHA256 the header itself.
      const data = rsa ? canonicalizedHeader : createHash('sha256').update(canonicalizedHeader).digest();
      // On libuv's thread pool (the callback form): an RSA-2048 signature is about a millisecond of CPU.
      const signature = await new Promise<Buffer>((resolve, reject) => sign(rsa ? 'rsa-sha256' : null, data, s.key, (err, sig) => (err ? reject(err) : resolve(sig))));
      dkimHeaderOpts.b = signature.toString('base64');
      signer.signatureHeaders.push(m.formatSignatureHeaderLine('DKIM', dkimHeaderOpts, true));
    }
  };
  (signer as unknown as { finalize: () => Promise<void> }).finalize = finalize;
  await m.writeToStream(signer, raw);
  if (signer.errors.length > 0) throw new Error(`DKIM signing failed for ${domain}: ${String(signer.errors[0])}`);
  if (signer.signatureHeaders.length !== signatures.length) throw new Error(`DKIM signing failed for ${domain}: no header section`);
  return signer.signatureHeaders.join('\r\n') + '\r\n';
}

export function createDkimSigner(keys: Materials['dkim']): DkimSigner {
  const signatures: Signature[] = [
    { selector: keys.rsa.selector, algorithm: 'rsa-sha256', key: createPrivateKey(keys.rsa.privateKey) },
    { selector: keys.ed25519.selector, algorithm: 'ed25519-sha256', key: createPrivateKey(keys.ed25519.privateKey) },
  ];
  return async (raw, domain) => Buffer.concat([Buffer.from(await signatureHeaders(raw, domain, signatures), 'utf8'), raw]);
}
