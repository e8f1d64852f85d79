import { formatRfc5322Date } from './date.ts';

/** The Received trace header (RFC 5321 section 4.4) for mail taken over SMTP. */
export interface ReceivedInput {
  helo: string;
  remoteAddress: string;
  hostname: string;
  id: string;
  secure: boolean;
  tlsProtocol: string | null;
  authenticated: boolean;
  /** Named only for a single recipient: listing several would disclose Bcc recipients. */
  recipient: string | null;
}

export function receivedHeader(r: ReceivedInput): string {
  const helo = r.helo.replace(/[^\x21-\x7e]/g, '?') || 'unknown';
  // RFC 3848 protocol names: ESMTP, ESMTPS (TLS), ESMTPSA (TLS and AUTH).
  const proto = `ESMTP${r.secure ? 'S' : ''}${r.authenticated ? 'A' : ''}`;
  const tls = r.tlsProtocol ? ` (${r.tlsProtocol})` : '';
  const forPart = r.recipient ? `\r\n\tfor <${r.recipient}>` : '';
  return `Received: from ${helo} ([${r.remoteAddress}])\r\n\tby ${r.hostname} (twoway) with ${proto}${tls} id ${r.id}${forPart};\r\n\t${formatRfc5322Date(new Date())}\r\n`;
}
