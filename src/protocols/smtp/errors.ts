/**
 * Where errors leave the server over SMTP: the one translation of a thrown
 * error into the reply the client reads.
 *
 * A ReplyError is sent as it is. A DomainError gets the reply for its kind
 * (the codes the management errors always had over SMTP). A full disk is
 * 452 4.3.1, an unreachable store 451 4.3.0 saying so. Anything else is an internal fault: 451 4.3.0 with a generic
 * text, and `fault` tells the caller to log the cause.
 */
import { DomainError, type DomainErrorKind, insufficientStorage, internalReply, isStorageFull, isStoreUnavailable, ReplyError, storeUnavailable } from '../../core/errors.ts';
import { reply, type ServerReply } from '../../core/reply.ts';

const BY_KIND: Readonly<Record<DomainErrorKind, (text: string) => ServerReply>> = {
  'not-found': (text) => reply(550, '5.1.1', text),
  conflict: (text) => reply(550, '5.1.0', text),
  invalid: (text) => reply(501, '5.5.4', text),
  forbidden: (text) => reply(550, '5.7.1', text),
  unauthorized: (text) => reply(535, '5.7.8', text),
  throttled: (text) => reply(454, '4.7.0', text),
};

export function smtpReplyOf(err: unknown): { reply: ServerReply; fault: boolean } {
  if (err instanceof ReplyError) return { reply: err.reply, fault: false };
  if (err instanceof DomainError) return { reply: BY_KIND[err.kind](err.text), fault: false };
  const known = isStorageFull(err) ? insufficientStorage(err) : isStoreUnavailable(err) ? storeUnavailable(err) : internalReply(err);
  return { reply: known.reply, fault: true };
}
