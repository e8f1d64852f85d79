import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundaryOf, MAX_PARTS, MultipartError, parseMultipart } from './multipart.ts';

const body = (b: string, parts: string[]) => Buffer.from(`${parts.map((p) => `--${b}\r\n${p}\r\n`).join('')}--${b}--\r\n`);

test('multipart: a field and a file, as a browser sends them', () => {
  const b = '----WebKitFormBoundaryabc123';
  const form = parseMultipart(
    body(b, [
      'Content-Disposition: form-data; name="_csrf"\r\n\r\ntok',
      'Content-Disposition: form-data; name="file"; filename="my \\"friends\\".vcf"\r\nContent-Type: text/vcard\r\n\r\nBEGIN:VCARD\r\nEND:VCARD\r\n',
    ]),
    boundaryOf(`multipart/form-data; boundary=${b}`),
  );
  assert.deepEqual({ ...form.fields }, { _csrf: 'tok' });
  assert.equal(form.files.length, 1);
  assert.deepEqual(form.files[0], { field: 'file', filename: 'my "friends".vcf', text: 'BEGIN:VCARD\r\nEND:VCARD\r\n', bytes: 24 });
});

test('multipart: bad bodies are MultipartErrors, never a hang or a partial form', () => {
  const b = 'xyz';
  const bad = [
    Buffer.from('no delimiter at all'),
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="a"\r\n\r\nunterminated`),
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="a"`),
    body(b, ['Content-Type: text/plain\r\n\r\nno disposition']),
    body(b, Array.from({ length: MAX_PARTS + 1 }, (_, i) => `Content-Disposition: form-data; name="f${i}"\r\n\r\nx`)),
    Buffer.from(`--${b}junk`),
  ];
  for (const x of bad) assert.throws(() => parseMultipart(x, b), MultipartError, x.toString().slice(0, 40));
  assert.throws(() => boundaryOf('application/x-www-form-urlencoded'), MultipartError);
  assert.equal(boundaryOf('multipart/form-data; charset=utf-8; boundary="a b"'), 'a b');
});
