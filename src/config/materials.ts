/**
 * Key material a server needs before it listens: the TLS pair (generated
 * self-signed when the config names none) and the DKIM signing key. Both are
 * created once into the data directory with owner-only permissions and
 * validated at start, so a broken key is reported at start-up, not at the
 * first TLS handshake or the first signature.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { ConfigError, type Config } from './load.ts';

export interface Materials {
  tls: { key: string; cert: string };
  /** The two DKIM keys every outgoing message is signed with (RFC 8463 dual signing). */
  dkim: {
    rsa: { selector: string; privateKey: string; publicKeyBase64: string };
    ed25519: { selector: string; privateKey: string; publicKeyBase64: string };
  };
  /** Two-Way Mail's signing key, endpoint TLS pair and trust anchors; null when [twm] is off. */
  twm: {
    selector: string;
    privateKey: KeyObject;
    /** The raw 32-byte Ed25519 public key, base64 (the key record's `p=`). */
    publicKeyBase64: string;
    tls: { key: string; cert: string };
    trustAnchors: string[];
  } | null;
}

export function ensureMaterials(config: Config): Materials {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  if (config.tls.generated && !existsSync(config.tls.cert)) writeTlsPair(config);
  if (!existsSync(config.dkim.key)) writeDkimKey(config.dkim.key, 'rsa');
  if (!existsSync(config.dkim.ed25519Key)) writeDkimKey(config.dkim.ed25519Key, 'ed25519');
  if (config.twm.enabled && !existsSync(config.twm.key)) writeDkimKey(config.twm.key, 'ed25519');
  const tls = readTls(config.tls, 'tls');
  return {
    tls,
    dkim: {
      rsa: readDkim(config.dkim.key, 'dkim.key', config.dkim.selector, 'rsa'),
      ed25519: readDkim(config.dkim.ed25519Key, 'dkim.ed25519_key', config.dkim.ed25519Selector, 'ed25519'),
    },
    twm: config.twm.enabled ? readTwm(config, tls) : null,
  };
}

function readTwm(config: Config, tls: Materials['tls']): NonNullable<Materials['twm']> {
  const key = readDkim(config.twm.key, 'twm.key', config.twm.selector, 'ed25519');
  return {
    selector: config.twm.selector,
    privateKey: createPrivateKey(key.privateKey),
    publicKeyBase64: key.publicKeyBase64,
    tls: config.twm.tls ? readTls(config.twm.tls, 'twm.cert') : tls,
    trustAnchors: config.twm.trustAnchors.map((path) => {
      const pem = readText(path, 'twm.trust_anchors');
      try {
        new X509Certificate(pem);
      } catch (err) {
        throw new ConfigError(`key "twm.trust_anchors": ${path} is not a PEM certificate (${(err as Error).message})`);
      }
      return pem;
    }),
  };
}

function writeTlsPair(config: Config): void {
  const pair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const names = [config.hostname, ...config.domains];
  // Required on first use (synchronously, like the rest of this module): only `init` and a first start generate a pair.
  const selfsigned = createRequire(import.meta.url)('selfsigned') as typeof import('selfsigned');
  const pems = selfsigned.generate([{ name: 'commonName', value: config.hostname }], {
    days: 825,
    algorithm: 'sha256',
    // The typings of selfsigned 2 omit keyPair, which its code supports; a
    // node:crypto key avoids node-forge's slow pure-JS RSA key generation.
    ...({ keyPair: pair } as object),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'subjectAltName', altNames: [...names.map((value) => ({ type: 2, value })), { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  mkdirSync(dirname(config.tls.cert), { recursive: true, mode: 0o700 });
  writeFileSync(config.tls.key, pair.privateKey, { mode: 0o600 });
  writeFileSync(config.tls.cert, pems.cert, { mode: 0o644 });
}

function writeDkimKey(path: string, type: 'rsa' | 'ed25519'): void {
  const { privateKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, pem, { mode: 0o600 });
}

/** Reads and checks a PEM pair; `name` is the config key the errors name (`tls` or `twm.cert`). */
function readTls(paths: { cert: string; key: string }, name: 'tls' | 'twm.cert'): Materials['tls'] {
  const keyName = name === 'tls' ? 'tls.key' : 'twm.cert_key';
  const certName = name === 'tls' ? 'tls.cert' : 'twm.cert';
  const key = readText(paths.key, keyName);
  const cert = readText(paths.cert, certName);
  try {
    createPrivateKey(key);
  } catch (err) {
    throw new ConfigError(`key "${keyName}": ${paths.key} is not a PEM private key (${(err as Error).message})`);
  }
  try {
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      throw new ConfigError(`key "${certName}": ${paths.cert} does not match the private key ${paths.key}`);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`key "${certName}": ${paths.cert} is not a PEM certificate (${(err as Error).message})`);
  }
  return { key, cert };
}

function readDkim(path: string, key: string, selector: string, type: 'rsa' | 'ed25519'): Materials['dkim']['rsa'] {
  const privateKey = readText(path, key);
  let parsed: ReturnType<typeof createPrivateKey>;
  try {
    parsed = createPrivateKey(privateKey);
  } catch (err) {
    throw new ConfigError(`key "${key}": ${path} is not a PEM private key (${(err as Error).message})`);
  }
  if (parsed.asymmetricKeyType !== type) {
    throw new ConfigError(`key "${key}": ${path} is a ${parsed.asymmetricKeyType ?? 'unknown'} key, expected ${type}`);
  }
  const der = createPublicKey(parsed).export({ type: 'spki', format: 'der' });
  // RFC 8463: an Ed25519 record publishes the raw 32-byte key, not the SPKI structure.
  const publicKey = type === 'ed25519' ? der.subarray(der.length - 32) : der;
  return { selector, privateKey, publicKeyBase64: publicKey.toString('base64') };
}

function readText(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`key "${key}": cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** The DNS TXT value publishing a DKIM public key. */
export function dkimRecordValue(publicKeyBase64: string, type: 'rsa' | 'ed25519' = 'rsa'): string {
  return `v=DKIM1; k=${type}; p=${publicKeyBase64}`;
}
