/**
 * A message written in the web app, as RFC 5322 octets, by nodemailer's
 * MailComposer: encoded words for non-ASCII names, subject and the
 * introduction, a UTF-8 text part in quoted-printable when needed, and a
 * forwarded message as a `message/rfc822` attachment. The result goes to
 * the outbound service like any submitted message (services/compose.ts);
 * nothing here sends anything.
 */
import MailComposer from 'nodemailer/lib/mail-composer';

export interface ComposeMailbox {
  name: string | null;
  address: string;
}

export interface ComposeInput {
  from: string;
  to: ComposeMailbox[];
  cc: ComposeMailbox[];
  subject: string;
  text: string;
  /** Message-IDs with their angle brackets. */
  inReplyTo?: string;
  references?: string[];
  /** The TWM-Intro field (docs/protocol.md: the notice's introduction). */
  intro?: string;
  /** A message forwarded whole. */
  attachMessage?: { raw: Buffer; filename: string };
}

const mailbox = (m: ComposeMailbox) => (m.name ? { name: m.name, address: m.address } : m.address);

export function composeMessage(input: ComposeInput): Promise<Buffer> {
  const composer = new MailComposer({
    from: input.from,
    ...(input.to.length > 0 ? { to: input.to.map(mailbox) } : {}),
    ...(input.cc.length > 0 ? { cc: input.cc.map(mailbox) } : {}),
    subject: input.subject,
    text: input.text,
    ...(input.inReplyTo ? { inReplyTo: input.inReplyTo } : {}),
    ...(input.references && input.references.length > 0 ? { references: input.references } : {}),
    ...(input.intro ? { headers: { 'TWM-Intro': input.intro } } : {}),
    ...(input.attachMessage
      ? { attachments: [{ content: input.attachMessage.raw, contentType: 'message/rfc822', filename: input.attachMessage.filename, contentDisposition: 'attachment' }] }
      : {}),
    newline: 'win',
    // Nothing of the message may come from a file or a URL: every value is the user's text.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return composer.compile().build();
}
