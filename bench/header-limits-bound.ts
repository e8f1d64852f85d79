/**
 * The bound behind the header limits (docs/reliability.md, "Limits"): the
 * worst header sections the default limits let through, and how long each
 * per-message parser holds the event loop on them. Best of several runs, as
 * the machine is shared. Run: node --import tsx bench/header-limits-bound.ts
 */
import { createRequire } from 'node:module';
import { authenticate } from 'mailauth';
import { checkHeaderLimits, DEFAULT_HEADER_LIMITS } from '../src/core/header-limits.ts';
import { messageFacts, parseHeaders } from '../src/mail/headers.ts';
import { mimeNestingDepth } from '../src/mail/mime-depth.ts';
const require = createRequire(import.meta.url);
// mailauth's header parser itself, the quadratic one (lib/tools.js is not in its exports map, so by path).
const tools = require(require.resolve('mailauth').replace(/lib[/\\]mailauth\.js$/, 'lib/tools.js')) as { parseHeaders(b: Buffer): unknown };
const L = DEFAULT_HEADER_LIMITS;
const fill = (max: number, unit: string) => unit.repeat(Math.floor(max / unit.length));
const cases: Record<string, string> = {
  'A: 1,000 short fields': `From: a@b.test\r\n${'X-A: 0123456789012345678901234567890123456789012345678901\r\n'.repeat(999)}`,
  'B: 21,600 lines (216 fields x 100 lines)': `From: a@b.test\r\n${('X:\r\n' + ' \r\n'.repeat(99)).repeat(216)}`,
  'C: one 64 KB From: of 100 lines': `From: ${Array.from({ length: 100 }, (_, i) => `${fill(600, 'x')}${i}@b.test,`).join('\r\n ')}z@b.test\r\n`,
  'D: a 64 KB Subject of encoded words': `From: a@b.test\r\nSubject: ${Array.from({ length: 100 }, () => fill(600, '=?utf-8?q?=C3=A9?= ')).join('\r\n ')}\r\n`,
};
const resolver = async () => {
  throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
};
for (const [name, head] of Object.entries(cases)) {
  const raw = Buffer.from(head + '\r\nbody\r\n', 'latin1');
  const best = (f: () => unknown) => { let b = 1e9; for (let i = 0; i < 7; i++) { const t = performance.now(); f(); b = Math.min(b, performance.now() - t); } return b.toFixed(2); };
  let ok = true; try { checkHeaderLimits(raw, L); } catch (e) { ok = false; console.log(name, 'REFUSED', String(e)); }
  // The longest the event loop is held during authenticate() (its DNS lookups fail at once here):
  // the largest gap seen by a 0 ms timer, the best of 5 runs (the machine is shared).
  const auth = async () => {
    let best = 1e9;
    for (let i = 0; i < 5; i++) {
      let last = performance.now();
      let gap = 0;
      let on = true;
      const tick = () => { const now = performance.now(); gap = Math.max(gap, now - last); last = now; if (on) setImmediate(tick); };
      setImmediate(tick);
      // biome-ignore lint/suspicious/noExplicitAny: mailauth's resolver type is narrower than what it calls
      await authenticate(raw, { ip: '192.0.2.1', helo: 'x', sender: 'a@b.test', mta: 'mx', resolver: resolver as any, disableArc: true, disableBimi: true });
      on = false;
      gap = Math.max(gap, performance.now() - last);
      best = Math.min(best, gap);
    }
    return best.toFixed(2);
  };
  console.log(`${name} (${raw.length} B, within limits: ${ok}): checker ${best(() => checkHeaderLimits(raw, L))} ms; mailauth parseHeaders ${best(() => tools.parseHeaders(raw))} ms; authenticate() holds the loop ${await auth()} ms; ours parseHeaders+messageFacts ${best(() => messageFacts(parseHeaders(raw)))} ms; mimeNestingDepth ${best(() => mimeNestingDepth(raw, 100))} ms`);
}
