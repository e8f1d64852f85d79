/**
 * DKIM public keys parsed once per key record, not twice per signature.
 *
 * mailauth's verifier (lib/dkim/dkim-verifier.js, mailauth 4.x) calls
 * `getPublicKey` (lib/tools.js) for every signature: it parses the key record,
 * turns `p=` into a KeyObject (OpenSSL 3's PEM decoder tries every format in
 * turn: a few hundred microseconds), exports it back to PEM text, and
 * `crypto.verify` then parses that PEM again. For a message signed with an RSA
 * and an Ed25519 key that was about 2 ms of an authentication worker's CPU per
 * message in the relay benchmark, more than the signatures themselves
 * (bench/results.md, session 11).
 *
 * So `getPublicKey` is replaced, before the verifier loads (it takes the
 * function from lib/tools.js when it loads), by one that asks the resolver
 * exactly as the original does and, for a record it has seen, answers from a
 * small cache: the original's outcome depends only on the record text (`rr`),
 * the lookup type and the minimum RSA size, which make the cache key. A record
 * seen for the first time, or one the original refuses, goes to the original,
 * so every error and verdict stays mailauth's own. The key is handed back as
 * the KeyObject the original built, whose `toString()` is the original's PEM
 * text: `crypto.verify` uses it as it is, and the verifier's result
 * (`publicKey`, from `toString()`) is the same as before.
 *
 * `mailauthWithKeyCache()` installs it and then loads mailauth, in that order
 * whatever a bundler does with import statements (esbuild hoists an external
 * package's import above the code of the modules it inlines); mailauth-run.ts
 * takes mailauth from it. If the verifier was loaded before, nothing is
 * replaced and mailauth works as it always did (`dkimKeyCacheStats().active`
 * says which).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';

type Resolver = (name: string, rrtype: string) => Promise<unknown>;
interface PublicKeyResult {
  publicKey: string | KeyObject;
  rr: string;
  modulusLength?: number;
}
type GetPublicKey = (type: string, name: string, minBitLength: number | undefined, resolver: Resolver | undefined) => Promise<PublicKeyResult>;

/** Distinct key records kept: a sender uses a few; the bound only caps what strangers' records can take. */
const MAX_KEYS = 256;

const cache = new Map<string, { publicKey: KeyObject; modulusLength: number | undefined }>();
const stats = { active: false, hits: 0, misses: 0 };

const require = createRequire(import.meta.url);
const tools = require('mailauth/lib/tools.js') as { getPublicKey: GetPublicKey };
const original = tools.getPublicKey;

/** The record text as the original reads it from the TXT answer (lib/tools.js getPublicKey). */
function recordText(list: unknown): string {
  if (!Array.isArray(list) || list.length === 0) return '';
  return ([] as unknown[])
    .concat(list[0] || [])
    .join('')
    .replace(/\s+/g, '');
}

const cachedGetPublicKey: GetPublicKey = async (type, name, minBitLength, resolver) => {
  if (!resolver) return original(type, name, minBitLength, resolver);
  const list = await resolver(name, 'TXT');
  const rr = recordText(list);
  // The original's answer for this very list, without a second lookup.
  const same: Resolver = () => Promise.resolve(list);
  if (!rr) return original(type, name, minBitLength, same);
  const key = `${type}\n${minBitLength || 1024}\n${rr}`;
  const hit = cache.get(key);
  if (hit) {
    stats.hits++;
    return { publicKey: hit.publicKey, rr, modulusLength: hit.modulusLength };
  }
  stats.misses++;
  const res = await original(type, name, minBitLength, same);
  if (typeof res.publicKey !== 'string') return res;
  const pem = res.publicKey;
  const publicKey = createPublicKey(pem);
  // The verifier reports the key as `publicKey.toString()`: the original's PEM text, as before.
  Object.defineProperty(publicKey, 'toString', { value: () => pem });
  if (cache.size >= MAX_KEYS) cache.delete(cache.keys().next().value!);
  cache.set(key, { publicKey, modulusLength: res.modulusLength });
  return { publicKey, rr: res.rr, modulusLength: res.modulusLength };
};

type Mailauth = typeof import('mailauth');
let mailauth: Mailauth | undefined;

/** mailauth, loaded after the cache is installed (see above). */
export function mailauthWithKeyCache(): Mailauth {
  if (mailauth) return mailauth;
  // The verifier takes getPublicKey from lib/tools.js when it loads: replacing it later would not reach it.
  if (require.cache[require.resolve('mailauth/lib/dkim/dkim-verifier.js')] === undefined) {
    tools.getPublicKey = cachedGetPublicKey;
    stats.active = true;
  }
  mailauth = require('mailauth') as Mailauth;
  return mailauth;
}

/** Whether the cache is in use in this thread, and its hits and misses so far (tests). */
export function dkimKeyCacheStats(): { active: boolean; hits: number; misses: number } {
  return { ...stats };
}
