/**
 * RFC 6764 records for CardDAV service discovery, printed by `twoway dns`
 * after the mail records: an SRV record naming the HTTPS listener and a TXT
 * record with the context path, so a client given only an address finds the
 * server (it then asks /.well-known/carddav or goes straight to the path).
 */
import type { Config } from '../load.ts';
import type { DnsRecordLine } from './dns-records.ts';

/** The CardDAV context path (protocols/carddav/paths.ts DAV_ROOT). */
const CONTEXT_PATH = '/dav/';

export function carddavRecords(config: Pick<Config, 'hostname' | 'domains' | 'http'>): DnsRecordLine[] {
  // Behind a TLS-terminating proxy (http.tls = false) clients reach the proxy, normally on 443.
  const port = config.http.tls ? config.http.port : 443;
  return config.domains.flatMap((domain) => [
    { name: `_carddavs._tcp.${domain}.`, type: 'SRV', value: `0 1 ${port} ${config.hostname}.`, note: 'CardDAV over HTTPS (RFC 6764)' },
    { name: `_carddavs._tcp.${domain}.`, type: 'TXT', value: `path=${CONTEXT_PATH}`, note: 'CardDAV context path (RFC 6764)' },
  ]);
}
