/**
 * The benchmarks' Postfix configurations, on top of the private instance in
 * test/helpers/postfix.ts (its own main.cf/master.cf, queue and data
 * directories under a temporary directory, smtpd on a free port; needs root;
 * the system's Postfix is never touched).
 *
 * `startPostfix` is the accept benchmark's instance: smtpd on 127.0.0.1,
 * mail for the bench domain accepted for any local part and every transport
 * `discard`. Mail is accepted into the durable queue (cleanup fsyncs the queue
 * file before smtpd answers 250) and thrown away at delivery: the
 * configuration the first measurement in docs/architecture.md ("Performance targets") used. No STARTTLS (smtp-source does
 * not use it).
 */
import { startPostfix as startInstance, type PostfixInstance } from '../../test/helpers/postfix.ts';

export { postfixAvailability, postfixVersion, startPostfix as startPostfixInstance } from '../../test/helpers/postfix.ts';
export type { PostfixInstance, PostfixOptions as PostfixInstanceOptions } from '../../test/helpers/postfix.ts';

export interface PostfixOptions {
  /** Parallel SMTP sessions to allow (process limit and per-client connection limit). */
  maxSessions?: number;
  /** The domain whose mail is accepted (relayed to the discard transport). */
  domain?: string;
}

export function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  const domain = options.domain ?? 'bench.test';
  return startInstance({
    name: 'twoway-bench-postfix',
    host: '127.0.0.1',
    hostname: `postfix.${domain}`,
    relayDomains: [domain],
    defaultTransport: 'discard',
    maxSessions: options.maxSessions ?? 100,
    tls: false,
  });
}
