/**
 * bench/results.md as parts, so that a partial run (`BENCH_ONLY=a,b npm run
 * bench`) can replace the summary rows and sections of the scripts it ran
 * and keep every other figure of the last report, instead of writing a
 * report with only its own.
 */

export interface ReportParts {
  /** The paragraphs between the title and `## Summary` (the machine line and notes). */
  intro: string[];
  /** The summary table's body rows, as written. */
  rows: string[];
  /** `## ...` sections after the summary, by their heading line (without `## `). */
  sections: Map<string, string>;
}

export function parseReport(text: string): ReportParts {
  const parts = text.split(/^## /m);
  const head = parts[0] ?? '';
  const intro = head
    .replace(/^# .*\n/, '')
    .split(/\n\n+/)
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const rows: string[] = [];
  const sections = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const title = part.slice(0, part.indexOf('\n')).trim();
    if (title === 'Summary') {
      // The header row and the separator come first; the chart line is not a row.
      rows.push(...part.split('\n').filter((l) => l.startsWith('| ')).slice(1));
      continue;
    }
    sections.set(title, `## ${part.trimEnd()}\n`);
  }
  return { intro, rows, sections };
}

/** The ratio and target of a summary row as written (`1.27×`, `≥ 1.5×`), for the chart. */
export function rowNumbers(row: string): { label: string; ratio: number | null; target: number | null } {
  const cells = row.split('|').map((c) => c.trim());
  const ratio = /^([\d.]+)×$/.exec(cells[5] ?? '')?.[1];
  const target = /^≥ ([\d.]+)×$/.exec(cells[6] ?? '')?.[1];
  return { label: cells[1] ?? '', ratio: ratio === undefined ? null : Number(ratio), target: target === undefined ? null : Number(target) };
}
