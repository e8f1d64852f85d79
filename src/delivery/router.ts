/**
 * Which transport a recipient domain goes to: our own domains to the local
 * transport (ingest), everything else over SMTP. Two-Way Mail slots in
 * here later: a domain that publishes the TWM SRV record gets the TWM
 * transport.
 */
import type { Transport } from './types.ts';

export function createRouter(options: { localDomains: string[]; local: Transport; smtp: Transport }): (domain: string) => Transport {
  const local = new Set(options.localDomains);
  return (domain) => (local.has(domain.toLowerCase()) ? options.local : options.smtp);
}
