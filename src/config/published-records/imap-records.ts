/**
 * RFC 6186 records for mail client setup, printed by `twoway dns`: SRV
 * records naming the IMAP listeners (implicit TLS preferred, RFC 8314) and
 * the submission listener, so a client given only an address finds them.
 */
import type { Config } from '../load.ts';
import type { DnsRecordLine } from './dns-records.ts';

export function imapRecords(config: Pick<Config, 'hostname' | 'domains' | 'imap' | 'submission'>): DnsRecordLine[] {
  const out: DnsRecordLine[] = [];
  for (const domain of config.domains) {
    if (config.imap.enabled) {
      out.push({ name: `_imaps._tcp.${domain}.`, type: 'SRV', value: `0 1 ${config.imap.tlsPort} ${config.hostname}.`, note: 'IMAP over TLS (RFC 6186, RFC 8314)' });
      out.push({ name: `_imap._tcp.${domain}.`, type: 'SRV', value: `10 1 ${config.imap.port} ${config.hostname}.`, note: 'IMAP with STARTTLS (RFC 6186)' });
    }
    if (config.submission.enabled) {
      out.push({ name: `_submission._tcp.${domain}.`, type: 'SRV', value: `0 1 ${config.submission.port} ${config.hostname}.`, note: 'mail submission with STARTTLS (RFC 6186)' });
    }
  }
  return out;
}
