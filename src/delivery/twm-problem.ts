/**
 * Reading a TWM peer's error answer (docs/protocol.md 6.5 and 11.1): which
 * `twm_error` it is, whether to retry, and a one-line text for the queue,
 * logs and status views. A peer's text is untrusted: it is cut short and kept
 * to one printable line.
 */
import { TWM_ERRORS, type TwmErrorCode } from '../core/twm-types.ts';
import type { TwmResponse } from './twm-client-types.ts';

export interface PeerProblem {
  status: number;
  code: TwmErrorCode | null;
  temporary: boolean;
  text: string;
}

const clean = (s: string) => s.replace(/[^\x20-\x7e]+/g, ' ').slice(0, 200);

export function describeProblem(response: TwmResponse): PeerProblem {
  let code: TwmErrorCode | null = null;
  let detail = '';
  try {
    const doc = JSON.parse(response.body.toString('utf8')) as { twm_error?: unknown; detail?: unknown };
    if (typeof doc.twm_error === 'string' && doc.twm_error in TWM_ERRORS) code = doc.twm_error as TwmErrorCode;
    if (typeof doc.detail === 'string') detail = clean(doc.detail);
  } catch {
    // Not a problem document: the status alone decides (11.1: a 5xx without one is temporary).
  }
  const temporary = code ? TWM_ERRORS[code].temporary : response.status >= 500 || response.status === 429;
  const text = `${response.endpoint} answered ${response.status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}`;
  return { status: response.status, code, temporary, text };
}
