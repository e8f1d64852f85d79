/** The Two-Way Mail records a domain publishes (docs/protocol.md 3.1 and 3.2), printed by `twoway dns`. */
import type { Config } from '../load.ts';
import { keyRecordValue } from '../../core/twm-key-record.ts';
import type { Materials } from '../materials.ts';
import type { DnsRecordLine } from './dns-records.ts';

export function twmRecordsToPublish(config: Config, twm: Materials['twm']): DnsRecordLine[] {
  if (!twm) return [];
  const port = config.twm.publicPort ?? 443;
  const out: DnsRecordLine[] = [];
  for (const domain of config.domains) {
    out.push({ name: `_twoway._tcp.${domain}.`, type: 'SRV', value: `10 10 ${port} ${config.twm.publicHost}.`, note: 'Two-Way Mail endpoint (notices, fetches, receipts)' });
    out.push({ name: `${twm.selector}._twoway.${domain}.`, type: 'TXT', value: keyRecordValue(Buffer.from(twm.publicKeyBase64, 'base64'), { testing: config.twm.testing }), note: config.twm.testing ? 'Two-Way Mail signing key (t=y: testing mode, docs/protocol.md 6.6)' : 'Two-Way Mail signing key' });
  }
  return out;
}
