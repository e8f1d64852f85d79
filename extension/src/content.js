/**
 * Watches form submissions on the page. When the user submits one of their
 * own addresses (or a subaddress of one), it tells the background the
 * site's host name and the page's `twoway-confirmation-from` declaration:
 * nothing else of the page leaves this script.
 */
import { classifyForm } from './detect.js';

const api = globalThis.browser ?? globalThis.chrome;
let addresses = [];

// Asked once when the page loads, not at submit time: a submit navigates away, and a round trip
// to the background started then may never come back.
async function loadAddresses() {
  const r = await api.runtime.sendMessage({ type: 'addresses' }).catch(() => null);
  addresses = r?.addresses ?? [];
}
void loadAddresses();
// A connection made after this page loaded: asked again when the user starts filling a form.
let asked = Date.now();
document.addEventListener(
  'focusin',
  () => {
    if (Date.now() - asked < 10_000) return;
    asked = Date.now();
    void loadAddresses();
  },
  true,
);

/** A plain description of the form for detect.js (no DOM there). */
function describe(form) {
  const fields = [...form.querySelectorAll('input')].map((i) => ({ type: (i.type || 'text').toLowerCase(), name: i.name, id: i.id, autocomplete: i.autocomplete, value: i.value }));
  const buttons = [...form.querySelectorAll('button, input[type=submit]')].map((b) => b.textContent || b.value || '').join(' ');
  const heading = form.closest('section, main, article, div')?.querySelector('h1, h2, h3')?.textContent ?? document.title;
  return { fields, hints: [form.getAttribute('action'), form.id, form.name, buttons, heading].join(' ') };
}

const seen = new WeakSet();
function onSubmit(form) {
  if (!(form instanceof HTMLFormElement) || seen.has(form) || addresses.length === 0) return;
  const found = classifyForm(describe(form), addresses);
  if (!found) return;
  seen.add(form);
  setTimeout(() => seen.delete(form), 5_000);
  const declarations = [...document.querySelectorAll('meta[name="twoway-confirmation-from"]')].map((m) => m.getAttribute('content') ?? '');
  api.runtime.sendMessage({ type: 'expect', host: location.hostname, declarations, address: found.address, trigger: found.kind });
}

// Capture phase: before the page's own handlers can stop the event. requestSubmit() fires it too.
document.addEventListener('submit', (e) => onSubmit(e.target), true);
// Forms a script sends without a submit event (fetch after a click on the button, or Enter).
document.addEventListener(
  'click',
  (e) => {
    const b = e.target instanceof Element ? e.target.closest('button, input[type=submit]') : null;
    if (b?.form && (b.type === 'submit' || b.type === 'button')) onSubmit(b.form);
  },
  true,
);
