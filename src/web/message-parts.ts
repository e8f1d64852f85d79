/**
 * What the message view needs from a raw message: its text, its HTML and
 * its attachments, decoded (transfer encoding, then charset). The MIME tree
 * comes from core/mime-structure.ts (the parser IMAP uses), so the web app
 * and IMAP agree on what the parts are.
 */
import { parseStructure, type MimePart } from '../core/mime-structure.ts';

export interface Attachment {
  /** 1-based index among the message's attachments (the download URL's number). */
  n: number;
  filename: string;
  type: string;
  size: number;
  part: MimePart;
}

export interface MessageParts {
  text: string | null;
  html: string | null;
  attachments: Attachment[];
}

/** Message parts nested deeper than this are not shown (a hostile message cannot recurse without end). */
const MAX_LEAVES = 500;

function param(list: Array<[string, string]>, name: string): string | null {
  for (const [k, v] of list) if (k.toLowerCase() === name) return v;
  return null;
}

function decodeQp(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/=\r?\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text[i] === '=' ? text.slice(i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else out.push(text.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** The part's body octets with the transfer encoding undone. */
export function partBytes(raw: Buffer, part: MimePart): Buffer {
  const body = raw.subarray(part.bodyStart, part.end);
  const enc = part.encoding.toLowerCase();
  if (enc === 'base64') return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (enc === 'quoted-printable') return decodeQp(body);
  return body;
}

function charsetText(bytes: Buffer, charset: string | null): string {
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(bytes);
  } catch {
    // An unknown charset label: UTF-8 with replacement characters beats showing nothing.
    return new TextDecoder('utf-8').decode(bytes);
  }
}

/** RFC 2047 encoded words and RFC 2231 `filename*`, enough for attachment names. */
function decodeName(part: MimePart): string {
  const lists = [part.disposition?.params ?? [], part.params];
  for (const list of lists) {
    const ext = param(list, 'filename*') ?? param(list, 'name*');
    if (ext) {
      const m = /^([^']*)'[^']*'(.*)$/.exec(ext);
      if (m) return charsetText(Buffer.from(decodeURIComponent(m[2]!.replace(/%(?![0-9A-Fa-f]{2})/g, '%25')), 'latin1'), m[1] || 'utf-8');
    }
  }
  const plain = param(lists[0]!, 'filename') ?? param(lists[1]!, 'name');
  if (!plain) return `attachment-${part.type}-${part.subtype}`.toLowerCase();
  return decodeEncodedWords(plain);
}

/** RFC 2047 encoded words in a header value kept as latin1 (core/mime-structure.ts); other octets read as UTF-8 (RFC 6532). */
export function decodeEncodedWords(latin1: string): string {
  const words = latin1.replace(/(\?=)\s+(=\?)/g, '$1$2');
  return Buffer.from(words, 'latin1')
    .toString('utf8')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_all, cs: string, how: string, data: string) => {
      const bytes = how.toUpperCase() === 'B' ? Buffer.from(data, 'base64') : decodeQp(Buffer.from(data.replace(/_/g, ' '), 'latin1'));
      return charsetText(bytes, cs);
    });
}

function leaves(root: MimePart, out: MimePart[]): MimePart[] {
  if (out.length >= MAX_LEAVES) return out;
  if (root.parts) for (const p of root.parts) leaves(p, out);
  else out.push(root);
  return out;
}

export function messageParts(raw: Buffer): MessageParts {
  const all = leaves(parseStructure(raw).body, []);
  let text: string | null = null;
  let html: string | null = null;
  const attachments: Attachment[] = [];
  for (const part of all) {
    const type = `${part.type}/${part.subtype}`.toLowerCase();
    const isAttachment = part.disposition?.type.toLowerCase() === 'attachment' || !/^text\/(plain|html)$/.test(type);
    if (isAttachment) {
      attachments.push({ n: attachments.length + 1, filename: decodeName(part), type, size: part.end - part.bodyStart, part });
      continue;
    }
    const decoded = charsetText(partBytes(raw, part), param(part.params, 'charset'));
    if (type === 'text/plain' && text === null) text = decoded;
    else if (type === 'text/html' && html === null) html = decoded;
  }
  return { text, html, attachments };
}
