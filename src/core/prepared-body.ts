/**
 * What storing a message computes from its bytes alone: the body's SHA-256
 * (its content address) and the structure columns IMAP FETCH reads. Pure, so
 * that the authentication worker (mail/auth-worker.ts) can compute them off
 * the event loop for the exact bytes ingest will store, and the store uses
 * them instead of computing them again (store/message-batch.ts); without them the
 * store computes them itself, with these same functions.
 */
import { createHash } from 'node:crypto';
import { parseStructure, type MessageStructure } from './mime-structure.ts';
import { imapWireText, type ImapWireText } from './imap-wire.ts';

/** The stored columns of a message's structure (store/schema.ts MessagesTable), null where unknown. */
export interface StructureColumns {
  structure: string | null;
  imap_envelope: string | null;
  imap_bodystructure: string | null;
  imap_body: string | null;
}

/** A message's stored bytes with what the store derives from them. */
export interface PreparedBody {
  /** The bytes as stored. */
  raw: Buffer;
  /** Hex SHA-256 of `raw`. */
  sha256: string;
  columns: StructureColumns;
}

export function prepareBody(raw: Buffer): PreparedBody {
  return { raw, sha256: createHash('sha256').update(raw).digest('hex'), columns: structureColumns(raw) };
}

/**
 * The stored forms of a message's structure: the JSON (SEARCH, BODY[section])
 * and the IMAP wire text of ENVELOPE, BODYSTRUCTURE and BODY, so that IMAP
 * FETCH never parses a stored message again nor renders these items. A
 * message that cannot be parsed is still stored, with nulls; FETCH then
 * computes its structure (and fails the same way, answered NO).
 */
export function structureColumns(raw: Buffer): StructureColumns {
  let structure: MessageStructure;
  try {
    structure = parseStructure(raw);
  } catch {
    return { structure: null, imap_envelope: null, imap_bodystructure: null, imap_body: null };
  }
  return { structure: JSON.stringify(structure), ...wireColumns(imapWireText(structure)) };
}

/** The wire text as columns; a text with NUL (which PostgreSQL's text refuses) stays null and is rendered at each FETCH. */
export function wireColumns(w: ImapWireText): Omit<StructureColumns, 'structure'> {
  const keep = (s: string) => (s.includes('\0') ? null : s);
  return { imap_envelope: keep(w.envelope), imap_bodystructure: keep(w.bodyStructure), imap_body: keep(w.body) };
}
