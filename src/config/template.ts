/** The commented configuration file `twoway init` writes. Every key it sets is described in README.md. */
export interface TemplateInput {
  hostname: string;
  domains: string[];
  smtpPort: number;
  httpPort: number;
  /** Default 587. */
  submissionPort?: number;
  /** IMAP with STARTTLS and over TLS; default 143 and 993. */
  imapPort?: number;
  imapsPort?: number;
  /** The port of remote MX hosts; only labs and tests set it. */
  deliveryPort?: number;
  /** The metrics listener's port (default 9464); tests use 0. */
  metricsPort?: number;
  /** `delivery.lab`: loopback and private MX addresses allowed (labs, the demo and tests). */
  deliveryLab?: boolean;
  dns: string[];
  storage?: string;
}

const q = (s: string) => JSON.stringify(s);

export function renderConfig(t: TemplateInput): string {
  return `# twoway configuration (see README.md, "Configuration reference")
hostname = ${q(t.hostname)}
domains = [${t.domains.map(q).join(', ')}]
# Relative paths are relative to this file.
data_dir = "data"
${t.storage ? `storage = ${q(t.storage)}` : '# storage = "postgres://user@127.0.0.1:5432/twoway"  # default: sqlite:<data_dir>/twoway.db'}

[smtp]
host = "0.0.0.0"
port = ${t.smtpPort}

[submission]
# Authenticated submission (RFC 6409): STARTTLS, then AUTH PLAIN/LOGIN.
enabled = true
host = "0.0.0.0"
port = ${t.submissionPort ?? 587}

[imap]
# IMAP4rev2 (docs/imap.md): STARTTLS on port, implicit TLS on tls_port, with the [tls] pair.
enabled = true
host = "0.0.0.0"
port = ${t.imapPort ?? 143}
tls_port = ${t.imapsPort ?? 993}

[delivery]
${t.deliveryPort !== undefined ? `port = ${t.deliveryPort}` : '# port = 25  # remote MX port; another only in labs and tests'}
${t.deliveryLab ? 'lab = true  # loopback and private MX addresses allowed: labs and tests only' : '# lab = false  # true lets delivery connect to loopback and private addresses (labs and tests only)'}
give_up_after = "5d"
delay_warning_after = "4h"

[http]
host = "127.0.0.1"
port = ${t.httpPort}
tls = true  # HTTPS with the [tls] pair; false only behind a TLS-terminating proxy

[metrics]
# GET /metrics (Prometheus) needs no login: keep it on loopback (or enabled = false).
host = "127.0.0.1"
port = ${t.metricsPort ?? 9464}

[tls]
# cert = "/etc/letsencrypt/live/${t.hostname}/fullchain.pem"
# key = "/etc/letsencrypt/live/${t.hostname}/privkey.pem"
# Without cert and key a self-signed pair is generated into data_dir/tls.

[dns]
servers = [${t.dns.map(q).join(', ')}]  # empty: the system's resolvers

[dkim]
selector = "twoway"

[limits]
message_size = 26214400
recipients = 100
connections = 1000
connections_per_ip = 50
`;
}
