/**
 * Outbound address restrictions of TWM/1 (docs/protocol.md section 4.4):
 * whether a TWM client may connect to an address that came from DNS
 * controlled by someone else (server-side request forgery, section 12.8).
 *
 * Design note
 * - The parser is our own and strict: only dotted-quad IPv4 with decimal
 *   octets (no `127.1`, `0x7f.0.0.1`, `2130706433` or leading zeros, which
 *   some stacks read as octal) and RFC 4291 text IPv6 (optionally ending in a
 *   dotted quad). Anything else, including zone ids (`fe80::1%eth0`) and
 *   brackets, is malformed and therefore not public: refusing what we cannot
 *   read is the only safe answer here.
 * - IPv6 addresses that carry an IPv4 address are judged by that address:
 *   IPv4-mapped `::ffff:0:0/96` and IPv4-compatible `::/96` as section 4.4
 *   requires, and also the NAT64 well-known prefix `64:ff9b::/96` and 6to4
 *   `2002::/16`, since a translator or relay would deliver to the embedded
 *   IPv4 address just the same.
 */

/** IPv4 ranges of section 4.4: [network, prefix length]. */
const REFUSED_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
];

const REFUSED_V4_PARSED = REFUSED_V4.map(([net, bits]) => ({ net: parseIPv4(net)!, bits }));

/** True when `ip` is a well-formed IPv4 or IPv6 address outside every refused range. */
export function isPublicAddress(ip: string): boolean {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return isPublicV4(v4);
  const v6 = parseIPv6(ip);
  if (v6 === null) return false;
  return isPublicV6(v6);
}

function isPublicV4(addr: number): boolean {
  return !REFUSED_V4_PARSED.some(({ net, bits }) => inPrefix(addr, net, bits));
}

function inPrefix(addr: number, net: number, bits: number): boolean {
  // `>>> 0` keeps the arithmetic unsigned; a shift by 32 would be a no-op in JS, hence the guard.
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((addr & mask) >>> 0) === ((net & mask) >>> 0);
}

function isPublicV6(b: Uint8Array): boolean {
  const zeros = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  const v4At = (i: number): number => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;

  // ::/128, ::1/128 and IPv4-compatible ::/96 all start with 96 zero bits; `::` and `::1`
  // read as 0.0.0.0 and 0.0.0.1, which 0.0.0.0/8 refuses.
  if (zeros(0, 12)) return isPublicV4(v4At(12));
  // IPv4-mapped ::ffff:0:0/96.
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return isPublicV4(v4At(12));
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return isPublicV4(v4At(12));
  // 6to4 2002::/16 (RFC 3056): the relay's IPv4 address follows the prefix.
  if (b[0] === 0x20 && b[1] === 0x02) return isPublicV4(v4At(2));
  // fc00::/7 unique local.
  if ((b[0]! & 0xfe) === 0xfc) return false;
  // fe80::/10 link-local.
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return false;
  // ff00::/8 multicast.
  if (b[0] === 0xff) return false;
  return true;
}

/** Dotted-quad IPv4 as an unsigned 32-bit number, or null. */
function parseIPv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

/** RFC 4291 section 2.2 text form as 16 bytes, or null. */
function parseIPv6(text: string): Uint8Array | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const pieces = s.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (piece.includes('.')) {
        // A dotted quad may only be the last piece of the whole address.
        if (i !== pieces.length - 1) return null;
        const v4 = parseIPv4(piece);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return null;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === null || tail === null) return null;
  // A dotted quad in the head is only valid when there is no `::` after it.
  if (halves.length === 2 && halves[0]!.includes('.')) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    // `::` stands for at least one zero group.
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}
