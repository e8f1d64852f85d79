import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { ZoneStore } from './zone-store.ts';
import { respond } from './responder.ts';

function store(): ZoneStore {
  const s = new ZoneStore();
  s.addZone({
    origin: 'z.test',
    records: [
      { name: 'z.test', type: 'A', data: '192.0.2.1' },
      { name: 'loop1.z.test', type: 'CNAME', data: 'loop2.z.test' },
      { name: 'loop2.z.test', type: 'CNAME', data: 'loop1.z.test' },
      { name: 'out.z.test', type: 'CNAME', data: 'somewhere.else' },
      { name: 'dangling.z.test', type: 'CNAME', data: 'gone.z.test' },
      { name: 'a.b.c.z.test', type: 'TXT', data: 'deep' },
    ],
  });
  return s;
}

describe('ZoneStore', () => {
  it('stops CNAME loops and answers with the chain', () => {
    const r = store().resolve('loop1.z.test', 'A');
    assert.equal(r.rcode, 'NOERROR');
    assert.deepEqual(r.answers.map((a) => a.name), ['loop1.z.test', 'loop2.z.test']);
  });

  it('returns the CNAME when its target is outside the served data, NXDOMAIN when it is missing inside', () => {
    const out = store().resolve('out.z.test', 'A');
    assert.deepEqual([out.rcode, out.answers.length], ['NOERROR', 1]);
    const dangling = store().resolve('dangling.z.test', 'A');
    assert.deepEqual([dangling.rcode, dangling.answers.length], ['NXDOMAIN', 1]);
    assert.equal(dangling.authorities[0]?.type, 'SOA', 'synthesised SOA for a zone without one');
  });

  it('treats empty non-terminals as existing until their last descendant is removed', () => {
    const s = store();
    assert.equal(s.resolve('b.c.z.test', 'TXT').rcode, 'NOERROR');
    s.remove('a.b.c.z.test');
    assert.equal(s.resolve('b.c.z.test', 'TXT').rcode, 'NXDOMAIN');
    assert.equal(s.resolve('z.test', 'TXT').rcode, 'NOERROR', 'the apex always exists');
  });

  it('answers ANY with every record of the name and de-duplicates adds', () => {
    const s = store();
    s.add([{ name: 'Z.TEST', type: 'A', data: '192.0.2.1' }, { name: 'z.test', type: 'TXT', data: 't' }]);
    assert.deepEqual(s.resolve('z.test', 'ANY').answers.map((a) => a.type), ['A', 'TXT']);
  });

  it('rejects zone records outside the zone', () => {
    assert.throws(() => new ZoneStore().addZone({ origin: 'z.test', records: [{ name: 'x.other', type: 'A', data: '192.0.2.1' }] }), /outside zone/);
  });
});

describe('respond', () => {
  it('answers NOTIMP to other opcodes and FORMERR to several questions', () => {
    const notify = Buffer.from(packet.encode({ id: 9, type: 'query', questions: [{ name: 'z.test', type: 'SOA' }] }));
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2); // opcode NOTIFY
    assert.equal((packet.decode(respond(store(), notify, 'udp') as Buffer).flags ?? 0) & 0xf, 4);
    const two = packet.encode({ id: 9, type: 'query', questions: [{ name: 'z.test', type: 'A' }, { name: 'z.test', type: 'TXT' }] });
    assert.equal((packet.decode(respond(store(), two, 'udp') as Buffer).flags ?? 0) & 0xf, 1);
  });

  it('echoes the query spelling of the name in answers', () => {
    const q = packet.encode({ id: 1, type: 'query', questions: [{ name: 'Z.tEsT', type: 'A' }] });
    const reply = packet.decode(respond(store(), q, 'udp') as Buffer);
    assert.equal(reply.answers?.[0]?.name, 'Z.tEsT');
  });
});
