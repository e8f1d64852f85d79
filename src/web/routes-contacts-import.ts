/**
 * Importing a .vcf file from the browser: a multipart/form-data upload (the
 * only one the web app accepts, in a context of its own so every other form
 * stays urlencoded and 16 KiB), at most IMPORT_LIMIT bytes, imported by
 * services.contacts.importCards, the import of `twoway contacts import`.
 * The summary (imported, merged, rejected with line and reason) comes back
 * in the redirect's query, so a reload shows it again and imports nothing.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { invalid } from '../core/errors.ts';
import { html, type SafeHtml } from './html.ts';
import { page } from './layout.ts';
import { seeOther, sendHtml, signedIn, type WebDeps } from './context.ts';
import { boundaryOf, parseMultipart, type MultipartForm } from './multipart.ts';
import { contactsNav, who } from './routes-contacts.ts';

/** A .vcf of some thousands of cards; larger exports go through `twoway contacts import` or CardDAV. */
export const IMPORT_LIMIT = 2 * 1024 * 1024;
const LIMIT_TEXT = `${IMPORT_LIMIT / 1024 / 1024} MiB`;
/** An upload over the limit is still read (and dropped) up to this size, so the browser can show the 413 page; beyond it the connection is cut. */
const DRAIN_LIMIT = 8 * IMPORT_LIMIT;
/** How many rejections the summary lists (the redirect carries them); the count is always whole. */
const SHOWN_REJECTIONS = 20;

const filesOf = new WeakMap<FastifyRequest, MultipartForm['files']>();

function summary(q: Record<string, string | string[] | undefined>): SafeHtml {
  const n = (k: string) => (typeof q[k] === 'string' && /^\d{1,9}$/.test(q[k]) ? Number(q[k]) : null);
  const imported = n('imported');
  const merged = n('merged');
  const rejected = n('rejected');
  if (imported === null || merged === null || rejected === null) return html`<div role="status"></div>`;
  const reasons = (Array.isArray(q.r) ? q.r : typeof q.r === 'string' ? [q.r] : []).slice(0, SHOWN_REJECTIONS).map((r) => {
    const m = /^(\d{1,9}):(.*)$/s.exec(r);
    return m ? html`<li>Line ${m[1]!}: ${m[2]!.slice(0, 200)}</li>` : '';
  });
  const file = typeof q.file === 'string' ? q.file.slice(0, 200) : '';
  return html`<div role="status"><p class="${rejected > 0 ? 'error' : 'notice'}">${file ? `${file}: ` : ''}imported ${imported}, merged ${merged}, rejected ${rejected}.</p></div>
${reasons.length > 0 ? html`<h2>Rejected cards</h2><ul class="rejected">${reasons}</ul>${rejected > reasons.length ? html`<p class="muted">and ${rejected - reasons.length} more (run <code>twoway contacts import</code> for the whole list).</p>` : ''}` : ''}`;
}

export function contactsImportRoutes(app: FastifyInstance, deps: WebDeps): void {
  app.get('/contacts/import', async (request, reply) => sendHtml(reply, importForm(request, deps)));

  // Its own context: the multipart parser and the upload's limit apply to this route only.
  app.register(async (upload) => {
    upload.addContentTypeParser('multipart/form-data', readUpload);

    upload.setErrorHandler(async (err, request, reply) => {
      if ((err as { statusCode?: number }).statusCode !== 413) throw err;
      return sendHtml(reply, tooLargePage(request, deps), 413);
    });

    upload.post('/contacts/import', async (request, reply) => {
      const s = signedIn(request)!;
      const file = (filesOf.get(request) ?? []).find((f) => f.field === 'file');
      if (!file || file.bytes === 0) throw invalid('Choose a .vcf file to import');
      const result = await deps.services.contacts.importCards(s.user.id, file.text);
      const q = new URLSearchParams({ file: file.filename.slice(0, 200), imported: String(result.imported), merged: String(result.merged), rejected: String(result.rejected.length) });
      for (const r of result.rejected.slice(0, SHOWN_REJECTIONS)) q.append('r', `${r.line}:${r.reason.slice(0, 160)}`);
      return seeOther(reply, `/contacts/import?${q}`);
    });
  });
}

/** The import page: the form, and the summary of the last import when the query carries one. */
function importForm(request: FastifyRequest, deps: WebDeps): SafeHtml {
  const s = signedIn(request)!;
  return page({
    title: 'Import contacts',
    section: 'contacts',
    assets: deps.assets,
    who: who(s),
    body: html`<h1>Import contacts</h1>
${contactsNav('import')}
${summary(request.query as Record<string, string | string[] | undefined>)}
<p class="muted">A .vcf file exported from another address book (any number of cards, up to ${LIMIT_TEXT}). A card whose UID is already here replaces it (merged); a card that cannot be read is rejected with its line, and nothing of it is stored.</p>
<form method="post" action="/contacts/import" enctype="multipart/form-data">
<input type="hidden" name="_csrf" value="${s.session.csrfSecret}">
<label for="vcf">vCard file (.vcf)</label>
<input type="file" id="vcf" name="file" accept=".vcf,text/vcard,text/x-vcard" required>
<div class="actions"><button type="submit" class="primary">Import</button></div>
</form>`,
  });
}

/** The page an upload over the limit gets (a 413). */
function tooLargePage(request: FastifyRequest, deps: WebDeps): SafeHtml {
  const s = signedIn(request);
  return page({
    title: 'File too large',
    section: 'error',
    assets: deps.assets,
    who: s ? who(s) : undefined,
    body: html`<h1>File too large</h1><p class="error" role="alert">The file is larger than ${LIMIT_TEXT}, the most this page imports at once. Nothing was imported. Split the file, or import it with <code>twoway contacts import</code>.</p><p><a href="/contacts/import">Back to the import</a></p>`,
  });
}

/**
 * The multipart/form-data body parser of the upload context. Read by hand,
 * not with a parser body limit: past the limit the rest of the upload is read
 * and dropped (up to DRAIN_LIMIT), because a browser whose upload is cut off
 * shows a connection error, never our page.
 */
function readUpload(request: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: Record<string, string>) => void): void {
  const tooLarge = () => Object.assign(new Error('upload too large'), { statusCode: 413 });
  const declared = Number(request.headers['content-length']);
  if (declared > DRAIN_LIMIT) {
    done(tooLarge(), undefined);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (err: Error | null, body?: Record<string, string>) => {
    if (finished) return;
    finished = true;
    done(err, body);
  };
  payload.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= IMPORT_LIMIT) chunks.push(chunk);
    else chunks.length = 0;
    if (size > DRAIN_LIMIT) {
      finish(tooLarge());
      payload.destroy();
    }
  });
  payload.on('error', (err) => finish(err));
  payload.on('end', () => {
    if (size > IMPORT_LIMIT) return finish(tooLarge());
    try {
      const parsed = parseMultipart(Buffer.concat(chunks), boundaryOf(request.headers['content-type']));
      filesOf.set(request, parsed.files);
      // The fields (the CSRF token) are the body the web app's preHandler checks, as for any form.
      finish(null, parsed.fields);
    } catch (err) {
      finish(err as Error);
    }
  });
}
