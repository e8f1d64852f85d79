/**
 * XML for WebDAV: a namespace-aware parser that refuses DTDs (no entity
 * tricks, XXE or billion laughs, can get past it) and a small writer whose
 * every text and attribute goes through one escaping function.
 *
 * Responses always use the same prefixes (d: DAV:, card: CardDAV, cs:
 * CalendarServer, tw: ours), declared once on the root element; a property
 * from any other namespace (an unknown one a client asked for) is written
 * with its own xmlns declaration.
 */
import { DOMParser, type Document, type Element, type Node } from '@xmldom/xmldom';

export const NS = {
  dav: 'DAV:',
  card: 'urn:ietf:params:xml:ns:carddav',
  cs: 'http://calendarserver.org/ns/',
  tw: 'urn:twoway:dav',
} as const;

const PREFIX: Record<string, string> = { [NS.dav]: 'd', [NS.card]: 'card', [NS.cs]: 'cs', [NS.tw]: 'tw' };

/** The xmlns declarations of a response's root element. */
export const ROOT_XMLNS = Object.entries(PREFIX)
  .map(([ns, p]) => ` xmlns:${p}="${escapeXml(ns)}"`)
  .join('');

/** An element name: namespace URI and local name. */
export interface QName {
  ns: string;
  name: string;
}

export const qkey = (q: QName): string => `${q.ns}|${q.name}`;

/** Bad input from the client: the request gets 400. */
export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlError';
  }
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!)
    // Characters XML 1.0 cannot carry at all.
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    // A literal CR would be normalised away by the reader's XML parser; vCards keep their CRLFs.
    .replace(/\r/g, '&#13;');
}

/**
 * Deepest element nesting accepted in a request body. DAV bodies nest a
 * handful of levels (propertyupdate > set > prop > property > value); the
 * parser and every reader of its tree (textOf, the filter parser) recurse,
 * and 70,000 nested elements overflowed the stack (a 500).
 */
export const MAX_XML_DEPTH = 64;
/** Elements in one request body: a multiget of 10,000 hrefs fits. */
export const MAX_XML_ELEMENTS = 20_000;

/**
 * Counts elements and their nesting with one linear scan, before any parser
 * runs. Comments, CDATA sections, processing instructions and quoted
 * attribute values are skipped; what is not well-formed is left for the
 * parser to refuse. @throws XmlError past MAX_XML_DEPTH or MAX_XML_ELEMENTS.
 */
export function checkXmlShape(text: string, maxDepth = MAX_XML_DEPTH, maxElements = MAX_XML_ELEMENTS): void {
  let depth = 0;
  let elements = 0;
  let i = text.indexOf('<');
  const skipTo = (from: number, end: string): number => {
    const at = text.indexOf(end, from);
    return at < 0 ? text.length : at + end.length;
  };
  while (i >= 0 && i < text.length) {
    if (text.startsWith('<!--', i)) i = skipTo(i + 4, '-->');
    else if (text.startsWith('<![CDATA[', i)) i = skipTo(i + 9, ']]>');
    else if (text.startsWith('<?', i) || text.startsWith('<!', i)) i = skipTo(i + 2, '>');
    else if (text.startsWith('</', i)) {
      depth--;
      i = skipTo(i + 2, '>');
    } else {
      // A start tag: its end is the first '>' outside a quoted attribute value.
      let j = i + 1;
      let quote = '';
      for (; j < text.length; j++) {
        const c = text[j];
        if (quote) {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '>') break;
      }
      if (++elements > maxElements) throw new XmlError(`too many elements: at most ${maxElements}`);
      if (text[j - 1] !== '/' && ++depth > maxDepth) throw new XmlError(`elements nested too deeply: at most ${maxDepth} levels`);
      i = j + 1;
    }
    i = text.indexOf('<', i);
  }
}

/**
 * Parses a request body. @throws XmlError for anything not well-formed, a
 * DOCTYPE (so no entity declarations are ever processed), an empty body, or
 * one nested or sized past the limits above.
 */
export function parseXml(text: string): Document {
  if (text.trim() === '') throw new XmlError('empty XML body');
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new XmlError('DTDs and entity declarations are not allowed');
  checkXmlShape(text);
  let doc: Document;
  try {
    doc = new DOMParser({
      onError: (level, message) => {
        if (level !== 'warning') throw new XmlError(message);
      },
    }).parseFromString(text, 'application/xml');
  } catch (err) {
    // xmldom wraps what onError throws; report our own message, first line only.
    const cause = err instanceof Error && err.cause instanceof XmlError ? err.cause : err;
    throw new XmlError(cause instanceof Error ? cause.message.split('\n')[0]! : String(cause));
  }
  if (!doc.documentElement) throw new XmlError('no root element');
  return doc;
}

const ELEMENT_NODE = 1;
const TEXT_NODES = new Set([3, 4]); // text, CDATA

/** The element children of a node. */
export function children(node: Node): Element[] {
  const out: Element[] = [];
  for (let c = node.firstChild; c; c = c.nextSibling) if (c.nodeType === ELEMENT_NODE) out.push(c as Element);
  return out;
}

export function qnameOf(el: Element): QName {
  return { ns: el.namespaceURI ?? '', name: el.localName ?? el.nodeName };
}

export function is(el: Element | null | undefined, ns: string, name: string): boolean {
  return !!el && (el.namespaceURI ?? '') === ns && (el.localName ?? el.nodeName) === name;
}

export function child(node: Node, ns: string, name: string): Element | undefined {
  return children(node).find((c) => is(c, ns, name));
}

export function textOf(node: Node): string {
  let s = '';
  for (let c = node.firstChild; c; c = c.nextSibling) {
    if (TEXT_NODES.has(c.nodeType)) s += c.nodeValue ?? '';
    else if (c.nodeType === ELEMENT_NODE) s += textOf(c);
  }
  return s;
}

// ---------------------------------------------------------------- writing

/** An element with a known prefix, or with its own xmlns declaration. */
function open(q: QName, attrs = ''): { start: string; end: string } {
  const p = PREFIX[q.ns];
  if (p) return { start: `<${p}:${q.name}${attrs}`, end: `</${p}:${q.name}>` };
  if (q.ns === '') return { start: `<${q.name}${attrs}`, end: `</${q.name}>` };
  return { start: `<x:${q.name} xmlns:x="${escapeXml(q.ns)}"${attrs}`, end: `</x:${q.name}>` };
}

/** `<p:name attrs>inner</p:name>`, or self-closing when inner is empty. `inner` must already be XML. */
export function el(q: QName, inner = '', attrs: Record<string, string> = {}): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
    .join('');
  const { start, end } = open(q, a);
  return inner === '' ? `${start}/>` : `${start}>${inner}${end}`;
}

export const d = (name: string, inner = '', attrs?: Record<string, string>) => el({ ns: NS.dav, name }, inner, attrs);
export const card = (name: string, inner = '', attrs?: Record<string, string>) => el({ ns: NS.card, name }, inner, attrs);

/** A complete document whose root is a DAV: element. */
export function document(rootName: string, inner: string): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<d:${rootName}${ROOT_XMLNS}>${inner}</d:${rootName}>\n`;
}
