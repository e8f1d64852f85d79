/** The expected-sender card (docs/protocol.md 10.2) the extension writes, and the terms read back from a card. */

const pad = (n) => String(n).padStart(2, '0');

/** RFC 6350 UTC timestamp YYYYMMDDThhmmssZ. */
export function utcStamp(d) {
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
}

/** Folds a content line at 75 octets (ASCII here: every value is a domain or a token). */
function fold(line) {
  const out = [];
  for (let i = 0; i < line.length; i += i === 0 ? 75 : 74) out.push(line.slice(i, i + (i === 0 ? 75 : 74)));
  return out.join('\r\n ');
}

export function buildCard({ uid, site, from, until, uses }) {
  const params = ['PURPOSE=ownership-confirmation', `UNTIL=${utcStamp(until)}`, `USES=${uses}`];
  if (from) params.push(`FROM=${from}`);
  return [
    'BEGIN:VCARD',
    'VERSION:4.0',
    `UID:${uid}`,
    `FN:${site} (expected)`,
    'PRODID:-//twoway//browser extension//EN',
    `X-TWOWAY-EXPECT;${params.join(';')}:${site}`,
    'END:VCARD',
  ]
    .map(fold)
    .join('\r\n')
    .concat('\r\n');
}

/** The terms of the first X-TWOWAY-EXPECT of a card as the server rewrote it: {until: Date, uses: number|null} or null. */
export function readTerms(text) {
  const line = String(text)
    .replace(/\r?\n[ \t]/g, '')
    .split(/\r?\n/)
    .find((l) => /^([A-Za-z0-9-]+\.)?X-TWOWAY-EXPECT[;:]/i.test(l));
  if (!line) return null;
  const until = /;UNTIL="?(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/i.exec(line);
  const uses = /;USES="?(\d{1,4})/i.exec(line);
  if (!until) return null;
  const [, y, mo, d, h, mi, s] = until.map(Number);
  return { until: new Date(Date.UTC(y, mo - 1, d, h, mi, s)), uses: uses ? Number(uses[1]) : null };
}
