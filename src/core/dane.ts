/**
 * DANE for the TWM endpoint (docs/protocol.md 3.5): TLSA records at
 * `_<port>._tcp.<target>` (RFC 6698), used as RFC 7671 and RFC 7672 use them
 * for SMTP: only DANE-TA(2) and DANE-EE(3) are usable; PKIX-TA(0) and
 * PKIX-EE(1) are not (a TWM client has no single trust store the zone owner
 * could know). Pure: the caller does the DNS query (and insists on AD) and
 * hands over the presented certificate chain.
 *
 * - Parsing is strict: an unknown usage, selector or matching type, or a
 *   digest of the wrong length, makes that record unusable (RFC 7671 4.1:
 *   unusable records are ignored; if none is usable, DANE does not apply).
 * - DANE-EE(3): the leaf's certificate or key matches; names and dates are
 *   not checked (RFC 7671 5.1), the DNSSEC-signed record is the binding.
 * - DANE-TA(2): a certificate in the presented chain matches; the chain from
 *   the leaf up to it must verify link by link, the leaf must carry the SRV
 *   target's name and be within its dates (RFC 7671 5.2). The trust anchor
 *   must be in the presented chain (RFC 7671 5.2.2 asks servers to include it).
 */
import { createHash, X509Certificate } from 'node:crypto';

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

const DIGEST_LENGTH: Record<number, number | undefined> = { 1: 32, 2: 64 };

/** The usable records of a TLSA RRset; anything malformed or not usable for TWM is dropped. */
export function usableTlsa(records: unknown[]): TlsaRecord[] {
  const out: TlsaRecord[] = [];
  for (const r of records) {
    const t = parseTlsa(r);
    if (t && (t.usage === 2 || t.usage === 3)) out.push(t);
  }
  return out;
}

/** One TLSA rdata as dns-packet decodes it (`{ usage, selector, matchingType, certificate }`), or null. */
export function parseTlsa(value: unknown): TlsaRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const { usage, selector, matchingType } = v;
  const data = v.certificate;
  if (!isByte(usage) || !isByte(selector) || !isByte(matchingType) || !(data instanceof Uint8Array)) return null;
  if (usage > 3 || selector > 1 || matchingType > 2 || data.length === 0) return null;
  const want = DIGEST_LENGTH[matchingType];
  if (want !== undefined && data.length !== want) return null;
  return { usage, selector, matchingType, data: Buffer.from(data) };
}

export type DaneResult = { ok: true; usage: 2 | 3 } | { ok: false; problem: string };

/**
 * Checks a presented chain (DER, leaf first, as the server sent it) against
 * usable TLSA records for `hostname`. `now` for DANE-TA's date check.
 */
export function daneVerify(chainDer: Buffer[], records: TlsaRecord[], hostname: string, now: Date): DaneResult {
  if (records.length === 0) return { ok: false, problem: 'no usable TLSA records' };
  let certs: X509Certificate[];
  try {
    certs = chainDer.map((der) => new X509Certificate(der));
  } catch {
    return { ok: false, problem: 'the server sent a certificate that does not parse' };
  }
  const leaf = certs[0];
  if (!leaf) return { ok: false, problem: 'the server sent no certificate' };
  for (const r of records) {
    if (r.usage === 3 && matches(leaf, r)) return { ok: true, usage: 3 };
  }
  for (const r of records) {
    if (r.usage !== 2) continue;
    const at = certs.findIndex((c) => matches(c, r));
    if (at < 0) continue;
    if (!chainVerifies(certs.slice(0, at + 1))) continue;
    if (leaf.checkHost(hostname, { subject: 'default' }) === undefined) return { ok: false, problem: `DANE-TA: the certificate is not for ${hostname}` };
    const t = now.getTime();
    if (t < Date.parse(leaf.validFrom) || t > Date.parse(leaf.validTo)) return { ok: false, problem: 'DANE-TA: the certificate is outside its dates' };
    return { ok: true, usage: 2 };
  }
  return { ok: false, problem: 'no TLSA record matches the certificate chain' };
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  const selected = r.selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
  const value = r.matchingType === 0 ? selected : createHash(r.matchingType === 1 ? 'sha256' : 'sha512').update(selected).digest();
  return value.equals(r.data);
}

/** Each certificate is issued and signed by the next one. */
function chainVerifies(chain: X509Certificate[]): boolean {
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i];
    const parent = chain[i + 1];
    if (!child || !parent || !child.checkIssued(parent) || !child.verify(parent.publicKey)) return false;
  }
  return true;
}

function isByte(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
}
