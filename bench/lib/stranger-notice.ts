/**
 * A stranger's signed TWM notice to bea@b.test, as bench/stranger-cpu.ts and
 * bench/stranger-threads.ts send it: the size and digest of a 50 KB message
 * the sender keeps for a fetch, with an introduction, from one of 100
 * addresses at s.test, signed with the key published at STRANGER_KEYID.
 *
 * The notice id is made as a twoway sender makes it (delivery/twm-transport.ts
 * `noticeId`: the time, then 128 random bits), since the recipient's rows are
 * keyed by it; `ids: 'random'` sends 128 random bits alone, as a sender that
 * does not order its ids would (each notice's rows then land on B-tree pages
 * of their own at the recipient).
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { noticeToJson } from '../../src/core/twm-schema.ts';
import { signRequest } from '../../src/core/twm-signature.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS } from '../../src/core/twm-types.ts';
import { noticeId } from '../../src/delivery/twm-transport.ts';

/** How the notice ids are made: as twoway makes them (time-ordered), or wholly random. */
export type StrangerIds = 'ordered' | 'random';

export const STRANGER_KEYID = 'twm1._twoway.s.test';

/** The `i`th notice for the TWM endpoint at `authority`: its body and the request's headers. */
export function strangerNotice(i: number, authority: string, privateKey: KeyObject, ids: StrangerIds = 'ordered'): { body: Buffer; headers: Record<string, string> } {
  const created = new Date(Math.floor(Date.now() / 1000) * 1000);
  const body = noticeToJson({
    id: ids === 'random' ? randomBytes(16).toString('base64url') : noticeId(new Date()),
    from: `stranger${i % 100}@s.test`,
    to: ['bea@b.test'],
    size: 50 * 1024,
    sha256: createHash('sha256').update(`message ${i}`).digest('hex'),
    created,
    expires: new Date(created.getTime() + 7 * 86_400_000),
    intro: `Hello Bea, this is stranger ${i % 100}; may I write to you about the conference?`,
  });
  const headers = signRequest({ method: 'POST', targetUri: `https://${authority}${TWM_PATHS.notice}`, authority, contentType: TWM_MEDIA_TYPES.notice, body, keyid: STRANGER_KEYID, privateKey, created });
  return { body, headers: { host: authority, 'content-type': TWM_MEDIA_TYPES.notice, ...headers } };
}
