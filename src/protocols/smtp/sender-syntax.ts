/**
 * MAIL FROM the way deployed servers write it. smtp-server refuses with
 * "501 Bad sender address syntax" a reverse-path that Postfix (and so most
 * of the receiving Internet) accepts: a quoted local part with a space
 * (`<"john doe"@example.com>`), a local part with a leading, trailing or
 * doubled dot (`<user.@example.com>`, old firmware and some bulk senders), a
 * domain with an underscore (`<x@mail_host.example.com>`), and a path
 * without angle brackets (`MAIL FROM:user@example.com`, RFC 821-era
 * clients). Refusing the sender loses the message; accepting it costs
 * nothing, since the sender is only evidence (SPF, DMARC, the contact
 * match) and a bounce address.
 *
 * When smtp-server's own parser fails on MAIL FROM (never on RCPT TO: the
 * recipient decides relaying and stays strict), this adapter reads the path
 * itself: angle brackets optional, quoted strings kept whole, an RFC 5321
 * 4.1.2 source route dropped, a domainless path qualified with the client's
 * HELO name (the 4 refused messages of issue 16's replay had `<yyyy>`). A local part that is not a dot-atom is
 * written as the equivalent quoted string (`"user."@example.com`), so every
 * later layer sees a well-formed address. The ESMTP parameters still go
 * through smtp-server's parser. What stays refused is what Postfix refuses
 * too, or has no domain to authenticate: test/smtp-sender-syntax.test.ts
 * holds both lists, measured against Debian's Postfix.
 */
import { connectionPrototype } from './smtp-server-internals.ts';

let installed: Promise<void> | null = null;

export function installLenientSender(): Promise<void> {
  installed ??= (async () => {
    const proto = await connectionPrototype();
    const original = proto._parseAddressCommand;
    proto._parseAddressCommand = function (this: unknown, name: string, command: string) {
      const strict = original.call(this, name, command);
      if (strict || String(name).trim().toUpperCase() !== 'MAIL FROM') return strict;
      const helo = (this as { hostNameAppearsAs?: unknown }).hostNameAppearsAs;
      const lenient = readReversePath(String(command ?? ''), typeof helo === 'string' ? helo : '');
      if (!lenient) return false;
      // The parameters alone, behind a null path smtp-server always parses.
      const params = original.call(this, name, `MAIL FROM:<>${lenient.params ? ` ${lenient.params}` : ''}`);
      if (!params) return false;
      return { ...params, address: lenient.address };
    };
  })();
  return installed;
}

const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+)*$/u;
const LOCAL_CHARS = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\u{10ffff}]+$/u;
const SOURCE_ROUTE = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/;
const HELO_DOMAIN = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.)+[A-Za-z0-9-]*[A-Za-z]$|^\[[0-9A-Fa-f:.IPv]+\]$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b\u2060\ufeff]/;

/**
 * The reverse-path and the parameter text of a MAIL FROM line, or null.
 * Exported for the unit test; the table test covers it over the wire.
 */
export function readReversePath(command: string, helo = ''): { address: string; params: string } | null {
  const colon = command.indexOf(':');
  if (colon < 0 || command.slice(0, colon).trim().toUpperCase() !== 'MAIL FROM') return null;
  let rest = command.slice(colon + 1).replace(/^\s+/, '');
  const bracketed = rest.startsWith('<');
  if (bracketed) rest = rest.slice(1);
  // The path runs to ">" (bracketed) or to white space, outside quoted strings.
  let path = '';
  let quoted = false;
  let i = 0;
  for (; i < rest.length; i++) {
    const c = rest[i] as string;
    if (quoted && c === '\\' && i + 1 < rest.length) {
      path += c + rest[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && (bracketed ? c === '>' : /\s/.test(c))) break;
    else if (!quoted && (c === '<' || c === '>')) return null;
    path += c;
  }
  if (quoted || (bracketed && rest[i] !== '>')) return null;
  const params = rest.slice(bracketed ? i + 1 : i).trim();
  if (bracketed && params !== '' && !/^\s/.test(rest.slice(i + 1))) return null;
  if (CONTROL.test(path)) return null;
  path = path.replace(SOURCE_ROUTE, '');
  if (path === '') return bracketed ? { address: '', params } : null;
  // A domainless path (`<yyyy>`): Postfix qualifies it with its own $myorigin, which would make a
  // stranger look local; the client's HELO name is the identity RFC 7208 falls back to instead.
  if (!path.includes('@') && HELO_DOMAIN.test(helo)) path = `${path}@${helo}`;
  const at = path.lastIndexOf('@');
  if (at <= 0 || at === path.length - 1) return null;
  let local = path.slice(0, at);
  const domain = path.slice(at + 1);
  if (!local.startsWith('"')) {
    if (local.includes('@') || !LOCAL_CHARS.test(local)) return null;
    if (!DOT_ATOM.test(local)) local = `"${local}"`;
  } else if (!/^"(?:[^"\\]|\\.)+"$/u.test(local)) {
    return null;
  }
  return { address: `${local}@${domain}`, params };
}
