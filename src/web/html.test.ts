import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHtml, html } from './html.ts';

test('every interpolation is escaped, in content and in attributes', () => {
  const hostile = `<script>alert(1)</script>"'\`&`;
  assert.equal(
    html`<p title="${hostile}">${hostile}</p>`.toString(),
    '<p title="&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&#96;&amp;">&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&#96;&amp;</p>',
  );
});

test('nested templates and lists stay markup; their own values were escaped once', () => {
  const items = ['<a>', 'b&c'].map((s) => html`<li>${s}</li>`);
  assert.equal(html`<ul>${items}</ul>`.toString(), '<ul><li>&lt;a&gt;</li><li>b&amp;c</li></ul>');
});

test('null, undefined and false render nothing; numbers render as text', () => {
  assert.equal(html`${null}${undefined}${false}${0}${12.5}`.toString(), '012.5');
});

test('a string that looks like a SafeHtml is still text', () => {
  const fake = { toString: () => '<b>' } as unknown as string;
  assert.equal(html`${fake}`.toString(), '&lt;b&gt;');
  assert.equal(escapeHtml('plain'), 'plain');
});
