import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mimeNestingDepth, mimeNestingDepthSliced } from './mime-depth.ts';

const nested = (depth: number, crlf = '\r\n'): Buffer => {
  let part = `Content-Type: text/plain${crlf}${crlf}core${crlf}`;
  for (let d = depth; d > 0; d--) part = `Content-Type: multipart/mixed;${crlf}\tboundary="n${d}"${crlf}${crlf}--n${d}${crlf}${part}${crlf}--n${d}--${crlf}`;
  return Buffer.from(`From: a@b.test${crlf}${part}`);
};

describe('mimeNestingDepth', () => {
  it('is 0 for a single part and counts multipart levels, folded boundaries and LF line ends included', () => {
    assert.equal(mimeNestingDepth(Buffer.from('Subject: x\r\n\r\nbody\r\n'), 100), 0);
    assert.equal(mimeNestingDepth(nested(1), 100), 1);
    assert.equal(mimeNestingDepth(nested(7), 100), 7);
    assert.equal(mimeNestingDepth(nested(7, '\n'), 100), 7);
  });

  it('counts siblings once and embedded messages as a level', () => {
    const msg = [
      'Content-Type: multipart/mixed; boundary=outer', '', '--outer', 'Content-Type: text/plain', '', 'a', '--outer',
      'Content-Type: multipart/alternative; boundary=inner', '', '--inner', 'Content-Type: text/plain', '', 'b', '--inner--',
      '--outer', 'Content-Type: message/rfc822', '', 'Subject: inner', 'Content-Type: multipart/mixed; boundary="deep"', '',
      '--deep', '', 'x', '--deep--', '--outer--', '',
    ].join('\r\n');
    assert.equal(mimeNestingDepth(Buffer.from(msg), 100), 3);
  });

  it('stops counting just above the limit', () => {
    assert.equal(mimeNestingDepth(nested(5000), 100), 101);
  });

  it('tolerates missing close delimiters and parts closed by an outer boundary', () => {
    const msg = ['Content-Type: multipart/mixed; boundary=a', '', '--a', 'Content-Type: multipart/mixed; boundary=b', '', '--b', '', 'x', '--a--', ''].join('\n');
    assert.equal(mimeNestingDepth(Buffer.from(msg), 100), 2);
    assert.equal(mimeNestingDepth(Buffer.from('Content-Type: multipart/mixed; boundary=""\n\n--\n'), 100), 0);
  });
});

describe('mimeNestingDepth on hostile bodies (issue 17)', () => {
  it('is linear in a folded part header (it was quadratic: 40,000 lines took 57 s)', () => {
    const folded = (lines: number) =>
      Buffer.from(`From: a@b.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed;\r\n${' x=y;\r\n'.repeat(lines)} boundary=c\r\n\r\n--c\r\n\r\nbody\r\n--c--\r\n--b--\r\n`);
    assert.equal(mimeNestingDepth(folded(10), 100), 2);
    const t0 = performance.now();
    assert.equal(mimeNestingDepth(folded(100_000), 100), 2);
    assert.ok(performance.now() - t0 < 2_000, `${performance.now() - t0} ms`);
  });

  it('the sliced version gives the same answers and lets timers run during a 25 MB body of tiny parts', async () => {
    assert.equal(await mimeNestingDepthSliced(nested(7), 100), 7);
    assert.equal(await mimeNestingDepthSliced(nested(5000), 100), 101);
    const parts = Buffer.concat([Buffer.from('Content-Type: multipart/mixed; boundary=x\r\n\r\n'), Buffer.alloc(8 * 1024 * 1024, '--x\r\nA: b\r\n\r\n')]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const depth = await mimeNestingDepthSliced(parts, 100);
    clearInterval(timer);
    assert.equal(depth, 1);
    assert.ok(ticks > 0, 'timers ran while the body was scanned');
  });
});
