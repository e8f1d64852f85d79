/**
 * Password hashing with scrypt (node:crypto; CPU only, no I/O).
 *
 * Format: `scrypt$N$r$p$<base64 salt>$<base64 hash>`. The parameters travel
 * with each hash, so raising the cost later still verifies old hashes; they
 * are bounded on read so a corrupted or hostile stored value cannot make
 * verification allocate gigabytes.
 *
 * Passwords are NFC-normalised first (as PRECIS OpaqueString, RFC 8265, does):
 * the same password typed on two systems that compose accented characters
 * differently must still match.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const N = 16384;
const R = 8;
const P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
export const MAX_PASSWORD_BYTES = 1024;

/** Upper bounds accepted when reading a stored hash. */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
/** scrypt needs about 128 * N * r bytes; refuse stored parameters above this. */
const MAX_MEMORY = 256 * 1024 * 1024;

function derive(password: Buffer, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** The password as bytes, or an Error saying why it is not acceptable. */
function passwordBytes(password: string): Buffer {
  if (password.length === 0) throw new Error('Password must not be empty');
  const bytes = Buffer.from(password.normalize('NFC'), 'utf8');
  if (bytes.length > MAX_PASSWORD_BYTES) {
    throw new Error(`Password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  return bytes;
}

// scrypt runs made by verifyPassword in this process. A login must cost one,
// whatever the account holds (test/security-app-passwords.test.ts counts them).
let derivations = 0;
/** How many scrypt verifications this process has run. */
export const verificationCount = (): number => derivations;

/**
 * Hashes a password for storage.
 * @throws Error for an empty password or one over 1024 bytes (UTF-8).
 */
export async function hashPassword(password: string): Promise<string> {
  const bytes = passwordBytes(password);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(bytes, salt, KEY_BYTES, { N, r: R, p: P });
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$');
}

interface StoredHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseStored(stored: string): StoredHash {
  const parts = stored.split('$');
  const [scheme, n, r, p, salt, key] = parts;
  const int = (s: string | undefined): number => (s !== undefined && /^[1-9][0-9]{0,9}$/.test(s) ? Number(s) : NaN);
  const b64 = /^[A-Za-z0-9+/]+={0,2}$/;
  const parsed = { n: int(n), r: int(r), p: int(p) };
  const ok =
    parts.length === 6 &&
    scheme === 'scrypt' &&
    parsed.n <= MAX_N &&
    (parsed.n & (parsed.n - 1)) === 0 && // scrypt's N must be a power of two
    parsed.n > 1 &&
    parsed.r <= MAX_R &&
    parsed.p <= MAX_P &&
    128 * parsed.n * parsed.r <= MAX_MEMORY &&
    b64.test(salt ?? '') &&
    b64.test(key ?? '');
  if (!ok) throw new Error('Stored password hash is malformed or uses unsupported parameters');
  const keyBuf = Buffer.from(key as string, 'base64');
  if (keyBuf.length < 16) throw new Error('Stored password hash is malformed or uses unsupported parameters');
  return { ...parsed, salt: Buffer.from(salt as string, 'base64'), key: keyBuf };
}

/**
 * Checks a password against a stored hash in constant time (for equal-length keys).
 * @throws Error for an empty or over-long password (the same rule as
 *   hashPassword, so no stored hash can match it) and for a malformed stored
 *   hash (a data fault, not a wrong password). Login code maps both to a
 *   failed login.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const bytes = passwordBytes(password);
  const h = parseStored(stored);
  derivations++;
  const key = await derive(bytes, h.salt, h.key.length, {
    N: h.n,
    r: h.r,
    p: h.p,
    // Node's default maxmem (32 MiB) is too small for some accepted parameters;
    // parseStored already bounded the real need by MAX_MEMORY.
    maxmem: MAX_MEMORY + 1024 * 1024,
  });
  return timingSafeEqual(key, h.key);
}
