/**
 * A private certificate authority for the demo and the tests (issue #4):
 * TWM/1 requires verified TLS for the target host name in every setting
 * (docs/protocol.md section 4.2), so loopback demos and tests cannot use
 * self-signed or unverified certificates. Instead they create a CA, issue
 * server certificates for names like `twm.b.test`, and configure the CA as
 * the clients' trust anchor.
 *
 * Design note
 * - Keys come from node:crypto (RSA 2048: fast enough for tests, and the key
 *   type node-forge can sign with); node-forge only builds and signs the
 *   X.509 structures, which node:crypto cannot do.
 * - Server certificates carry what RFC 5280 verifiers and RFC 9525 name
 *   checks look at: subjectAltName (DNS names and IP addresses; no reliance
 *   on the CN), the serverAuth EKU, basicConstraints cA false, and an
 *   authority key identifier pointing at the CA.
 * - Not for production: nothing here protects the CA key beyond returning it.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface PemPair {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
}

const CA_YEARS = 10;
const SERVER_DAYS = 825;
/** Clocks of test machines and containers drift; an hour of backdating avoids "not yet valid". */
const BACKDATE_MS = 60 * 60 * 1000;

export function createPrivateCa(commonName: string): PemPair {
  const { publicPem, privatePem } = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem);
  cert.serialNumber = serialNumber();
  setValidity(cert, CA_YEARS * 365 * 24 * 3600 * 1000);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privatePem), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: privatePem };
}

/** A server certificate for `names` (DNS) and `ips`, signed by `ca`. */
export function issueCertificate(ca: PemPair, names: string[], ips: string[] = []): PemPair {
  if (names.length === 0 && ips.length === 0) throw new Error('issueCertificate: no names or addresses to certify');
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const { publicPem, privatePem } = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem);
  cert.serialNumber = serialNumber();
  setValidity(cert, SERVER_DAYS * 24 * 3600 * 1000);
  cert.setSubject([{ name: 'commonName', value: names[0] ?? ips[0]! }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      // GeneralName types of RFC 5280: 2 = dNSName, 7 = iPAddress.
      altNames: [...names.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.key), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: privatePem };
}

function rsaKeyPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicPem: publicKey, privatePem: privateKey };
}

/** 128 random bits, positive as RFC 5280 4.1.2.2 requires (top bit clear, and not a leading zero octet). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function setValidity(cert: forge.pki.Certificate, lifetimeMs: number): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + lifetimeMs);
}
