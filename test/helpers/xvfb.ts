/**
 * A private X display for a headed browser: Debian's Xvfb (package xvfb),
 * its screen kept in a file (`-fbdir`, XWD format) so that the test can see
 * the browser's own dialogs, which no CDP screenshot shows, and xdotool
 * (package xdotool) to press keys as the user would.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';

const XVFB = '/usr/bin/Xvfb';
const XDOTOOL = '/usr/bin/xdotool';

/** A reason to skip headed-browser tests locally (no Xvfb or xdotool); in CI a missing one fails instead. */
export const xvfbSkip =
  [XVFB, XDOTOOL].every((p) => existsSync(p)) || process.env.CI ? undefined : `no ${[XVFB, XDOTOOL].filter((p) => !existsSync(p)).join(' or ')} (apt-get install xvfb xdotool)`;

/** One screen's pixels, 0xRRGGBB each. */
export interface Screen {
  width: number;
  height: number;
  pixel(x: number, y: number): number;
}

export interface Xvfb {
  display: string;
  /** The screen as it is now. */
  screen(): Screen;
  png(path: string): void;
  /** xdotool with DISPLAY set: `key Tab`, `key Return`. */
  xdotool(...args: string[]): string;
  close(): Promise<void>;
}

/** Starts Xvfb on a display number it picks itself (-displayfd: no clash with other tests). */
export async function startXvfb(dir: string, size = '1280x900'): Promise<Xvfb> {
  const proc: ChildProcess = spawn(XVFB, ['-displayfd', '3', '-screen', '0', `${size}x24`, '-nolisten', 'tcp', '-fbdir', dir], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const number = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdio[3]!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
    proc.on('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${stderr}`)));
  });
  const display = `:${number}`;
  const file = join(dir, 'Xvfb_screen0');
  const screen = () => readXwd(readFileSync(file));
  return {
    display,
    screen,
    png: (path) => writeFileSync(path, toPng(screen())),
    xdotool: (...args) => execFileSync(XDOTOOL, args, { env: { ...process.env, DISPLAY: display }, encoding: 'utf8' }),
    async close() {
      if (proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill();
      await gone;
    },
  };
}

/** The XWD file Xvfb keeps (ZPixmap, 32 bits a pixel on a 24-bit screen). */
function readXwd(b: Buffer): Screen {
  const h = (i: number) => b.readUInt32BE(i * 4);
  const [headerSize, width, height, lsbFirst, bitsPerPixel, bytesPerLine, colors] = [h(0), h(4), h(5), h(7) === 0, h(11), h(12), h(19)];
  if (bitsPerPixel !== 32) throw new Error(`unexpected XWD: ${bitsPerPixel} bits a pixel`);
  const start = headerSize + colors * 12;
  return {
    width,
    height,
    pixel: (x, y) => {
      const at = start + y * bytesPerLine + x * 4;
      return (lsbFirst ? b.readUInt32LE(at) : b.readUInt32BE(at)) & 0xffffff;
    },
  };
}

/** How many pixels differ between two screens, in the rectangle [x0, x1) × [y0, y1). */
export function changed(a: Screen, b: Screen, box: { x0: number; y0: number; x1: number; y1: number }): number {
  let n = 0;
  for (let y = Math.max(0, box.y0); y < Math.min(a.height, box.y1); y++) for (let x = Math.max(0, box.x0); x < Math.min(a.width, box.x1); x++) if (a.pixel(x, y) !== b.pixel(x, y)) n++;
  return n;
}

function toPng(s: Screen): Buffer {
  const row = s.width * 3 + 1;
  const raw = Buffer.alloc(row * s.height);
  for (let y = 0; y < s.height; y++) {
    for (let x = 0; x < s.width; x++) {
      const v = s.pixel(x, y);
      raw.writeUIntBE(v, y * row + 1 + x * 3, 3);
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body) >>> 0, body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(s.width, 0);
  ihdr.writeUInt32BE(s.height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
