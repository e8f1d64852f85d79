/**
 * The one value for a protocol reply: an SMTP reply this server sends, and
 * the per-recipient result of a delivery attempt (which a DSN reports).
 *
 * Replies are built by the named constructors below, never by string
 * concatenation elsewhere, and formatted to one line only where a line is
 * wanted (the SMTP wire, a DSN's Diagnostic-Code, logs, the queue's
 * `last_error`). A remote server's raw reply text is parsed once, where it
 * arrives (src/delivery/smtp-replies.ts), by `parseReply`.
 */

/**
 * A reply. `code` is null for a local description of a failure that no
 * server answered (connection refused: `4.4.1 connection refused by …`);
 * `enhanced` is null when a remote server's reply carried no RFC 3463 code
 * (`554 no`), so the reply is reported exactly as it was received.
 */
export interface Reply {
  /** SMTP basic code, e.g. 550; null for a local description. */
  readonly code: number | null;
  /** RFC 3463 enhanced status code, e.g. "5.1.1"; null when a remote server sent none. */
  readonly enhanced: string | null;
  /** The text after the codes (client-safe for the replies we send). */
  readonly text: string;
}

/** A reply this server sends itself: always both codes. */
export interface ServerReply extends Reply {
  readonly code: number;
  readonly enhanced: string;
}

export function reply(code: number, enhanced: string, text: string): ServerReply {
  return { code, enhanced, text };
}

/** A local description of a delivery problem: an RFC 3463 code, no server code (Diagnostic-Code type X-Twoway). */
export function localReply(enhanced: string, text: string): Reply {
  return { code: null, enhanced, text };
}

/** Temporary iff 4xx (or a 4.x.x local description): the sender should retry later. */
export function isTemporary(r: Reply): boolean {
  if (r.code !== null) return r.code >= 400 && r.code < 500;
  return r.enhanced?.startsWith('4.') === true;
}

/**
 * The RFC 3463 status of a reply: its enhanced code, else the class of its
 * basic code (`554 …` gives 5.0.0), else `fallback`.
 */
export function statusOf(r: Reply, fallback: string): string {
  if (r.enhanced !== null) return r.enhanced;
  if (r.code !== null) return `${Math.floor(r.code / 100)}.0.0`;
  return fallback;
}

/** One line: `550 5.1.1 text`, `4.4.1 text`, `554 text`, as the parts are present. */
export function formatReply(r: Reply): string {
  let line = r.code === null ? '' : String(r.code);
  if (r.enhanced !== null) line = line === '' ? r.enhanced : `${line} ${r.enhanced}`;
  if (r.text !== '') line = line === '' ? r.text : `${line} ${r.text}`;
  return line;
}

const BASIC = /^([245]\d\d)(?:[ -]|$)/;
const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/;

/**
 * A remote server's reply, already on one line (see oneLine in
 * smtp-replies.ts), as a Reply. Only the codes are taken apart; the text is
 * kept verbatim, so `formatReply(parseReply(line)) === line` for a trimmed
 * line (a stray continuation hyphen, `550-5.7.1 x`, becomes a space).
 */
export function parseReply(line: string): Reply {
  let rest = line.trim();
  let code: number | null = null;
  let enhanced: string | null = null;
  const basic = BASIC.exec(rest);
  if (basic) {
    code = Number(basic[1]);
    rest = rest.slice(basic[0].length);
  }
  const ext = ENHANCED.exec(rest);
  if (ext) {
    enhanced = ext[1]!;
    rest = rest.slice(ext[0].length);
  }
  return { code, enhanced, text: rest };
}

/**
 * The replies this server gives, by name. Texts that name a recipient or a
 * peer take it as an argument; everything else a caller needs is `reply()`.
 */
export const replies = {
  // Delivery results (queue worker and transports).
  deliveredLocally: () => reply(250, '2.0.0', 'delivered locally'),
  noSuchLocalUser: (recipient: string) => reply(550, '5.1.1', `<${recipient}>: no such user here`),
  localDeliveryError: (why: string) => reply(451, '4.3.0', `local delivery error: ${why}`),
  /** A problem on our side before any transport ran (4.3.0, no server code). */
  localProblem: (what: string) => localReply('4.3.0', what),
  shuttingDown: () => localReply('4.3.2', 'SMTP transport is shutting down'),
  noResult: () => localReply('4.3.0', 'internal error: no result for this recipient'),
  unsendableSender: (sender: string) => localReply('5.1.7', `sender address cannot be sent in an SMTP command: ${JSON.stringify(sender)}`),
  unsendableRecipient: () => localReply('5.1.3', 'recipient address cannot be sent in an SMTP command'),
  /** A DNS outcome for the destination (RFC 3463 codes of docs/architecture.md section 3.4). */
  noRoute: (enhanced: string, why: string) => localReply(enhanced, why),
  noExchangerReached: (domain: string) => localReply('4.4.1', `no mail exchanger of ${domain} could be reached`),
  nonPublicExchangers: (domain: string, refused: string[]) =>
    localReply('5.4.4', `${domain}: every mail exchanger address is loopback, private or otherwise non-public (${refused.join(', ')}); not connecting`),

  // Two-Way Mail outcomes, in the shape of SMTP replies (the queue and DSNs treat them alike).
  twmDiscoveryFailed: (domain: string, why: string) => reply(451, '4.4.3', `TWM discovery for ${domain} failed: ${why}`),
  twmExpiredUnsent: (why: string) => reply(554, '5.4.7', `TWM: ${why}`),
  twmUnreachable: (why: string) => reply(451, '4.4.1', `TWM: ${why}`),
  twmRefusedTemporarily: (why: string) => reply(451, '4.0.0', `TWM: ${why}`),
  twmRefused: (why: string) => reply(550, '5.0.0', `TWM: ${why}`),
  twmUnreadableResult: (endpoint: string) => reply(451, '4.5.0', `TWM: unreadable notice result from ${endpoint}`),
  twmDeferred: (wait: string) => reply(451, '4.2.0', `TWM: recipient deferred${wait}`),
  twmUnknownRecipient: (recipient: string) => reply(550, '5.1.1', `TWM: <${recipient}>: unknown recipient`),
  twmAccepted: (noticeId: string, status: string) => reply(250, '2.0.0', `TWM notice ${noticeId}: ${status}`),

  // Connection-level failures of outbound SMTP, in words (RFC 3463 4.4.x: no server answered).
  connectionRefused: (peer: string) => localReply('4.4.1', `connection refused by ${peer}`),
  unreachable: (peer: string, code: string) => localReply('4.4.1', `${peer} is unreachable (${code})`),
  connectTimeout: (peer: string) => localReply('4.4.1', `connection to ${peer} timed out`),
  connectionReset: (peer: string) => localReply('4.4.2', `connection reset by ${peer}`),
  connectionClosed: (peer: string) => localReply('4.4.2', `${peer} closed the connection unexpectedly`),
  noGreeting: (peer: string) => localReply('4.4.2', `no greeting from ${peer} in time`),
  tlsTimeout: (peer: string) => localReply('4.4.2', `TLS handshake with ${peer} timed out`),
  noAnswer: (peer: string) => localReply('4.4.2', `${peer} did not answer in time`),
  lostConnection: (peer: string, why: string) => localReply('4.4.2', `lost connection with ${peer}: ${why}`),
  noUsableConnection: (peer: string) => localReply('4.4.2', `no usable connection to ${peer}`),
  messageTooBigFor: (peer: string, why: string) => localReply('5.3.4', `${peer}: ${why}`),

  // SMTP session replies.
  internalError: () => reply(451, '4.3.0', 'Internal error, please try again later'),
  insufficientStorage: () => reply(452, '4.3.1', 'Insufficient system storage, please try again later'),
  storeUnavailable: () => reply(451, '4.3.0', 'The mail store is unavailable, please try again later'),
  authRequired: () => reply(530, '5.7.0', 'Authentication required'),
  authFailed: () => reply(535, '5.7.8', 'Authentication credentials invalid'),
  unrecognizedAuth: () => reply(504, '5.5.4', 'Unrecognized authentication type'),
  mailLoop: (received: number) => reply(554, '5.4.6', `Mail loop detected: ${received} Received headers`),
} as const;
