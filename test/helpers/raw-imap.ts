/**
 * A raw IMAP client for wire-level tests: sends exactly the octets given and
 * collects responses up to a tagged reply. Plain, implicit TLS or STARTTLS
 * (verifying the test server's certificate), and COMPRESS=DEFLATE.
 */
import net from 'node:net';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestServer } from './server.ts';

/** The test server's certificate: clients verify it (its SAN lists 127.0.0.1). */
export function serverCa(t: TestServer): string {
  return readFileSync(join(t.dir, 'data/tls/cert.pem'), 'utf8');
}

export class RawImap {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private inflate: zlib.InflateRaw | null = null;
  private deflate: zlib.DeflateRaw | null = null;
  closed = false;

  private constructor(private sock: net.Socket) {
    this.attach(sock);
  }

  private attach(sock: net.Socket): void {
    sock.on('data', (d: Buffer) => (this.inflate ? this.inflate.write(d) : this.push(d)));
    sock.on('close', () => {
      this.closed = true;
      this.notify();
    });
    sock.on('error', () => undefined);
  }

  private push(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    this.notify();
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static async connect(port: number, o: { tls?: boolean; ca?: string } = {}): Promise<RawImap> {
    const sock = o.tls ? tls.connect({ host: '127.0.0.1', port, ca: o.ca }) : net.connect({ host: '127.0.0.1', port });
    await once(sock, o.tls ? 'secureConnect' : 'connect');
    const c = new RawImap(sock);
    await c.readLine();
    return c;
  }

  get text(): string {
    return this.buf.toString('latin1');
  }

  /** Waits until the buffer matches, or `ms` passed; returns the buffer's text. */
  async waitFor(re: RegExp, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!re.test(this.text)) {
      if (this.closed) throw new Error(`connection closed; got:\n${this.text}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; got:\n${this.text}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.text;
  }

  async readLine(ms = 5000): Promise<string> {
    await this.waitFor(/\r\n/, ms);
    const i = this.buf.indexOf('\r\n');
    const line = this.buf.toString('latin1', 0, i);
    this.buf = this.buf.subarray(i + 2);
    return line;
  }

  write(data: string | Buffer): void {
    const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (this.deflate) {
      this.deflate.write(b);
      this.deflate.flush(zlib.constants.Z_SYNC_FLUSH);
    } else this.sock.write(b);
  }

  /** Sends `tag command` and returns everything up to and including the tagged line. */
  async cmd(tag: string, command: string | Buffer, ms = 10_000): Promise<string> {
    this.write(Buffer.concat([Buffer.from(`${tag} `), typeof command === 'string' ? Buffer.from(`${command}\r\n`, 'latin1') : command]));
    return this.until(tag, ms);
  }

  /** Takes the responses up to the line tagged `tag`. */
  async until(tag: string, ms = 10_000): Promise<string> {
    const re = new RegExp(`(^|\\r\\n)${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (OK|NO|BAD)[^\\r\\n]*\\r\\n`);
    const text = await this.waitFor(re, ms);
    const m = re.exec(text)!;
    const end = m.index + m[0].length;
    const out = text.slice(0, end);
    this.buf = this.buf.subarray(Buffer.byteLength(out, 'latin1'));
    return out;
  }

  async starttls(ca: string): Promise<void> {
    const r = await this.cmd('tls', 'STARTTLS');
    if (!/tls OK/.test(r)) throw new Error(r);
    this.sock.removeAllListeners('data');
    const t = tls.connect({ socket: this.sock, ca, host: '127.0.0.1', servername: undefined });
    await once(t, 'secureConnect');
    this.sock = t;
    this.attach(t);
  }

  async compress(): Promise<void> {
    const r = await this.cmd('z', 'COMPRESS DEFLATE');
    if (!/z OK/.test(r)) throw new Error(r);
    this.inflate = zlib.createInflateRaw();
    this.inflate.on('data', (d: Buffer) => this.push(d));
    this.deflate = zlib.createDeflateRaw();
    this.deflate.on('data', (d: Buffer) => this.sock.write(d));
  }

  close(): void {
    this.sock.destroy();
  }
}
