/**
 * The wire of one outbound SMTP connection: a socket (plain, then perhaps
 * TLS after STARTTLS), the replies read off it in order, and one failure
 * that ends it. No SMTP dialogue lives here (smtp-session.ts and
 * smtp-transaction.ts speak it); this file only guarantees that
 *
 * - replies come out in the order they arrived, each read waiting for the
 *   next one (so pipelined commands are matched to their replies by order);
 * - a read never hangs: a timeout (inactivity: no byte read or written for
 *   `commandTimeoutMs`), the peer closing, a socket error or a malformed
 *   reply ends the connection with one `SmtpFailure`, which every pending
 *   and later read rejects with (replies that arrived before it are still
 *   handed out first: a 421 before the close is read as a 421);
 * - nothing the server sends can throw out of an event handler.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { ReplyProtocolError, ReplyReader, type SmtpReply } from './smtp-reply-reader.ts';
import type { FailureInfo } from './smtp-replies.ts';

export type TimeoutType = 'CONNECT_TIMEOUT' | 'GREETING_TIMEOUT' | 'UPGRADE_TIMEOUT' | 'RESPONSE_TIMEOUT';

/** Why a connection ended; `describeFailure` (smtp-replies.ts) puts it in words. */
export class SmtpFailure extends Error implements FailureInfo {
  constructor(
    message: string,
    readonly code: string,
    readonly timeoutType?: TimeoutType,
    /** The server's reply, when a reply is the failure (a 421 greeting, a refused EHLO). */
    readonly reply?: SmtpReply,
  ) {
    super(message);
  }

  get responseCode(): number | undefined {
    return this.reply?.code;
  }

  get response(): string | undefined {
    return this.reply?.lines.join('\r\n');
  }

  static ofReply(reply: SmtpReply): SmtpFailure {
    return new SmtpFailure(reply.lines.join(' '), 'EPROTOCOL', undefined, reply);
  }
}

export interface ClientOptions {
  address: string;
  port: number;
  localAddress?: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

/** Unread replies kept for a later read; more means a server talking without being asked. */
const MAX_QUEUED = 256;

export class SmtpClient {
  #socket: Socket | TLSSocket;
  #reader = new ReplyReader();
  #queued: SmtpReply[] = [];
  #waiter: { resolve: (r: SmtpReply) => void; reject: (e: SmtpFailure) => void; timeoutType: TimeoutType } | undefined;
  #failure: SmtpFailure | undefined;
  #closeListeners: Array<() => void> = [];
  #secure = false;
  readonly #commandTimeoutMs: number;

  private constructor(socket: Socket, commandTimeoutMs: number) {
    this.#socket = socket;
    this.#commandTimeoutMs = commandTimeoutMs;
    this.#attach(socket);
  }

  /** A TCP connection; rejects with an SmtpFailure (refused, unreachable, CONNECT_TIMEOUT). */
  static connect(o: ClientOptions): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: o.address, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
      const timer = setTimeout(() => fail(new SmtpFailure(`connection to ${o.address} timed out`, 'ETIMEDOUT', 'CONNECT_TIMEOUT')), o.connectTimeoutMs);
      const fail = (err: SmtpFailure): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once('error', (err: NodeJS.ErrnoException) => fail(new SmtpFailure(err.message, err.code ?? 'ESOCKET')));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(new SmtpClient(socket, o.commandTimeoutMs));
      });
    });
  }

  get alive(): boolean {
    return this.#failure === undefined;
  }

  get secure(): boolean {
    return this.#secure;
  }

  /** Called once when the connection ends, whatever the reason. */
  onClose(listener: () => void): void {
    if (this.#failure) queueMicrotask(listener);
    else this.#closeListeners.push(listener);
  }

  /** Sends bytes (several pieces leave together); a failure to send surfaces through the next read. */
  write(data: string | Buffer | readonly Buffer[]): void {
    if (this.#failure) return;
    if (typeof data === 'string' || Buffer.isBuffer(data)) {
      this.#socket.write(data);
      return;
    }
    this.#socket.cork();
    for (const piece of data) this.#socket.write(piece);
    this.#socket.uncork();
  }

  /** The next reply; rejects with the connection's failure once there are no replies left. */
  read(timeoutType: TimeoutType = 'RESPONSE_TIMEOUT'): Promise<SmtpReply> {
    const next = this.#queued.shift();
    if (next) return Promise.resolve(next);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new Error('SmtpClient: two reads at once')); // a bug in the caller
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject, timeoutType };
      this.#socket.setTimeout(this.#commandTimeoutMs);
    });
  }

  /** Writes one command line and reads its reply. */
  command(line: string, timeoutType?: TimeoutType): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.read(timeoutType);
  }

  /**
   * TLS over this connection (after a 220 to STARTTLS). The certificate is not
   * verified (see smtp-session.ts). Rejects with the handshake's failure,
   * which also ends the connection.
   */
  async upgrade(servername: string | undefined, timeoutMs: number): Promise<void> {
    const plain = this.#socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('error');
    plain.removeAllListeners('end');
    plain.removeAllListeners('close');
    plain.removeAllListeners('timeout');
    plain.setTimeout(0);
    // Anything after the 220 was sent before the handshake, in plaintext: never read it as a reply.
    this.#reader = new ReplyReader();
    this.#queued = [];
    const socket = tlsConnect({ socket: plain, rejectUnauthorized: false, ...(servername ? { servername } : {}) });
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new SmtpFailure('TLS handshake timed out', 'ETIMEDOUT', 'UPGRADE_TIMEOUT')), timeoutMs);
      const fail = (err: SmtpFailure): void => {
        clearTimeout(timer);
        this.#fail(err);
        reject(err);
      };
      socket.once('error', (err: NodeJS.ErrnoException) => fail(new SmtpFailure(err.message, err.code ?? 'ETLS')));
      socket.once('close', () => fail(new SmtpFailure('Connection closed during the TLS handshake', 'ECONNECTION')));
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        this.#secure = true;
        this.#attach(socket);
        resolve();
      });
    });
  }

  /** Ends the connection now (idempotent); `why` is what pending and later reads reject with. */
  close(why = new SmtpFailure('Connection closed', 'ECONNECTION')): void {
    this.#fail(why);
  }

  /** Ends the connection after `data` has been sent (QUIT). */
  end(data: string): void {
    if (!this.#failure) this.#socket.end(data);
  }

  #attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.#fail(new SmtpFailure(err.message, err.code ?? 'ESOCKET')));
    socket.on('end', () => this.#fail(new SmtpFailure('Connection closed unexpectedly', 'ECONNECTION')));
    socket.on('close', () => this.#fail(new SmtpFailure('Connection closed unexpectedly', 'ECONNECTION')));
    socket.on('timeout', () => {
      const type = this.#waiter?.timeoutType ?? 'RESPONSE_TIMEOUT';
      this.#fail(new SmtpFailure('no answer in time', 'ETIMEDOUT', type));
    });
  }

  #data(chunk: Buffer): void {
    let replies: SmtpReply[];
    try {
      replies = this.#reader.push(chunk);
    } catch (err) {
      if (!(err instanceof ReplyProtocolError)) throw err;
      this.#fail(new SmtpFailure(err.message, 'EPROTOCOL'));
      return;
    }
    for (const reply of replies) {
      const waiter = this.#waiter;
      if (waiter) {
        this.#waiter = undefined;
        this.#socket.setTimeout(0);
        waiter.resolve(reply);
      } else if (this.#queued.push(reply) > MAX_QUEUED) {
        this.#fail(new SmtpFailure('too many unsolicited replies', 'EPROTOCOL'));
        return;
      }
    }
  }

  /** The first failure wins; it ends the socket, rejects a pending read and tells the listeners. */
  #fail(failure: SmtpFailure): void {
    if (this.#failure) return;
    this.#failure = failure;
    this.#socket.setTimeout(0);
    this.#socket.destroy();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    // Replies that arrived before the failure are still read first (read() takes the queue first).
    waiter?.reject(failure);
    for (const listener of this.#closeListeners.splice(0)) listener();
  }
}
