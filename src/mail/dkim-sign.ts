/**
 * DKIM signing of every outgoing message with the domain's keys: one
 * RSA-SHA256 and one Ed25519-SHA256 signature (RFC 8463 recommends both
 * while verifiers catch up with Ed25519). Keys were validated at start
 * (config/materials.ts), so a bad key fails the start, not the first send.
 */
import type { Materials } from '../config/materials.ts';

export type DkimSigner = (raw: Buffer, domain: string) => Promise<Buffer>;

export function createDkimSigner(keys: Materials['dkim']): DkimSigner {
  return async (raw, domain) => {
    // mailauth's typings describe one flat signature; its signer takes signatureData[] for several.
    const options = {
      canonicalization: 'relaxed/relaxed',
      signatureData: [
        { signingDomain: domain, selector: keys.rsa.selector, privateKey: keys.rsa.privateKey, algorithm: 'rsa-sha256' },
        { signingDomain: domain, selector: keys.ed25519.selector, privateKey: keys.ed25519.privateKey, algorithm: 'ed25519-sha256' },
      ],
    };
    // Imported on first use: mailauth is slow to load, and most CLI commands never sign.
    const { dkimSign } = await import('mailauth');
    const result = await dkimSign(raw, options as unknown as Parameters<typeof dkimSign>[1]);
    if (result.errors?.length) throw new Error(`DKIM signing failed for ${domain}: ${String(result.errors[0])}`);
    return Buffer.concat([Buffer.from(result.signatures, 'utf8'), raw]);
  };
}
