/**
 * The summary chart of `npm run bench`: one horizontal bar per headline row,
 * the ratio of twoway to its peer (normalised so that more is better), on a
 * log scale with 1 (parity) and each row's target marked. Drawn as SVG by
 * hand (no chart library) and turned into PNG by `rsvg-convert` (Debian's
 * librsvg2-bin) or ImageMagick's `convert`, whichever is installed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export interface ChartRow {
  label: string;
  /** twoway relative to the peer, > 1 is better for twoway. */
  ratio: number;
  /** The target ratio, if there is one. */
  target: number | null;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function chartSvg(rows: ChartRow[], title: string): string {
  const width = 1040;
  const left = 430;
  const right = 60;
  const rowH = 34;
  const top = 60;
  const height = top + rows.length * rowH + 50;
  const min = 0.1;
  const max = Math.max(100, ...rows.map((r) => r.ratio * 1.2), ...rows.map((r) => (r.target ?? 1) * 1.2));
  const x = (v: number) => left + ((Math.log10(Math.max(min, v)) - Math.log10(min)) / (Math.log10(max) - Math.log10(min))) * (width - left - right);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const tick of [0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500].filter((t) => t <= max)) {
    parts.push(`<line x1="${x(tick)}" y1="${top - 8}" x2="${x(tick)}" y2="${height - 40}" stroke="${tick === 1 ? '#333' : '#ddd'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`);
    parts.push(`<text x="${x(tick)}" y="${height - 24}" text-anchor="middle" fill="#555">${tick}×</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const met = r.target === null ? r.ratio >= 1 : r.ratio >= r.target;
    parts.push(`<text x="${left - 10}" y="${y + 17}" text-anchor="end">${esc(r.label)}</text>`);
    const x0 = x(1);
    const x1 = x(r.ratio);
    parts.push(`<rect x="${Math.min(x0, x1)}" y="${y + 4}" width="${Math.max(2, Math.abs(x1 - x0))}" height="${rowH - 12}" fill="${met ? '#3a8f4a' : '#c9503c'}"/>`);
    const labelX = Math.max(x0, x1, r.target === null ? 0 : x(r.target)) + 6;
    parts.push(`<text x="${labelX}" y="${y + 17}" fill="#222">${r.ratio.toFixed(2)}×</text>`);
    if (r.target !== null) parts.push(`<line x1="${x(r.target)}" y1="${y + 1}" x2="${x(r.target)}" y2="${y + rowH - 5}" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`);
  });
  parts.push(`<text x="20" y="${height - 6}" fill="#555">twoway / peer (log scale; more is better for twoway). Dashed: target. Green: target met.</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes `svgPath` and, when a converter is installed, `pngPath`. Returns what was written. */
export function writeChart(rows: ChartRow[], title: string, svgPath: string, pngPath: string): string[] {
  writeFileSync(svgPath, chartSvg(rows, title));
  for (const [cmd, args] of [
    ['rsvg-convert', ['-o', pngPath, svgPath]],
    ['convert', [svgPath, pngPath]],
  ] as const) {
    const r = spawnSync(cmd, [...args], { stdio: 'ignore' });
    if (r.status === 0) return [svgPath, pngPath];
  }
  return [svgPath];
}
