/**
 * Which transport a recipient domain goes to: our own domains to the local
 * transport (ingest), everything else to the remote one (remote-transport.ts:
 * TWM where the domain publishes it, else SMTP; plain SMTP without TWM).
 */
import type { Transport } from './types.ts';

export function createRouter(options: { localDomains: string[]; local: Transport; remote: Transport }): (domain: string) => Transport {
  const local = new Set(options.localDomains);
  return (domain) => (local.has(domain.toLowerCase()) ? options.local : options.remote);
}
