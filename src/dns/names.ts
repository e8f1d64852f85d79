/**
 * Domain-name helpers shared by the resolver cache, the embedded server and
 * the zone-file parser. The canonical form is lower case, without the
 * trailing dot ("" is the root), so names can be used directly as map keys.
 */

export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** True if `name` equals `apex` or lies below it (both canonical). */
export function isAtOrBelow(name: string, apex: string): boolean {
  if (apex === '') return true;
  return name === apex || name.endsWith(`.${apex}`);
}

/** The proper ancestors of a canonical name, nearest first, ending with "" (the root). */
export function ancestorsOf(name: string): string[] {
  const out: string[] = [];
  let rest = name;
  while (rest !== '') {
    const dot = rest.indexOf('.');
    rest = dot === -1 ? '' : rest.slice(dot + 1);
    out.push(rest);
  }
  return out;
}
