import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { SyncZlib, Z_NO_FLUSH, Z_SYNC_FLUSH } from './sync-zlib.ts';

describe('SyncZlib (COMPRESS=DEFLATE on the calling thread)', () => {
  it('deflates one stream that node:zlib inflates, each sync flush decodable on its own', () => {
    const d = SyncZlib.deflateRaw();
    const peer = zlib.createInflateRaw();
    const got: Buffer[] = [];
    peer.on('data', (b: Buffer) => got.push(b));
    // Larger than an output chunk, incompressible and repetitive parts, several pieces per flush.
    const flushes = [
      [Buffer.from('* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n')],
      [randomBytes(40_000), Buffer.from('x'.repeat(70_000)), Buffer.from('a OK done\r\n')],
      [Buffer.from('b OK done\r\n')],
    ];
    const sent: Buffer[] = [];
    for (const pieces of flushes) {
      const out: Buffer[] = [];
      for (let i = 0; i < pieces.length; i++) d.process(pieces[i]!, i === pieces.length - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH, (b) => void out.push(b));
      const wire = Buffer.concat(out);
      // A sync flush ends with the empty stored block 00 00 ff ff: the peer can decode up to here.
      assert.deepEqual([...wire.subarray(-4)], [0, 0, 0xff, 0xff]);
      sent.push(wire);
    }
    const plain = zlib.inflateRawSync(Buffer.concat(sent), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(plain, Buffer.concat(flushes.flat()));
    d.close();
  });

  it('inflates what node:zlib deflates, across arbitrary cuts', () => {
    const message = Buffer.concat([Buffer.from('a UID FETCH 1 (BODY.PEEK[])\r\n'.repeat(2000)), randomBytes(30_000)]);
    const compressed = zlib.deflateRawSync(message, { flush: zlib.constants.Z_SYNC_FLUSH });
    const i = SyncZlib.inflateRaw();
    const out: Buffer[] = [];
    for (let at = 0; at < compressed.length; at += 777) i.process(compressed.subarray(at, at + 777), Z_SYNC_FLUSH, (b) => void out.push(b));
    assert.deepEqual(Buffer.concat(out), message);
    i.close();
  });

  it('inflates a bomb a piece at a time, and stops when the sink says so', () => {
    // 64 MB of zeros in about 64 KB: deflate's ratio is about 1,000 to 1.
    const bomb = zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { flush: zlib.constants.Z_SYNC_FLUSH });
    const i = SyncZlib.inflateRaw();
    let pieces = 0;
    let largest = 0;
    i.process(bomb, Z_SYNC_FLUSH, (b) => {
      pieces++;
      largest = Math.max(largest, b.length);
      return pieces < 10;
    });
    assert.equal(pieces, 10);
    assert.ok(largest <= 16 * 1024, `a piece of ${largest} octets`);
    i.close();
  });

  it('throws on a corrupt stream and after close, without an unhandled error event', async () => {
    const i = SyncZlib.inflateRaw();
    // 0xff: a reserved block type (BTYPE 11), invalid in any deflate stream.
    const none = () => true;
    assert.throws(() => i.process(Buffer.from([0xff, 0xff, 0xff, 0xff]), Z_SYNC_FLUSH, none), /invalid/);
    assert.throws(() => i.process(Buffer.from('x'), Z_SYNC_FLUSH, none), /closed/);
    const d = SyncZlib.deflateRaw();
    d.close();
    assert.throws(() => d.process(Buffer.from('x'), Z_SYNC_FLUSH, none), /closed/);
    // The destroyed stream's error event comes on a later tick: no listener would crash the process.
    await new Promise((r) => setImmediate(r));
  });
});
