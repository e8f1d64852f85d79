/**
 * The capability document of docs/protocol.md 6.6 ("Versions."), served at
 * `https://<target>/.well-known/twoway`:
 * `{"versions":["TWM1"],"max_size":52428800}`.
 *
 * Parsed strictly (issue "Bad input": a malformed document is treated as
 * absent, and absent means TWM/1): a UTF-8 JSON object without duplicate
 * members, `versions` a non-empty list of distinct version tokens
 * (`TWM<n>`), `max_size` if present a positive safe integer. Unknown members
 * are ignored, as everywhere in TWM (1.3); unknown version tokens are kept,
 * since listing a version we do not speak is what lets a later one be
 * negotiated.
 */
import { parseJsonStrict } from './json-strict.ts';

export const CAPABILITIES_PATH = '/.well-known/twoway';
/** The versions this implementation speaks, most preferred first. */
export const OUR_VERSIONS = ['TWM1'] as const;
/** A capability document is a few dozen octets; anything past this is not one. */
export const MAX_CAPABILITIES_OCTETS = 4096;

export interface TwmCapabilities {
  /** Most preferred first. */
  versions: string[];
  /** Octets; absent when the document does not say. */
  maxSize?: number;
}

const VERSION = /^TWM[1-9][0-9]{0,3}$/;

/** The document, or null when it is malformed in any way (then treated as absent). */
export function parseCapabilities(octets: Buffer): TwmCapabilities | null {
  if (octets.length === 0 || octets.length > MAX_CAPABILITIES_OCTETS) return null;
  let doc: unknown;
  try {
    doc = parseJsonStrict(octets);
  } catch {
    return null;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return null;
  const { versions, max_size: maxSize } = doc as Record<string, unknown>;
  if (!Array.isArray(versions) || versions.length === 0 || versions.length > 16) return null;
  if (!versions.every((v): v is string => typeof v === 'string' && VERSION.test(v))) return null;
  if (new Set(versions).size !== versions.length) return null;
  if (maxSize !== undefined && !(typeof maxSize === 'number' && Number.isSafeInteger(maxSize) && maxSize > 0)) return null;
  return { versions: [...versions], ...(maxSize === undefined ? {} : { maxSize }) };
}

export function capabilitiesToJson(c: TwmCapabilities): Buffer {
  return Buffer.from(JSON.stringify({ versions: c.versions, ...(c.maxSize === undefined ? {} : { max_size: c.maxSize }) }), 'utf8');
}

/**
 * The version to speak with a target (6.6): the first of its listed
 * versions that we speak; TWM/1 when the document is absent or lists none
 * we speak.
 */
export function chooseVersion(c: TwmCapabilities | null): string {
  return c?.versions.find((v) => (OUR_VERSIONS as readonly string[]).includes(v)) ?? 'TWM1';
}
