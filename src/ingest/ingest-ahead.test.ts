/**
 * What the caller computed ahead, ingest does not compute again. A stored form (by the
 * authentication worker: IngestMessage.stored) is what
 * ingest stores when its prepend is exactly the one ingest prepends; for any other prepend (spam
 * headers added, a caller's mistake) ingest builds the stored bytes itself, as without one. The
 * facts the MX hooks read from the headers (IngestMessage.facts) are used with those headers, and
 * the MIME nesting depth the worker measured (IngestMessage.mimeDepth) decides the refusal.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testBackends } from '../store/test-backends.ts';
import { prepareBody } from '../core/prepared-body.ts';
import { messageFacts, parseHeaders } from '../mail/headers.ts';
import { createIngest, MAX_MIME_NESTING, type IngestMessage } from './ingest.ts';

for (const backend of await testBackends()) {
  describe(`ingest with a stored form computed ahead (${backend.name})`, { skip: backend.skip }, () => {
    after(() => backend.cleanup());

    it('stores the form computed ahead only for its own prepend', async () => {
      const store = await backend.open();
      try {
        const ingest = createIngest({ store, maxReceivedHeaders: 50 });
        const ann = await store.users.create({ address: 'ann@b.test', passwordHash: 'h', mode: 'open' });
        const raw = Buffer.from('From: sam@a.test\r\nSubject: ahead\r\n\r\nHello.\r\n');
        const prepend = 'Received: by mx.b.test;\r\n\tFri, 4 Dec 2026 10:00:00 +0000\r\n';
        // A marker the real worker never adds: it shows which bytes were stored.
        const ahead = (p: string) => ({ prepend: p, ...prepareBody(Buffer.from(`${p}X-Ahead: 1\r\n${raw}`)) });
        const message = (stored: IngestMessage['stored']): IngestMessage => ({
          channel: 'smtp',
          origin: 'remote',
          envelopeFrom: 'sam@a.test',
          recipients: [ann],
          raw,
          prepend,
          auth: { identity: null, alignedDomain: null, authenticatedDomains: [] },
          stored,
        });
        const rawOf = async (m: IngestMessage) => (await store.messages.get(ann.id, (await ingest.ingest(m))[0]!.messageId!))!.raw.toString();
        assert.equal(await rawOf(message(ahead(prepend))), `${prepend}X-Ahead: 1\r\n${raw}`);
        assert.equal(await rawOf(message(ahead('Received: elsewhere\r\n'))), `${prepend}${raw}`);
        assert.equal(await rawOf(message(undefined)), `${prepend}${raw}`);
      } finally {
        await store.close();
      }
    });

    it("uses the caller's facts with the caller's headers, and reads them itself otherwise; and the caller's MIME depth", async () => {
      const store = await backend.open();
      try {
        const ingest = createIngest({ store, maxReceivedHeaders: 50 });
        const ann = await store.users.create({ address: 'ann@b.test', passwordHash: 'h', mode: 'open' });
        const raw = Buffer.from('From: sam@a.test\r\nSubject: as written\r\n\r\nHello.\r\n');
        const headers = parseHeaders(raw);
        // A subject the bytes do not have: it shows whose facts were stored.
        const facts = { ...messageFacts(headers), subject: 'from the caller' };
        const message: IngestMessage = {
          channel: 'smtp',
          origin: 'remote',
          envelopeFrom: 'sam@a.test',
          recipients: [ann],
          raw,
          prepend: '',
          auth: { identity: null, alignedDomain: null, authenticatedDomains: [] },
        };
        const subjectOf = async (m: IngestMessage) => (await store.messages.get(ann.id, (await ingest.ingest(m))[0]!.messageId!))!.subject;
        assert.equal(await subjectOf({ ...message, headers, facts }), 'from the caller');
        assert.equal(await subjectOf({ ...message, facts }), 'as written', 'facts without their headers are not used');
        assert.equal(await subjectOf({ ...message, headers }), 'as written');
        // The MIME nesting depth measured ahead decides the refusal (the bytes nest nothing).
        await assert.rejects(ingest.ingest({ ...message, mimeDepth: MAX_MIME_NESTING + 1 }), /MIME nesting too deep/);
        assert.equal(await subjectOf({ ...message, mimeDepth: 0 }), 'as written');
      } finally {
        await store.close();
      }
    });
  });
}
