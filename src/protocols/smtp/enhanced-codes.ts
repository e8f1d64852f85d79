/**
 * smtp-server derives the enhanced status code of a reply from its basic code
 * alone (550 is always 5.1.1), but RFC 3463 replies must say *why*: 5.7.1 for
 * a policy refusal, 5.1.1 for an unknown user. Our replies carry their own
 * enhanced code at the start of the text ("5.7.1 Relaying denied"); this
 * adapter makes smtp-server use that code instead of adding a second one.
 *
 * smtp-server does not export its connection class, so the prototype is
 * reached through the package's own file layout (pinned to 3.21.x in
 * package.json); a layout change fails loudly at start-up, not silently.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
let installed: Promise<void> | null = null;

type SendFn = (code: number, data: unknown, context?: unknown) => unknown;

export function installEnhancedCodeAdapter(): Promise<void> {
  installed ??= (async () => {
    const entry = createRequire(import.meta.url).resolve('smtp-server');
    const file = join(dirname(entry), '..', 'esm', 'smtp-connection.js');
    const mod = (await import(pathToFileURL(file).href)) as { SMTPConnection?: { prototype: { send?: SendFn } } };
    const proto = mod.SMTPConnection?.prototype;
    const original = proto?.send;
    if (!proto || typeof original !== 'function') {
      throw new Error(`smtp-server layout changed: no SMTPConnection.send in ${file}`);
    }
    proto.send = function (this: unknown, code: number, data: unknown, context?: unknown) {
      const own = typeof data === 'string' && ENHANCED.test(data);
      return original.call(this, code, data, own ? false : context);
    };
  })();
  return installed;
}
