/**
 * JSON as TWM/1 reads it (docs/protocol.md 1.3): UTF-8 without a byte-order
 * mark, and a duplicate member name makes the text invalid. JSON.parse
 * accepts both (last member wins), which would let two readers of the same
 * signed octets see different values, so we check before trusting it.
 */

export class JsonTextError extends Error {}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function parseJsonStrict(octets: Buffer): unknown {
  let text: string;
  try {
    text = UTF8.decode(octets);
  } catch {
    throw new JsonTextError('not UTF-8');
  }
  if (text.startsWith('\uFEFF')) throw new JsonTextError('byte-order mark');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new JsonTextError('not JSON');
  }
  const duplicate = findDuplicateMember(text);
  if (duplicate !== undefined) throw new JsonTextError(`duplicate member ${JSON.stringify(duplicate)}`);
  return value;
}

/**
 * The first member name repeated within one object, compared after
 * unescaping. Only called on text JSON.parse accepted, so the scan can
 * trust the grammar: a string right after `{` or after `,` inside an object
 * is a member name.
 */
export function findDuplicateMember(text: string): string | undefined {
  // One entry per open container: the names seen for an object, null for an array.
  const stack: Array<Set<string> | null> = [];
  let expectName = false;
  // Char codes, not one-character strings: this scan runs over every signed request's body.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let j = i + 1;
      let escaped = false;
      for (let d = text.charCodeAt(j); d !== QUOTE; d = text.charCodeAt(j)) {
        if (d === BACKSLASH) {
          escaped = true;
          j += 2;
        } else j++;
      }
      const top = stack[stack.length - 1];
      if (expectName && top) {
        // Only a name with escapes needs unescaping to compare.
        const name = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.has(name)) return name;
        top.add(name);
        expectName = false;
      }
      i = j;
    } else if (c === OPEN_OBJECT) {
      stack.push(new Set());
      expectName = true;
    } else if (c === OPEN_ARRAY) {
      stack.push(null);
      expectName = false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      stack.pop();
    } else if (c === COMMA) {
      expectName = stack[stack.length - 1] instanceof Set;
    }
  }
  return undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
