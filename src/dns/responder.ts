/**
 * One DNS message in, one DNS message out (or nothing). No sockets here:
 * the caller names the transport, which decides only the size limit (UDP
 * answers are truncated, TCP answers are not).
 *
 * Hostile or broken input never throws out of `respond`: a message too short
 * to carry an ID, or one that is itself a response, is dropped (answering
 * responses invites reflection loops); anything else undecodable gets
 * FORMERR, and a failure while encoding the answer gets SERVFAIL.
 */
import * as packet from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Question } from 'dns-packet';
import type { ZoneStore } from './zone-store.ts';
import { canonicalName } from './names.ts';
import { toAnswer } from './records.ts';

const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODES;

const HEADER_BYTES = 12;
const QR = 0x8000;
const OPCODE_MASK = 0x7800;
const RD = 0x0100;
const CLASSIC_UDP_LIMIT = 512;
/** Largest UDP answer offered to EDNS clients (DNS flag day 2020's recommendation). */
const EDNS_UDP_LIMIT = 1232;

/** UDP answers are size-limited (and truncated); TCP answers only by the 64 KiB framing. */
export type Transport = 'udp' | 'tcp';

const TCP_MESSAGE_LIMIT = 0xffff;

export function respond(store: ZoneStore, query: Buffer, transport: Transport): Buffer | null {
  if (query.length < HEADER_BYTES) return null;
  const id = query.readUInt16BE(0);
  const flags = query.readUInt16BE(2);
  if (flags & QR) return null;
  // Echo the opcode and RD bit; AA because every answer here is authoritative.
  const baseFlags = (flags & (OPCODE_MASK | RD)) | packet.AUTHORITATIVE_ANSWER;
  try {
    return answer(store, query, transport, id, flags, baseFlags);
  } catch {
    // E.g. a decoded question that does not encode back; the header alone always does.
    return encode({ id, type: 'response', flags: baseFlags | RCODES.SERVFAIL });
  }
}

function answer(store: ZoneStore, query: Buffer, transport: Transport, id: number, flags: number, baseFlags: number): Buffer {
  let decoded: DecodedPacket;
  try {
    decoded = packet.decode(query);
  } catch {
    return encode({ id, type: 'response', flags: baseFlags | RCODES.FORMERR });
  }

  const questions = decoded.questions ?? [];
  const opt = (decoded.additionals ?? []).find((a): a is OptAnswer => a.type === 'OPT');
  const additionals: Answer[] = opt ? [responseOpt()] : [];
  const reply = (rcode: Rcode, answers: Answer[] = [], authorities: Answer[] = []): Buffer =>
    encode({ id, type: 'response', flags: baseFlags | RCODES[rcode], questions, answers, authorities, additionals });

  if ((flags & OPCODE_MASK) !== 0) return reply('NOTIMP');
  const question = questions[0];
  if (!question || questions.length !== 1) return reply('FORMERR');
  if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY') return reply('REFUSED');

  let full: Buffer;
  try {
    const result = store.resolve(question.name, question.type);
    // Records owned by the query name are returned in the client's spelling (clients using
    // DNS 0x20 case randomisation compare it); the rest in the spelling they were added with.
    const qname = canonicalName(question.name);
    const owner = (name: string): string => (canonicalName(name) === qname ? question.name : name);
    full = reply(
      result.rcode,
      result.answers.map((r) => toAnswer(r, owner(r.name))),
      result.authorities.map((r) => toAnswer(r)),
    );
  } catch {
    return reply('SERVFAIL');
  }
  // An answer too big even for TCP framing cannot be sent at all.
  if (transport === 'tcp') return full.length <= TCP_MESSAGE_LIMIT ? full : reply('SERVFAIL');
  const limit = opt ? Math.min(Math.max(opt.udpPayloadSize, CLASSIC_UDP_LIMIT), EDNS_UDP_LIMIT) : CLASSIC_UDP_LIMIT;
  return full.length <= limit ? full : truncated(id, baseFlags, full, question, additionals);
}

/**
 * The truncated form keeps only the question (and OPT): a partial RRset is
 * worse than none, and TC tells the client to ask again over TCP anyway.
 */
function truncated(id: number, baseFlags: number, full: Buffer, question: Question, additionals: Answer[]): Buffer {
  const rcode = full.readUInt16BE(2) & 0x000f;
  return encode({
    id,
    type: 'response',
    flags: baseFlags | packet.TRUNCATED_RESPONSE | rcode,
    questions: [question],
    additionals,
  });
}

function responseOpt(): OptAnswer {
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: EDNS_UDP_LIMIT,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}

function encode(message: packet.Packet): Buffer {
  return packet.encode(message);
}
