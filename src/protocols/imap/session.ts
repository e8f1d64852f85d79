/**
 * One IMAP connection: its state (not authenticated, authenticated,
 * selected, logout), the commands of RFC 9051 and the extensions listed in
 * docs/imap.md. Commands run one at a time, in order; the transport
 * (server.ts) feeds octets in and takes responses out.
 */
import { bad, ImapError, no, type ImapAccount, type ImapHooks, type MailboxInfo, type MessageMeta } from './hooks.ts';
import { CommandReader, textOf, tokenize, type ReaderEvent, type Token } from './parser.ts';
import { decodeMailboxName, inRanges, parseSequenceSet, encodeMailboxName, internalDate, literal, parseImapDate, sequenceSet, str, utf8, type Chunk } from './format.ts';
import { binaryOf, parseFetchItems, sectionOf, type FetchItem } from './fetch.ts';
import { evaluate, needsData, parseSearch, takeCharset, type SearchMessage } from './search.ts';
import { SelectedMailbox } from './selected.ts';
import { WireCache, type RenderedStructure } from './wire-cache.ts';
import type { MessageStructure } from '../../core/mime-structure.ts';

export interface SessionLimits {
  maxLine: number;
  maxLiteral: number;
  commandsPerSecond: number;
  commandBurst: number;
}

export interface SessionTransport {
  /** False when the connection's send buffer is full: call drain() before writing more. */
  write(chunks: Chunk[]): boolean;
  /** Resolves when the send buffer has room again (or the connection is gone). */
  drain(): Promise<void>;
  /** After the tagged OK of STARTTLS: switch the connection to TLS. */
  startTls(): Promise<void>;
  /** After the tagged OK of COMPRESS DEFLATE. */
  startDeflate(): void;
  close(): void;
  readonly secure: boolean;
  readonly compressed: boolean;
  readonly remoteAddress: string;
}

export interface SessionOptions {
  hostname: string;
  hooks: ImapHooks;
  allowPlaintextAuth: boolean;
  tlsAvailable: boolean;
  limits: SessionLimits;
  /** ENVELOPE and BODYSTRUCTURE already rendered, shared by the listener's sessions. */
  wireCache?: WireCache;
  onError?: (err: unknown) => void;
  /**
   * Called once a command's tagged reply is handed to the transport: its tag and name, when its
   * last octet arrived and when it started to run (performance.now()). Timing traces only.
   */
  trace?: (tag: string, command: string, arrivedAt: number, startedAt: number) => void;
}

type State = 'notauth' | 'auth' | 'selected' | 'logout';

const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
const FLAG_RE = /^(\\(Answered|Flagged|Deleted|Seen|Draft)|[^\\\s(){%*"\]\x00-\x1f\x7f]+)$/i;
/** Over the command rate, commands wait for this many milliseconds' worth of tokens at a time (throttle()). */
const THROTTLE_BATCH_MS = 20;
const STATUS_ITEMS = new Set(['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ', 'RECENT', 'APPENDLIMIT', 'MAILBOXID']);

/** RFC 4315 uid-set in the order of the messages (APPENDUID of a MULTIAPPEND): ranges only where UIDs ascend by one. */
function sequenceSetInOrder(uids: number[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < uids.length) {
    let j = i;
    while (j + 1 < uids.length && uids[j + 1] === uids[j]! + 1) j++;
    out.push(i === j ? String(uids[i]) : `${uids[i]}:${uids[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

function canonicalFlag(f: string): string {
  const sys = SYSTEM_FLAGS.find((s) => s.toLowerCase() === f.toLowerCase());
  return sys ?? f;
}

export class ImapSession {
  private state: State = 'notauth';
  private account: ImapAccount | null = null;
  private box: SelectedMailbox | null = null;
  private readonly reader: CommandReader;
  private readonly enabled = new Set<string>();
  private readonly queue: ReaderEvent[] = [];
  /** With o.trace: when each event of `queue` arrived, in step with it. */
  private readonly arrivals: number[] = [];
  private wake: (() => void) | null = null;
  private running = false;
  private dirty = false;
  private idling = false;
  private unwatch: (() => void) | null = null;
  private tokens: number;
  private tokensAt = performance.now();
  private syncChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly t: SessionTransport,
    private readonly o: SessionOptions,
  ) {
    this.reader = new CommandReader({ maxLine: o.limits.maxLine, maxLiteral: o.limits.maxLiteral, maxOtherLiteral: Math.min(o.limits.maxLiteral, 1024 * 1024) });
    this.tokens = o.limits.commandBurst;
  }

  greet(): void {
    this.send(`* OK [CAPABILITY ${this.capabilities().join(' ')}] ${this.o.hostname} IMAP ready`);
  }

  /** Octets from the client (after TLS and inflate). */
  input(chunk: Buffer): void {
    if (this.state === 'logout') return;
    this.enqueue(this.reader.push(chunk));
  }

  /** The connection is gone. */
  end(): void {
    this.state = 'logout';
    this.unwatch?.();
    this.unwatch = null;
    this.account?.release();
    this.account = null;
    this.wake?.();
  }

  /** The session has logged out or been ended: further input is ignored. */
  get ended(): boolean {
    return this.state === 'logout';
  }

  /** Bytes the reader holds: STARTTLS refuses to start with any (RFC 9051 11.1, command injection). */
  get bufferedInput(): number {
    return this.reader.buffered;
  }

  private enqueue(events: ReaderEvent[]): void {
    if (events.length === 0) return;
    this.queue.push(...events);
    if (this.o.trace) {
      const now = performance.now();
      for (let i = 0; i < events.length; i++) this.arrivals.push(now);
    }
    const w = this.wake;
    this.wake = null;
    w?.();
    if (!this.running) void this.run();
  }

  private async next(): Promise<ReaderEvent | null> {
    while (this.queue.length === 0) {
      if (this.state === 'logout') return null;
      await new Promise<void>((r) => (this.wake = r));
    }
    this.arrivals.shift();
    return this.queue.shift()!;
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && this.state !== 'logout') {
        const ev = this.queue.shift()!;
        const arrivedAt = this.arrivals.shift() ?? 0;
        await this.throttle();
        await this.handle(ev, arrivedAt);
      }
    } catch (err) {
      this.o.onError?.(err);
      this.send('* BYE Internal error');
      this.state = 'logout';
      this.t.close();
    } finally {
      this.running = false;
    }
  }

  /**
   * The command rate limit: a token per command, `commandsPerSecond` of them a second, up to
   * `commandBurst`. Over the rate, the command waits for a batch of tokens (THROTTLE_BATCH_MS
   * worth), not for one: a timer per command fires at most about once a millisecond, which held
   * mbsync's pipelined `UID FETCH`es (one per message) to half the rate, each of them then
   * flushed, deflated and sent on its own (traced: about 370 octets per TLS record, mbsync
   * waiting on the server 60% of the time, after the first 4,000 commands of a 10,000-message
   * sync). Woken once per batch, the commands of a batch run in one turn and go out together.
   */
  private async throttle(): Promise<void> {
    const { commandsPerSecond: rate, commandBurst: burst } = this.o.limits;
    this.refill(rate, burst);
    if (this.tokens < 1) {
      // Over the rate: the commands wait (the client sees a slower server, not an error).
      const batch = Math.min(burst, Math.max(1, (rate * THROTTLE_BATCH_MS) / 1000));
      await new Promise((r) => setTimeout(r, ((batch - this.tokens) / rate) * 1000));
      this.refill(rate, burst);
    }
    // A timer that fired a little early leaves a debt, which the next command waits for.
    this.tokens -= 1;
  }

  private refill(rate: number, burst: number): void {
    const now = performance.now();
    this.tokens = Math.min(burst, this.tokens + ((now - this.tokensAt) / 1000) * rate);
    this.tokensAt = now;
  }

  private send(line: string | Chunk[]): void {
    if (typeof line === 'string') this.t.write([line, '\r\n']);
    else this.t.write([...line, '\r\n']);
  }

  private async handle(ev: ReaderEvent, arrivedAt: number): Promise<void> {
    if (ev.kind === 'toobig') {
      this.send(ev.tag ? `${ev.tag} BAD [TOOBIG] ${ev.what}` : `* BAD [TOOBIG] ${ev.what}`);
      if (ev.fatal) {
        this.send('* BYE [TOOBIG] Closing: a literal over the limit was already on its way');
        this.end();
        this.t.close();
      }
      return;
    }
    if (ev.kind === 'continue') {
      if (this.state === 'notauth' && !/^(LOGIN|AUTHENTICATE)$/i.test(ev.command)) {
        this.send(`${ev.tag} BAD [CLIENTBUG] Literals before login are for LOGIN only`);
        this.enqueue(this.reader.refuse());
        return;
      }
      this.send('+ Ready for literal data');
      this.enqueue(this.reader.accept());
      return;
    }
    await this.command(ev.command.parts, arrivedAt);
  }

  private async command(parts: Array<string | Buffer>, arrivedAt: number): Promise<void> {
    let toks: Token[];
    let tag = '*';
    try {
      toks = tokenize({ parts });
    } catch (err) {
      const m = /^([^\s(){%*"\\\]+]+)\s/.exec(String(parts[0] ?? ''));
      this.send(`${m ? m[1] : '*'} BAD [CLIENTBUG] ${typeof err === 'string' ? err : 'Syntax error'}`);
      return;
    }
    const tagTok = toks[0];
    if (tagTok?.t !== 'atom' || !/^[^+\s(){%*"\\\]]+$/.test(tagTok.v)) {
      this.send('* BAD [CLIENTBUG] Missing or invalid tag');
      return;
    }
    tag = tagTok.v;
    const nameTok = toks[1];
    if (nameTok?.t !== 'atom') {
      this.send(`${tag} BAD [CLIENTBUG] Missing command`);
      return;
    }
    let name = nameTok.v.toUpperCase();
    let args = toks.slice(2);
    let uid = false;
    if (name === 'UID') {
      const sub = args[0];
      if (sub?.t !== 'atom') {
        this.send(`${tag} BAD [CLIENTBUG] UID needs a command`);
        return;
      }
      name = sub.v.toUpperCase();
      args = args.slice(1);
      uid = true;
      if (!['FETCH', 'STORE', 'SEARCH', 'COPY', 'MOVE', 'EXPUNGE'].includes(name)) {
        this.send(`${tag} BAD [CLIENTBUG] UID ${name.slice(0, 20)} is not a command`);
        return;
      }
    }
    this.currentTag = tag;
    const startedAt = this.o.trace ? performance.now() : 0;
    try {
      const text = await this.dispatch(tag, name, args, uid);
      if (this.state === 'logout') return;
      await this.catchUp(!(!uid && ['FETCH', 'STORE', 'SEARCH', 'COPY'].includes(name)));
      this.send(`${tag} OK ${text}`);
    } catch (err) {
      if (err instanceof Skip) return;
      if (err instanceof ImapError) {
        // Every refusal carries an RFC 5530 code: a malformed command is the client's bug, a refused action CANNOT.
        this.send(`${tag} ${err.kind} [${err.code ?? (err.kind === 'BAD' ? 'CLIENTBUG' : 'CANNOT')}] ${oneLine(err.message)}`);
      } else if (typeof err === 'string') {
        this.send(`${tag} BAD [CLIENTBUG] ${oneLine(err)}`);
      } else {
        this.o.onError?.(err);
        this.send(`${tag} NO [SERVERBUG] The command failed; it has been logged`);
      }
    } finally {
      this.o.trace?.(tag, uid ? `UID ${name}` : name, arrivedAt, startedAt);
    }
  }

  private capabilities(): string[] {
    const caps = ['IMAP4rev1', 'IMAP4rev2', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE'];
    if (this.state === 'notauth') {
      if (!this.t.secure && this.o.tlsAvailable) caps.push('STARTTLS');
      if (this.t.secure || this.o.allowPlaintextAuth) caps.push('AUTH=PLAIN');
      else caps.push('LOGINDISABLED');
      return caps;
    }
    caps.push(
      'NAMESPACE',
      'UIDPLUS',
      'MULTIAPPEND',
      'MOVE',
      'UNSELECT',
      'CHILDREN',
      'SPECIAL-USE',
      'CONDSTORE',
      'QRESYNC',
      'ESEARCH',
      'LIST-EXTENDED',
      'LIST-STATUS',
      'STATUS=SIZE',
      `APPENDLIMIT=${this.o.limits.maxLiteral}`,
      'UTF8=ACCEPT',
      'OBJECTID',
      'BINARY',
    );
    if (!this.t.compressed) caps.push('COMPRESS=DEFLATE');
    return caps;
  }

  private need(...states: State[]): void {
    if (states.includes(this.state)) return;
    if (this.state === 'notauth') throw bad('CLIENTBUG', 'Log in first');
    if (states.includes('selected')) throw bad('CLIENTBUG', 'Select a mailbox first');
    throw bad('CLIENTBUG', 'Not allowed in this state');
  }

  private get condstore(): boolean {
    return this.enabled.has('CONDSTORE');
  }

  private get qresync(): boolean {
    return this.enabled.has('QRESYNC');
  }

  private get rev2(): boolean {
    return this.enabled.has('IMAP4REV2');
  }

  private mailboxArg(t: Token | undefined): string {
    if (!t || t.t === 'list' || t.t === 'nil') throw 'Mailbox name expected';
    const raw = t.t === 'atom' ? t.v : t.v.toString('utf8');
    const name = this.enabled.has('UTF8=ACCEPT') ? raw : decodeMailboxName(raw);
    if (name.toUpperCase() === 'INBOX') return 'INBOX';
    return name;
  }

  private mailboxOut(name: string, out: Chunk[]): void {
    if (this.enabled.has('UTF8=ACCEPT')) utf8(name, out);
    else str(encodeMailboxName(name), out);
  }

  private async dispatch(tag: string, name: string, args: Token[], uid: boolean): Promise<string> {
    switch (name) {
      case 'CAPABILITY':
        this.send(`* CAPABILITY ${this.capabilities().join(' ')}`);
        return 'CAPABILITY completed';
      case 'NOOP':
      case 'CHECK':
        if (name === 'CHECK') this.need('selected');
        return `${name} completed`;
      case 'LOGOUT':
        this.send('* BYE Logging out');
        this.send(`${tag} OK LOGOUT completed`);
        this.end();
        this.t.close();
        return '';
      case 'ID':
        this.send(['* ID ("name" "twoway" "vendor" "twoway")']);
        return 'ID completed';
      case 'STARTTLS':
        return this.startTls(tag);
      case 'LOGIN':
        return this.login(args);
      case 'AUTHENTICATE':
        return this.authenticate(args);
      case 'ENABLE':
        return this.enable(args);
      case 'COMPRESS':
        return this.compress(tag, args);
      default:
        return this.dispatchMailboxCommand(name, args, uid);
    }
  }

  /** The commands on mailboxes (dispatch's second part); the rest go on to dispatchMessageCommand. */
  private dispatchMailboxCommand(name: string, args: Token[], uid: boolean): string | Promise<string> {
    switch (name) {
      case 'SELECT':
      case 'EXAMINE':
        return this.select(name, args);
      case 'UNSELECT':
      case 'CLOSE':
        return this.close(name);
      case 'CREATE':
        return this.simpleMailbox(args, async (a, n) => {
          const cleaned = n.replace(/\/+$/, '');
          validName(cleaned);
          await a.create(cleaned);
        }, 'CREATE');
      case 'DELETE':
        return this.simpleMailbox(args, (a, n) => a.delete(n), 'DELETE');
      case 'RENAME':
        return this.rename(args);
      case 'SUBSCRIBE':
        return this.simpleMailbox(args, (a, n) => a.subscribe(n, true), 'SUBSCRIBE');
      case 'UNSUBSCRIBE':
        return this.simpleMailbox(args, (a, n) => a.subscribe(n, false), 'UNSUBSCRIBE');
      case 'LIST':
        return this.list(args, false);
      case 'LSUB':
        return this.list(args, true);
      case 'NAMESPACE':
        this.need('auth', 'selected');
        this.send('* NAMESPACE (("" "/")) NIL NIL');
        return 'NAMESPACE completed';
      case 'STATUS':
        return this.status(args);
      case 'APPEND':
        return this.append(args);
      default:
        return this.dispatchMessageCommand(name, args, uid);
    }
  }

  /** The commands on the selected mailbox's messages (dispatch's last part), and the unknown ones. */
  private dispatchMessageCommand(name: string, args: Token[], uid: boolean): Promise<string> {
    switch (name) {
      case 'IDLE':
        return this.idle();
      case 'EXPUNGE':
        return this.expunge(args, uid);
      case 'SEARCH':
        return this.search(args, uid);
      case 'FETCH':
        return this.fetch(args, uid);
      case 'STORE':
        return this.store(args, uid);
      case 'COPY':
      case 'MOVE':
        return this.copyMove(name, args, uid);
      case 'DONE':
        throw bad('CLIENTBUG', 'DONE without IDLE');
      default:
        throw bad(null, `Unknown command ${name.slice(0, 30)}`);
    }
  }

  // --- not authenticated -------------------------------------------------

  private async startTls(tag: string): Promise<string> {
    if (this.t.secure) throw bad('CLIENTBUG', 'TLS is already active');
    if (!this.o.tlsAvailable) throw no('CANNOT', 'TLS is not available');
    if (this.state !== 'notauth') throw bad('CLIENTBUG', 'STARTTLS before login only');
    if (this.reader.buffered > 0 || this.queue.length > 0) throw bad('CLIENTBUG', 'Data after STARTTLS; refused');
    this.send(`${tag} OK Begin TLS negotiation now`);
    await this.t.startTls();
    throw new Skip();
  }

  private plaintextRefused(): boolean {
    return !this.t.secure && !this.o.allowPlaintextAuth;
  }

  private async doLogin(user: string, pass: string): Promise<string> {
    const account = await this.o.hooks.login(user, pass, this.t.remoteAddress);
    this.account = account;
    this.state = 'auth';
    this.unwatch = account.watch(() => this.onChange());
    return `[CAPABILITY ${this.capabilities().join(' ')}] Logged in`;
  }

  private async login(args: Token[]): Promise<string> {
    if (this.state !== 'notauth') throw bad('CLIENTBUG', 'Already logged in');
    if (this.plaintextRefused()) throw no('PRIVACYREQUIRED', 'Use STARTTLS (or port 993) before LOGIN');
    const user = textOf(args[0]);
    const pass = textOf(args[1]);
    if (user === null || pass === null || args.length !== 2) throw bad(null, 'LOGIN needs a user name and a password');
    return this.doLogin(user, pass);
  }

  private async authenticate(args: Token[]): Promise<string> {
    if (this.state !== 'notauth') throw bad('CLIENTBUG', 'Already logged in');
    const mech = textOf(args[0])?.toUpperCase();
    if (mech !== 'PLAIN') throw no('CANNOT', 'Only AUTHENTICATE PLAIN is supported');
    if (this.plaintextRefused()) throw no('PRIVACYREQUIRED', 'Use STARTTLS (or port 993) before AUTHENTICATE');
    let b64 = textOf(args[1]);
    if (b64 === null) {
      this.send('+ ');
      const ev = await this.next();
      if (!ev) throw new Skip();
      if (ev.kind !== 'command') throw bad(null, 'Bad SASL response');
      b64 = String(ev.command.parts[0] ?? '').trim();
    }
    if (b64 === '*') throw bad(null, 'Authentication cancelled');
    if (b64 === '=') b64 = '';
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw bad(null, 'Bad base64 in SASL response');
    const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
    if (parts.length !== 3) throw bad(null, 'Bad PLAIN response');
    const [authz, user, pass] = parts as [string, string, string];
    if (authz !== '' && authz.toLowerCase() !== user.toLowerCase()) throw no('AUTHORIZATIONFAILED', 'Acting as another user is not allowed');
    return this.doLogin(user, pass);
  }

  private enable(args: Token[]): string {
    this.need('auth', 'selected');
    const done: string[] = [];
    for (const a of args) {
      const cap = textOf(a)?.toUpperCase();
      if (!cap) throw bad(null, 'ENABLE takes capability names');
      if (!['CONDSTORE', 'QRESYNC', 'IMAP4REV2', 'UTF8=ACCEPT'].includes(cap)) continue;
      if (!this.enabled.has(cap)) {
        this.enabled.add(cap);
        done.push(cap);
      }
      if (cap === 'QRESYNC') this.enabled.add('CONDSTORE');
    }
    this.send(`* ENABLED${done.map((d) => ` ${d}`).join('')}`);
    return 'ENABLE completed';
  }

  private compress(tag: string, args: Token[]): string {
    this.need('auth', 'selected');
    if (textOf(args[0])?.toUpperCase() !== 'DEFLATE') throw bad(null, 'COMPRESS DEFLATE only');
    if (this.t.compressed) throw no('COMPRESSIONACTIVE', 'Compression is already on');
    this.send(`${tag} OK DEFLATE active`);
    this.t.startDeflate();
    throw new Skip();
  }

  // --- mailboxes ---------------------------------------------------------

  private async rename(args: Token[]): Promise<string> {
    this.need('auth', 'selected');
    const from = this.mailboxArg(args[0]);
    const to = this.mailboxArg(args[1]);
    validName(to);
    await this.account!.rename(from, to);
    return 'RENAME completed';
  }

  private async simpleMailbox(args: Token[], fn: (a: ImapAccount, name: string) => Promise<void>, what: string): Promise<string> {
    this.need('auth', 'selected');
    const n = this.mailboxArg(args[0]);
    if (what === 'DELETE' && this.box && this.box.state.name === n) throw no('INUSE', 'Close the mailbox before deleting it');
    await fn(this.account!, n);
    return `${what} completed`;
  }

  private async select(name: string, args: Token[]): Promise<string> {
    this.need('auth', 'selected');
    // A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
    if (this.box) {
      this.box = null;
      this.state = 'auth';
      if (this.qresync) this.send('* OK [CLOSED] Previous mailbox closed');
    }
    const mailbox = this.mailboxArg(args[0]);
    let qresyncParams: { uidValidity: number; modseq: number; known: string | null } | null = null;
    const params = args[1];
    if (params) {
      if (params.t !== 'list') throw bad(null, 'SELECT parameters must be a list');
      for (let i = 0; i < params.v.length; i++) {
        const p = textOf(params.v[i])?.toUpperCase();
        if (p === 'CONDSTORE') this.enabled.add('CONDSTORE');
        else if (p === 'QRESYNC') {
          if (!this.qresync) throw bad('CLIENTBUG', 'ENABLE QRESYNC first');
          const q = params.v[++i];
          if (q?.t !== 'list') throw bad(null, 'QRESYNC needs (uidvalidity modseq [uids])');
          const v = Number(textOf(q.v[0]));
          const ms = Number(textOf(q.v[1]));
          if (!Number.isInteger(v) || !Number.isInteger(ms)) throw bad(null, 'QRESYNC needs numbers');
          qresyncParams = { uidValidity: v, modseq: ms, known: q.v[2] && q.v[2].t === 'atom' ? q.v[2].v : null };
        } else throw bad(null, `Unknown SELECT parameter ${String(p).slice(0, 20)}`);
      }
    }
    const st = await this.account!.open(mailbox);
    const msgs = await this.account!.messages(st.id);
    const box = new SelectedMailbox(st, name === 'EXAMINE', msgs);
    const keywords = new Set<string>();
    for (const m of msgs) for (const f of m.flags) if (!f.startsWith('\\')) keywords.add(f);
    const flags = [...SYSTEM_FLAGS, ...keywords].join(' ');
    this.send(`* ${msgs.length} EXISTS`);
    if (!this.rev2) this.send('* 0 RECENT');
    this.send(`* FLAGS (${flags})`);
    this.send(box.readOnly ? '* OK [PERMANENTFLAGS ()] Read-only' : `* OK [PERMANENTFLAGS (${flags} \\*)] Flags permitted`);
    this.send(`* OK [UIDVALIDITY ${st.uidValidity}] UIDs valid`);
    this.send(`* OK [UIDNEXT ${st.uidNext}] Predicted next UID`);
    this.send(`* OK [HIGHESTMODSEQ ${st.highestModseq}] Highest`);
    this.send(`* OK [MAILBOXID (F${st.id})] Ok`);
    if (this.rev2) {
      const out: Chunk[] = [`* LIST (${listAttrs(st, false, []).join(' ')}) "/" `];
      this.mailboxOut(st.name, out);
      this.send(out);
    }
    if (qresyncParams && qresyncParams.uidValidity === st.uidValidity) {
      const changes = await this.account!.changesSince(st.id, qresyncParams.modseq);
      let gone = changes.expunged;
      if (qresyncParams.known) {
        const ranges = parseSequenceSet(qresyncParams.known, 0xffff_ffff);
        gone = gone.filter((u) => inRanges(u, ranges));
      }
      if (gone.length > 0) this.send(`* VANISHED (EARLIER) ${sequenceSet(gone)}`);
      for (const m of changes.changed) {
        const i = box.indexOfUid(m.uid);
        if (i >= 0) this.send(`* ${i + 1} FETCH (UID ${m.uid} FLAGS (${m.flags.join(' ')}) MODSEQ (${m.modseq}))`);
      }
    }
    this.box = box;
    this.state = 'selected';
    return `[${box.readOnly ? 'READ-ONLY' : 'READ-WRITE'}] ${name} completed`;
  }

  private async close(name: string): Promise<string> {
    this.need('selected');
    const box = this.box!;
    if (name === 'CLOSE' && !box.readOnly) {
      // CLOSE expunges silently.
      const doomed = box.msgs.filter((m) => m.flags.includes('\\Deleted'));
      if (doomed.length > 0) await this.account!.expunge(box.state, doomed);
    }
    this.box = null;
    this.state = 'auth';
    return `${name} completed`;
  }

  private async list(args: Token[], lsub: boolean): Promise<string> {
    this.need('auth', 'selected');
    let i = 0;
    const selection = new Set<string>();
    if (!lsub && args[0]?.t === 'list') {
      for (const t of args[0].v) selection.add((textOf(t) ?? '').toUpperCase());
      i++;
    }
    const refTok = args[i++];
    const patTok = args[i++];
    if (!refTok || !patTok) throw bad(null, 'LIST needs a reference and a pattern');
    const ref = refTok.t === 'nil' ? '' : (textOf(refTok) ?? '');
    const patterns: string[] = [];
    if (patTok.t === 'list') for (const p of patTok.v) patterns.push(textOf(p) ?? '');
    else patterns.push(patTok.t === 'nil' ? '' : (textOf(patTok) ?? ''));
    const ret = new Set<string>();
    let statusItems: string[] = [];
    if (args[i] && textOf(args[i])?.toUpperCase() === 'RETURN') {
      const r = args[i + 1];
      if (r?.t !== 'list') throw bad(null, 'RETURN needs a list');
      for (let j = 0; j < r.v.length; j++) {
        const opt = (textOf(r.v[j]) ?? '').toUpperCase();
        ret.add(opt);
        if (opt === 'STATUS') {
          const items = r.v[++j];
          if (items?.t !== 'list') throw bad(null, 'RETURN STATUS needs a list');
          statusItems = items.v.map((x) => (textOf(x) ?? '').toUpperCase());
          for (const s of statusItems) if (!STATUS_ITEMS.has(s)) throw bad(null, `Unknown STATUS item ${s.slice(0, 20)}`);
        }
      }
      i += 2;
    }
    if (patterns.length === 1 && patterns[0] === '' && !lsub) {
      this.send('* LIST (\\Noselect) "/" ""');
      return 'LIST completed';
    }
    const boxes = await this.account!.mailboxes();
    const names = boxes.map((b) => b.name);
    const subscribedOnly = lsub || selection.has('SUBSCRIBED');
    const specialOnly = selection.has('SPECIAL-USE');
    const matchers = patterns.map((p) => patternRegex(this.enabled.has('UTF8=ACCEPT') ? ref + p : decodeMailboxName(ref + p)));
    for (const b of boxes) {
      if (!matchers.some((re) => re.test(b.name))) continue;
      if (subscribedOnly && !b.subscribed) continue;
      if (specialOnly && !b.specialUse) continue;
      const attrs = listAttrs(b, subscribedOnly || ret.has('SUBSCRIBED'), names);
      const shown = lsub ? attrs.filter((a) => a !== b.specialUse) : attrs;
      const out: Chunk[] = [`* ${lsub ? 'LSUB' : 'LIST'} (${shown.join(' ')}) "/" `];
      this.mailboxOut(b.name, out);
      this.send(out);
      if (statusItems.length > 0) await this.sendStatus(b.name, statusItems).catch(() => undefined);
    }
    return `${lsub ? 'LSUB' : 'LIST'} completed`;
  }

  private async sendStatus(name: string, items: string[]): Promise<void> {
    const s = await this.account!.status(name);
    const vals: string[] = [];
    for (const it of items) {
      if (it === 'MESSAGES') vals.push(`MESSAGES ${s.messages}`);
      else if (it === 'UIDNEXT') vals.push(`UIDNEXT ${s.uidNext}`);
      else if (it === 'UIDVALIDITY') vals.push(`UIDVALIDITY ${s.uidValidity}`);
      else if (it === 'UNSEEN') vals.push(`UNSEEN ${s.unseen}`);
      else if (it === 'DELETED') vals.push(`DELETED ${s.deleted}`);
      else if (it === 'SIZE') vals.push(`SIZE ${s.size}`);
      else if (it === 'HIGHESTMODSEQ') vals.push(`HIGHESTMODSEQ ${s.highestModseq}`);
      else if (it === 'RECENT') vals.push('RECENT 0');
      else if (it === 'APPENDLIMIT') vals.push(`APPENDLIMIT ${this.o.limits.maxLiteral}`);
      else if (it === 'MAILBOXID') vals.push(`MAILBOXID (F${s.mailboxId})`);
    }
    const out: Chunk[] = ['* STATUS '];
    this.mailboxOut(name, out);
    out.push(` (${vals.join(' ')})`);
    this.send(out);
  }

  private async status(args: Token[]): Promise<string> {
    this.need('auth', 'selected');
    const name = this.mailboxArg(args[0]);
    const items = args[1];
    if (items?.t !== 'list' || items.v.length === 0) throw bad(null, 'STATUS needs a list of items');
    const names = items.v.map((x) => (textOf(x) ?? '').toUpperCase());
    for (const s of names) if (!STATUS_ITEMS.has(s)) throw bad(null, `Unknown STATUS item ${s.slice(0, 20)}`);
    await this.sendStatus(name, names);
    return 'STATUS completed';
  }

  private async append(args: Token[]): Promise<string> {
    this.need('auth', 'selected');
    const target = this.mailboxArg(args[0]);
    // MULTIAPPEND (RFC 3502): any number of [flags] [date-time] message triples after the mailbox.
    const messages: Array<{ raw: Buffer; flags: string[]; date: Date | null }> = [];
    let i = 1;
    do {
      let flags: string[] = [];
      let date: Date | null = null;
      if (args[i]?.t === 'list') flags = parseFlags(args[i++]!);
      const maybeDate = args[i];
      if (maybeDate && maybeDate.t === 'string' && !maybeDate.literal) {
        date = parseImapDate(maybeDate.v.toString('latin1'));
        if (!date) throw bad(null, 'Bad APPEND date-time');
        i++;
      }
      let msg = args[i];
      if (msg?.t === 'atom' && msg.v.toUpperCase() === 'UTF8') {
        const l = args[i + 1];
        if (l?.t !== 'list' || l.v[0]?.t !== 'string') throw bad(null, 'APPEND UTF8 needs (literal)');
        msg = l.v[0];
        i++;
      }
      if (msg?.t !== 'string') throw bad(null, 'APPEND needs the message as a literal');
      i++;
      // RFC 3502 3: one bad message fails the whole command, and nothing is stored.
      if (msg.v.length === 0) throw no('CANNOT', `An empty message cannot be appended${messages.length > 0 ? ` (message ${messages.length + 1}); nothing was appended` : ''}`);
      messages.push({ raw: msg.v, flags: flags.filter((f) => f.toLowerCase() !== '\\recent'), date });
    } while (i < args.length);
    const res = await this.account!.append(target, messages);
    return `[APPENDUID ${res.uidValidity} ${sequenceSetInOrder(res.uids)}] APPEND completed`;
  }

  // --- selected --------------------------------------------------------

  private onChange(): void {
    this.dirty = true;
    if (this.idling) void this.catchUp(true);
  }

  /** Sends what other sessions changed in the selected mailbox since this one last looked. */
  private catchUp(allowExpunge: boolean): Promise<void> {
    const run = async () => {
      const box = this.box;
      if (!box || !this.account) return;
      if (!this.dirty && !(allowExpunge && box.pendingExpunge.size > 0)) return;
      this.dirty = false;
      const changes = await this.account.changesSince(box.state.id, box.modseq);
      if (this.box !== box) return;
      for (const line of box.apply(changes, { allowExpunge, condstore: this.condstore, qresync: this.qresync })) this.send(line);
    };
    this.syncChain = this.syncChain.then(run, run).catch((err: unknown) => this.o.onError?.(err));
    return this.syncChain;
  }

  private async idle(): Promise<string> {
    this.need('auth', 'selected');
    this.send('+ idling');
    this.idling = true;
    try {
      await this.catchUp(true);
      const ev = await this.next();
      if (!ev) throw new Skip();
      if (ev.kind !== 'command' || String(ev.command.parts[0] ?? '').trim().toUpperCase() !== 'DONE') throw bad(null, 'Expected DONE');
    } finally {
      this.idling = false;
    }
    return 'IDLE terminated';
  }

  private async expunge(args: Token[], uid: boolean): Promise<string> {
    this.need('selected');
    const box = this.box!;
    if (box.readOnly) throw no('READ-ONLY', 'The mailbox is read-only');
    let doomed = box.msgs.filter((m) => m.flags.includes('\\Deleted'));
    if (uid) {
      const set = textOf(args[0]);
      if (!set) throw bad(null, 'UID EXPUNGE needs a UID set');
      const allowed = new Set(box.resolve(set, true).map((x) => x.m.uid));
      doomed = doomed.filter((m) => allowed.has(m.uid));
    }
    if (doomed.length > 0) {
      await this.account!.expunge(box.state, doomed);
      for (const line of box.remove(doomed.map((m) => m.uid), this.qresync)) this.send(line);
    }
    return 'EXPUNGE completed';
  }

  private async search(args: Token[], uid: boolean): Promise<string> {
    this.need('selected');
    const box = this.box!;
    let rest = args;
    let ret: Set<string> | null = null;
    if (rest[0]?.t === 'atom' && rest[0].v.toUpperCase() === 'RETURN') {
      const r = rest[1];
      if (r?.t !== 'list') throw bad(null, 'RETURN needs a list');
      ret = new Set(r.v.map((x) => (textOf(x) ?? '').toUpperCase()));
      for (const o of ret) if (!['MIN', 'MAX', 'COUNT', 'ALL'].includes(o)) throw bad(null, `RETURN ${o.slice(0, 20)} is not supported`);
      if (ret.size === 0) ret = new Set(['ALL']);
      rest = rest.slice(2);
    }
    rest = takeCharset(rest);
    const criteria = parseSearch(rest, { maxSeq: box.exists, maxUid: box.maxUid });
    const data = needsData(criteria);
    const hits: SearchMessage[] = [];
    const all = box.msgs.map((m, i): SearchMessage => ({ ...m, seq: i + 1 }));
    for (let start = 0; start < all.length; start += 200) {
      const batch = all.slice(start, start + 200);
      const ids = batch.map((m) => m.id);
      const [raws, structs] = data ? await Promise.all([this.account!.bodies(ids), this.account!.structures(ids)]) : [null, null];
      for (const m of batch) {
        const raw = raws?.get(m.id);
        const structure = structs?.get(m.id);
        if (evaluate(criteria, m, raw && structure ? { raw, structure } : undefined)) hits.push(m);
      }
    }
    const nums = hits.map((m) => (uid ? m.uid : m.seq));
    const maxModseq = hits.reduce((a, m) => Math.max(a, m.modseq), 0);
    const usesModseq = JSON.stringify(criteria).includes('"modseq"');
    if (ret || this.rev2) {
      const r = ret ?? new Set(['ALL']);
      const parts: string[] = [];
      if (r.has('MIN') && nums.length > 0) parts.push(`MIN ${Math.min(...nums)}`);
      if (r.has('MAX') && nums.length > 0) parts.push(`MAX ${Math.max(...nums)}`);
      if (r.has('COUNT')) parts.push(`COUNT ${nums.length}`);
      if (r.has('ALL') && nums.length > 0) parts.push(`ALL ${sequenceSet(nums)}`);
      if (usesModseq && nums.length > 0) parts.push(`MODSEQ ${maxModseq}`);
      this.send(`* ESEARCH (TAG "${this.currentTag}")${uid ? ' UID' : ''}${parts.length ? ` ${parts.join(' ')}` : ''}`);
    } else {
      this.send(`* SEARCH${nums.map((n) => ` ${n}`).join('')}${usesModseq && nums.length > 0 ? ` (MODSEQ ${maxModseq})` : ''}`);
    }
    return 'SEARCH completed';
  }

  private currentTag = '';
  /** Without a listener's cache (a session made by a test): a small one of its own. */
  private readonly ownCache = new WireCache(0);

  private async fetch(args: Token[], uid: boolean): Promise<string> {
    this.need('selected');
    const box = this.box!;
    const set = textOf(args[0]);
    if (!set || args[0]!.t !== 'atom') throw bad(null, 'FETCH needs a sequence set');
    const items = parseFetchItems(args[1]);
    const { changedSince, vanished } = this.fetchModifiers(args[2], uid);
    if (uid && !items.some((x) => x.kind === 'UID')) items.unshift({ kind: 'UID' });
    if ((this.condstore || changedSince !== null) && !items.some((x) => x.kind === 'MODSEQ')) items.push({ kind: 'MODSEQ' });
    let targets = box.resolve(set, uid);
    if (vanished && changedSince !== null) await this.sendVanished(box, set, changedSince);
    if (changedSince !== null) targets = targets.filter((x) => x.m.modseq > changedSince);
    const plan = fetchPlan(items, box.readOnly, this.o.wireCache ?? this.ownCache);
    const batchSize = plan.needRaw ? 50 : 500;
    for (let start = 0; start < targets.length; start += batchSize) {
      const batch = targets.slice(start, start + batchSize);
      const data = await this.loadFetchBatch(batch, plan);
      if (plan.setsSeen) await this.markSeen(batch, items, box);
      await this.writeFetchBatch(batch, plan, data);
    }
    return 'FETCH completed';
  }

  /** The FETCH modifiers (CHANGEDSINCE, VANISHED; RFC 7162), absent ones null and false. */
  private fetchModifiers(mods: Token | undefined, uid: boolean): { changedSince: number | null; vanished: boolean } {
    let changedSince: number | null = null;
    let vanished = false;
    if (mods) {
      if (mods.t !== 'list') throw bad(null, 'FETCH modifiers must be a list');
      for (let i = 0; i < mods.v.length; i++) {
        const m = (textOf(mods.v[i]) ?? '').toUpperCase();
        if (m === 'CHANGEDSINCE') {
          const n = textOf(mods.v[++i]);
          if (!n || !/^\d{1,20}$/.test(n)) throw bad(null, 'CHANGEDSINCE needs a number');
          changedSince = Number(n);
          this.enabled.add('CONDSTORE');
        } else if (m === 'VANISHED') {
          if (!uid || !this.qresync) throw bad('CLIENTBUG', 'VANISHED needs UID FETCH and ENABLE QRESYNC');
          vanished = true;
        } else throw bad(null, `Unknown FETCH modifier ${m.slice(0, 20)}`);
      }
      if (vanished && changedSince === null) throw bad(null, 'VANISHED needs CHANGEDSINCE');
    }
    return { changedSince, vanished };
  }

  /** `* VANISHED (EARLIER)`: the UIDs of `set` expunged since `changedSince` (FETCH ... (CHANGEDSINCE n VANISHED)). */
  private async sendVanished(box: SelectedMailbox, set: string, changedSince: number): Promise<void> {
    const changes = await this.account!.changesSince(box.state.id, changedSince);
    // `*` reaches every UID ever given out here, so expunges above the last message count too.
    const ranges = parseSequenceSet(set, 0xffff_ffff);
    const gone = changes.expunged.filter((u) => inRanges(u, ranges) && box.indexOfUid(u) < 0);
    if (gone.length > 0) this.send(`* VANISHED (EARLIER) ${sequenceSet(gone)}`);
  }

  /** What a batch's responses are made of: wire text (from the cache when it has it), structures and raw messages. */
  private async loadFetchBatch(batch: FetchTarget[], plan: FetchPlan): Promise<FetchData> {
    const { withBody, needRendered, needStructure, needRaw, cache } = plan;
    const ids = batch.map((x) => x.m.id);
    const rendered = new Map<number, RenderedStructure & { body?: string }>();
    const ask: number[] = [];
    if (needRendered) {
      for (const id of ids) {
        const r = withBody ? undefined : cache.get(id);
        if (r) rendered.set(id, r);
        else ask.push(id);
      }
    }
    const [wire, structs, raws] = await Promise.all([
      ask.length > 0 ? this.account!.wireText(ask, withBody) : Promise.resolve(null),
      needStructure ? this.account!.structures(ids) : Promise.resolve(null),
      needRaw ? this.account!.bodies(ids) : Promise.resolve(null),
    ]);
    if (wire) {
      for (const [id, w] of wire) {
        rendered.set(id, w);
        cache.set(id, { envelope: w.envelope, bodyStructure: w.bodyStructure });
      }
    }
    return { rendered, structs, raws };
  }

  /** Sets \Seen on the batch's unseen messages (a body was fetched without PEEK); FLAGS then goes out with them. */
  private async markSeen(batch: FetchTarget[], items: FetchItem[], box: SelectedMailbox): Promise<void> {
    const unseen = batch.filter((x) => !x.m.flags.includes('\\Seen'));
    if (unseen.length === 0) return;
    const res = await this.account!.setFlags(box.state.id, unseen.map((x) => ({ id: x.m.id, flags: [...x.m.flags, '\\Seen'] })));
    for (const u of res.updated) {
      const x = batch.find((b) => b.m.id === u.id)!;
      const updated: MessageMeta = { ...x.m, flags: [...x.m.flags, '\\Seen'], modseq: u.modseq };
      box.msgs[box.indexOfUid(x.m.uid)] = updated;
      x.m = updated;
    }
    if (!items.some((x) => x.kind === 'FLAGS')) items.push({ kind: 'FLAGS' });
  }

  // One write per batch, not per message (one TLS record and syscall for
  // hundreds of responses), and the next batch is read only once the client
  // has taken this one: the responses stream with bounded memory.
  private async writeFetchBatch(batch: FetchTarget[], plan: FetchPlan, data: FetchData): Promise<void> {
    const { items, needStructure, needRendered, needRaw } = plan;
    const { rendered, structs, raws } = data;
    const out: Chunk[] = [];
    for (const x of batch) {
      const structure = structs?.get(x.m.id);
      const raw = raws?.get(x.m.id);
      const r = rendered.get(x.m.id);
      if ((needStructure && !structure) || (needRendered && !r) || (needRaw && !raw)) {
        // Expunged by another session meanwhile: nothing to send for it.
        continue;
      }
      const mark = out.length;
      try {
        fetchResponse(x.seq, x.m, items, structure, r, raw, out);
      } catch (err) {
        // The responses before the failing message still go out, then the tagged NO.
        out.length = mark;
        if (out.length > 0) this.t.write(out);
        throw err;
      }
      out.push('\r\n');
      // Bodies are large: each goes out on its own rather than copied into one batch.
      if (needRaw && !this.t.write(out.splice(0))) await this.t.drain();
    }
    if (out.length > 0 && !this.t.write(out)) await this.t.drain();
  }

  private async store(args: Token[], uid: boolean): Promise<string> {
    this.need('selected');
    const box = this.box!;
    if (box.readOnly) throw no('READ-ONLY', 'The mailbox is read-only');
    const set = textOf(args[0]);
    if (!set || args[0]!.t !== 'atom') throw bad(null, 'STORE needs a sequence set');
    let i = 1;
    let unchangedSince: number | undefined;
    if (args[i]?.t === 'list') {
      const mods = (args[i] as { v: Token[] }).v;
      if ((textOf(mods[0]) ?? '').toUpperCase() !== 'UNCHANGEDSINCE') throw bad(null, 'Unknown STORE modifier');
      const n = textOf(mods[1]);
      if (!n || !/^\d{1,20}$/.test(n)) throw bad(null, 'UNCHANGEDSINCE needs a number');
      unchangedSince = Number(n);
      this.enabled.add('CONDSTORE');
      i++;
    }
    const op = (textOf(args[i++]) ?? '').toUpperCase();
    const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(op);
    if (!m) throw bad(null, 'STORE needs FLAGS, +FLAGS or -FLAGS');
    const flagTok = args[i];
    if (!flagTok) throw bad(null, 'STORE needs flags');
    const flags = flagTok.t === 'list' ? parseFlags(flagTok) : parseFlags({ t: 'list', v: args.slice(i) });
    const targets = box.resolve(set, uid);
    const changes: Array<{ id: number; flags: string[] }> = [];
    const next = new Map<number, string[]>();
    for (const x of targets) {
      let nf: string[];
      if (m[1] === '+') nf = [...x.m.flags, ...flags.filter((f) => !x.m.flags.includes(f))];
      else if (m[1] === '-') nf = x.m.flags.filter((f) => !flags.includes(f));
      else nf = [...flags];
      next.set(x.m.id, nf);
      const same = nf.length === x.m.flags.length && nf.every((f) => x.m.flags.includes(f));
      // Unchanged messages still count for UNCHANGEDSINCE (RFC 7162 3.1.3).
      if (!same || unchangedSince !== undefined) changes.push({ id: x.m.id, flags: nf });
    }
    const res = await this.account!.setFlags(box.state.id, changes, unchangedSince);
    const modseqOf = new Map(res.updated.map((u) => [u.id, u.modseq]));
    const failed = new Set(res.failed);
    for (const x of targets) {
      if (failed.has(x.m.id)) continue;
      const ms = modseqOf.get(x.m.id);
      const updated: MessageMeta = { ...x.m, flags: next.get(x.m.id)!, modseq: ms ?? x.m.modseq };
      const idx = box.indexOfUid(x.m.uid);
      if (idx >= 0) box.msgs[idx] = updated;
      if (!m[2] || (this.condstore && ms !== undefined)) {
        const parts = [uid ? `UID ${updated.uid}` : null, m[2] ? null : `FLAGS (${updated.flags.join(' ')})`, this.condstore ? `MODSEQ (${updated.modseq})` : null].filter((p) => p !== null);
        this.send(`* ${idx + 1} FETCH (${parts.join(' ')})`);
      }
    }
    if (failed.size > 0) {
      const nums = targets.filter((x) => failed.has(x.m.id)).map((x) => (uid ? x.m.uid : x.seq));
      return `[MODIFIED ${sequenceSet(nums)}] Conditional STORE failed for some messages`;
    }
    return 'STORE completed';
  }

  private async copyMove(name: string, args: Token[], uid: boolean): Promise<string> {
    this.need('selected');
    const box = this.box!;
    const set = textOf(args[0]);
    if (!set || args[0]!.t !== 'atom') throw bad(null, `${name} needs a sequence set`);
    const target = this.mailboxArg(args[1]);
    if (name === 'MOVE' && box.readOnly) throw no('READ-ONLY', 'The mailbox is read-only');
    const targets = box.resolve(set, uid);
    if (targets.length === 0) return `${name} completed (nothing to do)`;
    const msgs = targets.map((x) => x.m);
    const res = name === 'MOVE' ? await this.account!.move(box.state, msgs, target) : await this.account!.copy(box.state, msgs, target);
    const copyuid = res && res.pairs.length > 0 ? `[COPYUID ${res.uidValidity} ${res.pairs.map((p) => p[0]).join(',')} ${res.pairs.map((p) => p[1]).join(',')}] ` : '';
    if (name === 'MOVE') {
      if (copyuid) this.send(`* OK ${copyuid}Moved`);
      for (const line of box.remove(msgs.map((m) => m.uid), this.qresync)) this.send(line);
      return 'MOVE completed';
    }
    return `${copyuid}COPY completed`;
  }

}

/** Thrown by commands that already sent their tagged reply (STARTTLS, COMPRESS) or whose connection ended. */
type FetchTarget = { seq: number; m: MessageMeta };
type Rendered = RenderedStructure & { body?: string };

/** What a FETCH needs for its items, worked out once per command. */
interface FetchPlan {
  items: FetchItem[];
  /** BODY: its wire text is stored, never cached. */
  withBody: boolean;
  /** ENVELOPE, BODYSTRUCTURE or BODY: stored as wire text (rendered at ingest); the first two also come from the wire cache. */
  needRendered: boolean;
  /** Sections of parts need the stored structure. */
  needStructure: boolean;
  needRaw: boolean;
  setsSeen: boolean;
  cache: WireCache;
}

/** A batch's material, by message id. */
interface FetchData {
  rendered: Map<number, Rendered>;
  structs: Map<number, MessageStructure> | null;
  raws: Map<number, Buffer> | null;
}

function fetchPlan(items: FetchItem[], readOnly: boolean, cache: WireCache): FetchPlan {
  const withBody = items.some((x) => x.kind === 'BODY');
  return {
    items,
    withBody,
    needRendered: withBody || items.some((x) => x.kind === 'ENVELOPE' || x.kind === 'BODYSTRUCTURE'),
    // A section of the message itself (BODY.PEEK[], mbsync's one item) is found without it.
    needStructure: items.some((x) => (x.kind === 'section' || x.kind === 'BINARY.SIZE') && x.section.path.length > 0),
    needRaw: items.some((x) => x.kind === 'section' || x.kind === 'BINARY.SIZE' || x.kind.startsWith('RFC822') && x.kind !== 'RFC822.SIZE'),
    setsSeen: !readOnly && items.some((x) => (x.kind === 'section' && !x.peek) || x.kind === 'RFC822' || x.kind === 'RFC822.TEXT'),
    cache,
  };
}

/** One `* n FETCH (...)` response, without its CR LF. */
function fetchResponse(
  seq: number,
  m: MessageMeta,
  items: FetchItem[],
  structure: MessageStructure | undefined,
  r: Rendered | undefined,
  raw: Buffer | undefined,
  out: Chunk[],
): void {
  out.push(`* ${seq} FETCH (`);
  for (let n = 0; n < items.length; n++) {
    if (n > 0) out.push(' ');
    fetchItem(items[n]!, m, structure, r, raw, out);
  }
  out.push(')');
}

/** One item of a FETCH response. */
function fetchItem(it: FetchItem, m: MessageMeta, structure: MessageStructure | undefined, r: Rendered | undefined, raw: Buffer | undefined, out: Chunk[]): void {
  switch (it.kind) {
    case 'UID':
      out.push(`UID ${m.uid}`);
      break;
    case 'FLAGS':
      out.push(`FLAGS (${m.flags.join(' ')})`);
      break;
    case 'INTERNALDATE':
      out.push(`INTERNALDATE ${internalDate(m.internalDate)}`);
      break;
    case 'RFC822.SIZE':
      out.push(`RFC822.SIZE ${m.size}`);
      break;
    case 'MODSEQ':
      out.push(`MODSEQ (${m.modseq})`);
      break;
    case 'EMAILID':
      out.push(`EMAILID (M${m.id})`);
      break;
    case 'THREADID':
      out.push('THREADID NIL');
      break;
    case 'ENVELOPE':
      out.push('ENVELOPE ', r!.envelope);
      break;
    case 'BODYSTRUCTURE':
      out.push('BODYSTRUCTURE ', r!.bodyStructure);
      break;
    case 'BODY':
      out.push('BODY ', r!.body!);
      break;
    default:
      fetchContentItem(it, structure, raw!, out);
  }
}

/** A FETCH item of message content: RFC822, RFC822.HEADER/TEXT, BINARY.SIZE, a BODY[...] or BINARY[...] section. */
function fetchContentItem(it: FetchItem, structure: MessageStructure | undefined, raw: Buffer, out: Chunk[]): void {
  switch (it.kind) {
    case 'RFC822':
      out.push('RFC822 ');
      literal(raw, out);
      break;
    case 'RFC822.HEADER':
    case 'RFC822.TEXT': {
      out.push(`${it.kind} `);
      const b = sectionOf(raw, structure ?? { envelope: null as never, body: null as never }, { path: [], text: it.kind === 'RFC822.HEADER' ? 'HEADER' : 'TEXT', fields: [] });
      literal(b ?? Buffer.alloc(0), out);
      break;
    }
    case 'BINARY.SIZE': {
      const b = binaryOf(raw, structure!, it.section);
      if (b === 'unknown-cte') throw no('UNKNOWN-CTE', 'Cannot decode this part');
      out.push(`${it.label} ${b ? b.length : 0}`);
      break;
    }
    case 'section': {
      let b: Buffer | null;
      if (it.binary) {
        const r = binaryOf(raw, structure!, it.section);
        if (r === 'unknown-cte') throw no('UNKNOWN-CTE', 'Cannot decode this part');
        b = r;
      } else b = sectionOf(raw, structure!, it.section);
      b ??= Buffer.alloc(0);
      let label = it.label;
      if (it.partial) {
        const [from, len] = it.partial;
        b = from >= b.length ? Buffer.alloc(0) : b.subarray(from, from + len);
        label += `<${from}>`;
      }
      out.push(`${label} `);
      literal(b, out, it.binary && b.includes(0));
      break;
    }
  }
}

class Skip extends ImapError {
  constructor() {
    super('NO', null, 'skip');
  }
}

/** Texts may quote what the client sent (a literal can hold CR LF): never a second response line. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 300);
}

function validName(name: string): void {
  if (name === '' || name.length > 255) throw no('CANNOT', 'Mailbox names are 1 to 255 characters');
  if (/[\x00-\x1f\x7f*%]/.test(name) || name.startsWith('/') || name.includes('//')) throw no('CANNOT', 'Mailbox names may not contain control characters, * or %, or empty levels');
  if (name.toUpperCase() === 'INBOX') throw no('ALREADYEXISTS', 'INBOX exists');
}

function parseFlags(t: Token): string[] {
  if (t.t !== 'list') throw bad(null, 'Flags must be a list');
  const out: string[] = [];
  for (const f of t.v) {
    if (f.t !== 'atom' || !FLAG_RE.test(f.v)) throw bad(null, `Bad flag ${f.t === 'atom' ? f.v.slice(0, 30) : ''}`);
    const c = canonicalFlag(f.v);
    if (c.toLowerCase() === '\\recent') continue;
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

function patternRegex(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '%') re += '[^/]*';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  // INBOX matches in any case.
  return new RegExp(`^${re}$`, /^inbox$/i.test(pattern) ? 'i' : '');
}

function listAttrs(b: MailboxInfo, withSubscribed: boolean, names: string[]): string[] {
  const attrs: string[] = [];
  attrs.push(names.some((n) => n.startsWith(`${b.name}/`)) ? '\\HasChildren' : '\\HasNoChildren');
  if (withSubscribed && b.subscribed) attrs.push('\\Subscribed');
  if (b.specialUse) attrs.push(b.specialUse);
  return attrs;
}
