/** The DNS layer's public surface; see types.ts for the resolver contract. */
export type { DnsRecord, DnsRecordType, DnsResolver, MxData, ResolveFunction, RrType, SoaData, SrvData, Zone } from './types.ts';
export { createResolver, toResolveFunction, type CachingDnsResolver, type ResolverOptions, type ResolverStats } from './resolver.ts';
export { startDnsServer, type DnsServerOptions, type EmbeddedDnsServer } from './embedded-server.ts';
export { loadZoneFile, parseZoneFile, ZoneFileError, type ZoneFileOptions } from './zone-file.ts';
