/**
 * What a CardDAV handler returns (framework-neutral: plugin.ts writes it to
 * fastify), and the shapes every handler shares: multistatus documents and
 * DAV:error bodies (RFC 4918 section 16) naming the failed precondition, with
 * a human-readable `tw:message`. Never a stack trace, never the JSON API's
 * problem documents.
 */
import { STATUS_CODES } from 'node:http';
import { d, document, el, escapeXml, NS } from './xml.ts';

export interface DavResponse {
  status: number;
  headers: Record<string, string>;
  body?: string;
}

export const XML_TYPE = 'application/xml; charset=utf-8';

export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

export function xml(status: number, body: string, headers: Record<string, string> = {}): DavResponse {
  return { status, headers: { 'content-type': XML_TYPE, ...headers }, body };
}

export function multistatus(responses: string[], extra = ''): DavResponse {
  return xml(207, document('multistatus', responses.join('') + extra));
}

/**
 * A DAV:error body. `condition` is the precondition or postcondition
 * element(s), already XML (e.g. `<card:valid-address-data/>`); `message`
 * says what was wrong, in words a user can act on.
 */
export function davError(status: number, condition: string, message: string, headers: Record<string, string> = {}): DavResponse {
  const text = message ? el({ ns: NS.tw, name: 'message' }, escapeXml(message)) : '';
  return xml(status, document('error', condition + text), headers);
}

export const hrefEl = (href: string) => d('href', escapeXml(href));

/** A response element with a status only (a missing or forbidden member). */
export const statusResponse = (href: string, status: number) => d('response', hrefEl(href) + d('status', statusLine(status)));
