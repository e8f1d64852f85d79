/**
 * Sign-up detection, pure: no DOM access, no browser API. The content script
 * turns a form into a plain description (fields with type, name, id,
 * autocomplete, value; the form's text hints) and asks this module whether
 * the user just gave one of their own addresses to a site. Tested under
 * node:test (test/extension-detect.test.ts).
 */

/** The address without a subaddress tag (RFC 5233 `local+tag@domain` → `local@domain`), lower-cased; null if not an address. */
export function baseAddress(value) {
  const v = String(value ?? '').trim().toLowerCase();
  const at = v.lastIndexOf('@');
  if (at < 1 || at === v.length - 1 || /\s/.test(v)) return null;
  const local = v.slice(0, at);
  const plus = local.indexOf('+');
  return (plus > 0 ? local.slice(0, plus) : local) + v.slice(at);
}

const EMAIL_HINT = /e-?mail|username|login|user_?id/i;

/** A field that holds a mail address: type=email, an email-ish name/id/autocomplete, or any text field whose value is one of ours. */
function emailish(field) {
  if (field.type === 'email') return true;
  if (field.type && !['text', 'email', ''].includes(field.type)) return false;
  return EMAIL_HINT.test(`${field.name ?? ''} ${field.id ?? ''} ${field.autocomplete ?? ''}`);
}

const SIGNUP_HINT = /sign[ -_]?up|register|registration|create[ -_]?(an[ -_]?)?account|join|subscribe|newsletter|get[ -_]started/i;
const RESET_HINT = /forgot|reset|recover|lost[ -_]?password/i;
const LOGIN_HINT = /sign[ -_]?in|log[ -_]?in|logon/i;

/**
 * What a submitted form means for the user:
 * - `{kind: 'signup' | 'reset' | 'email-only', address}`: one of the user's addresses (or a
 *   subaddress of one) is in an email field and the site will likely mail it;
 * - null: none of the user's addresses, or a sign-in form (one current password and no sign-up
 *   hint: a sign-in sends no confirmation).
 * `addresses`: the user's own addresses. `form.hints`: the form's action, id, name, and the
 * texts of its submit buttons and heading, joined.
 */
export function classifyForm(form, addresses) {
  const own = new Set(addresses.map(baseAddress).filter(Boolean));
  let address = null;
  for (const f of form.fields ?? []) {
    if (f.type === 'hidden' || f.type === 'password') continue;
    const base = baseAddress(f.value);
    if (base && own.has(base) && (emailish(f) || String(f.value).includes('@'))) {
      address = String(f.value).trim().toLowerCase();
      break;
    }
  }
  if (!address) return null;
  const hints = String(form.hints ?? '');
  const passwords = (form.fields ?? []).filter((f) => f.type === 'password');
  const newPassword = passwords.some((f) => /new-password/i.test(f.autocomplete ?? '')) || passwords.length >= 2;
  if (newPassword || SIGNUP_HINT.test(hints)) return { kind: 'signup', address };
  if (passwords.length === 1 || (passwords.length === 0 && LOGIN_HINT.test(hints) && !RESET_HINT.test(hints))) {
    // A sign-in: no confirmation mail to expect (a passwordless sign-in form names itself; it stays a sign-in).
    return null;
  }
  if (RESET_HINT.test(hints)) return { kind: 'reset', address };
  return { kind: 'email-only', address };
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The site's declaration `<meta name="twoway-confirmation-from" content="domain">`
 * (docs/protocol.md 10.4). `contents`: the content attributes of every such
 * element. `registrable(d)`: the registrable domain of d, null for a public
 * suffix. Returns `{ok: true, from}` (null: no declaration, or the site's own
 * domain) or `{ok: false, reason}`: then no entry is created at all.
 */
export function readDeclaration(contents, site, registrable) {
  const values = [...new Set(contents.map((c) => String(c ?? '').trim().toLowerCase().replace(/\.$/, '')))];
  if (values.length === 0) return { ok: true, from: null };
  if (values.length > 1) return { ok: false, reason: 'the page declares several sending domains' };
  const v = values[0];
  if (!DOMAIN.test(v)) return { ok: false, reason: `the declared sending domain ${JSON.stringify(v.slice(0, 80))} is not one domain name` };
  if (registrable(v) === null) return { ok: false, reason: `the declared sending domain ${v} is a public suffix` };
  if (v === site || v.endsWith(`.${site}`)) return { ok: true, from: null };
  return { ok: true, from: v };
}
