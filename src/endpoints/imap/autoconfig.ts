/**
 * Thunderbird's autoconfig document (config-v1.1.xml), served on the HTTPS
 * listener at /.well-known/autoconfig/mail/config-v1.1.xml, so a client
 * given only an address finds the IMAP and submission settings.
 */
export interface AutoconfigInput {
  hostname: string;
  domain: string;
  imap: { enabled: boolean; port: number; tlsPort: number } | null;
  submission: { enabled: boolean; port: number } | null;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function autoconfigXml(o: AutoconfigInput): string {
  const host = esc(o.hostname);
  const incoming = o.imap?.enabled
    ? [
        ['SSL', o.imap.tlsPort],
        ['STARTTLS', o.imap.port],
      ].map(
        ([socket, port]) => `    <incomingServer type="imap">
      <hostname>${host}</hostname>
      <port>${port}</port>
      <socketType>${socket}</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>`,
      )
    : [];
  const outgoing = o.submission?.enabled
    ? [
        `    <outgoingServer type="smtp">
      <hostname>${host}</hostname>
      <port>${o.submission.port}</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>`,
      ]
    : [];
  return `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="${esc(o.domain)}">
    <domain>${esc(o.domain)}</domain>
    <displayName>${esc(o.domain)} (twoway)</displayName>
    <displayShortName>${esc(o.domain)}</displayShortName>
${[...incoming, ...outgoing].join('\n')}
  </emailProvider>
</clientConfig>
`;
}
