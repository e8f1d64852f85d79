/**
 * `[spam]` present: rspamd's normal worker (scans) and controller (learning)
 * each answer `/ping`. A dead normal worker is not fatal to mail (messages are
 * accepted unscanned, per `on_unreachable`) but it means no filtering, so it
 * fails; a dead controller only delays learning (queued and retried), so it
 * warns.
 */
import type { SpamConfig } from '../config/load.ts';
import { createRspamdClient } from '../spam/rspamd-client.ts';
import { fail, ok, warn, type CheckResult } from './types.ts';

export async function checkSpam(config: SpamConfig, timeoutMs: number): Promise<CheckResult[]> {
  const client = createRspamdClient({
    url: config.url,
    controllerUrl: config.controllerUrl,
    password: config.password,
    timeoutMs: Math.min(config.timeoutMs, timeoutMs),
    maxSize: config.maxSize,
    judge: config.judge,
  });
  const { normal, controller } = await client.ping();
  return [
    normal
      ? ok('spam rspamd', `${config.url}/ping answers`)
      : fail('spam rspamd', `${config.url}/ping: no answer; mail is accepted unscanned (on_unreachable = "${config.onUnreachable}")`, 'start rspamd (systemctl start rspamd) or fix [spam] url'),
    controller
      ? ok('spam rspamd controller', `${config.controllerUrl}/ping answers`)
      : warn('spam rspamd controller', `${config.controllerUrl}/ping: no answer; learning waits and is retried`, 'start rspamd or fix [spam] controller_url'),
  ];
}
