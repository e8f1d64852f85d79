/** The DNS records a domain publishes for this server (`twoway dns`). */
import type { Config } from '../load.ts';
import { dkimRecordValue, type Materials } from '../materials.ts';

export interface DnsRecordLine {
  name: string;
  type: string;
  value: string;
  note: string;
}

export function recordsToPublish(config: Config, dkim: Materials['dkim']): DnsRecordLine[] {
  const out: DnsRecordLine[] = [];
  out.push({ name: `${config.hostname}.`, type: 'A/AAAA', value: '<public address of this server>', note: 'the MX target must resolve' });
  for (const domain of config.domains) {
    out.push({ name: `${domain}.`, type: 'MX', value: `10 ${config.hostname}.`, note: 'inbound mail' });
    out.push({ name: `${domain}.`, type: 'TXT', value: 'v=spf1 mx -all', note: 'SPF: only the MX hosts send for this domain' });
    out.push({ name: `${dkim.rsa.selector}._domainkey.${domain}.`, type: 'TXT', value: dkimRecordValue(dkim.rsa.publicKeyBase64, 'rsa'), note: 'DKIM key (RSA-SHA256)' });
    out.push({ name: `${dkim.ed25519.selector}._domainkey.${domain}.`, type: 'TXT', value: dkimRecordValue(dkim.ed25519.publicKeyBase64, 'ed25519'), note: 'DKIM key (Ed25519-SHA256, RFC 8463)' });
    out.push({ name: `_dmarc.${domain}.`, type: 'TXT', value: `v=DMARC1; p=quarantine; rua=mailto:postmaster@${domain}`, note: 'DMARC policy' });
  }
  return out;
}

/** Zone-file lines; TXT values over 255 bytes are split into quoted strings (RFC 1035 character-strings). */
export function zoneLine(r: DnsRecordLine): string {
  if (r.type !== 'TXT') return `${r.name}\t3600\tIN\t${r.type}\t${r.value}\t; ${r.note}`;
  const parts = r.value.match(/.{1,255}/g) ?? [''];
  return `${r.name}\t3600\tIN\tTXT\t${parts.map((p) => `"${p}"`).join(' ')}\t; ${r.note}`;
}
