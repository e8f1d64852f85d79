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
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectName && top) {
        const name = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(name)) return name;
        top.add(name);
        expectName = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectName = true;
    } else if (c === '[') {
      stack.push(null);
      expectName = false;
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectName = stack[stack.length - 1] instanceof Set;
    }
  }
  return undefined;
}
