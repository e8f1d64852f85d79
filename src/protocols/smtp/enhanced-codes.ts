/**
 * smtp-server derives the enhanced status code of a reply from its basic code
 * alone (550 is always 5.1.1), but RFC 3463 replies must say *why*: 5.7.1 for
 * a policy refusal, 5.1.1 for an unknown user. Our replies carry their own
 * enhanced code at the start of the text ("5.7.1 Relaying denied"); this
 * adapter makes smtp-server use that code instead of adding a second one.
 */
import { connectionPrototype } from './smtp-server-internals.ts';

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
let installed: Promise<void> | null = null;

export function installEnhancedCodeAdapter(): Promise<void> {
  installed ??= (async () => {
    const proto = await connectionPrototype();
    const original = proto.send;
    proto.send = function (this: unknown, code: number, data: unknown, context?: unknown) {
      const own = typeof data === 'string' && ENHANCED.test(data);
      return original.call(this, code, data, own ? false : context);
    };
  })();
  return installed;
}
