/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time per package or
 * source directory, per function, and inclusive time of selected functions.
 *
 *   npx tsx bench/lib/cpuprofile-summary.ts bench/out/prof/CPU.*.cpuprofile [--top 30]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Which bucket a frame's self time is charged to. */
export function category(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : `(native) ${functionName || 'anonymous'}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `pkg ${nm[1]}`;
  const src = /\/(src|bench|test)\/([^/]+)/.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  return url;
}

export function summarise(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  for (const [i, id] of profile.samples.entries()) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);

  const cats = new Map<string, number>();
  const funcs = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const cat = category(node.callFrame);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${cat}:${node.callFrame.lineNumber + 1}`;
    funcs.set(fn, (funcs.get(fn) ?? 0) + us);
    // Inclusive time per category along the stack (each category counted once per sample).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)!.callFrame;
      const key = `${c.functionName || '(anonymous)'} ${category(c)}:${c.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms`;
  const lines: string[] = [];
  lines.push(`profile: ${(total / 1e6).toFixed(2)} s sampled`);
  lines.push('', 'self time by package / source directory:');
  for (const [k, v] of [...cats].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', 'self time by function:');
  for (const [k, v] of [...funcs].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', 'inclusive time by function (project and selected libraries):');
  for (const [k, v] of [...inclusive]
    .filter(([k]) => / (src\/|pkg (mailauth|kysely|better-sqlite3|smtp-server|postal-mime|pino))/.test(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top * 2))
    lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const t = args.indexOf('--top');
  const top = t >= 0 ? Number(args.splice(t, 2)[1]) : 25;
  for (const file of args) {
    process.stdout.write(`== ${file}\n${summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, top)}\n\n`);
  }
}
