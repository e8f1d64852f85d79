/** Durations as people type them on a command line or in an API field. */

/** "90s", "30m", "2h", "7d" (also "1h30m") in milliseconds; null when unreadable or zero. */
export function parseDuration(text: string): number | null {
  const units: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
  const parts = /^(?:\d+[smhdw])+$/i.test(text.trim()) ? text.trim().toLowerCase().match(/\d+[smhdw]/g) : null;
  if (!parts) return null;
  const ms = parts.reduce((sum, p) => sum + Number(p.slice(0, -1)) * units[p.slice(-1)]!, 0);
  return ms > 0 && Number.isSafeInteger(ms) ? ms : null;
}
