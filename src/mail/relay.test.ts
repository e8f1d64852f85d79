/** Who a message goes out as over TWM (docs/protocol.md 7.6), and when it cannot go by TWM at all. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHeaders } from './headers.ts';
import { twmIdentity, type TwmIdentity } from './relay.ts';

const OURS = new Set(['a.test', 'lists.a.test']);
const identity = (...fields: string[]) => twmIdentity(parseHeaders(Buffer.from(`${fields.join('\r\n')}\r\n\r\nBody.\r\n`)), (d) => OURS.has(d));

const ROWS: Array<[string, string[], TwmIdentity | null]> = [
  ['our author', ['From: Ann <ann@a.test>'], { from: 'ann@a.test', listId: null, relayed: false }],
  ['our author with a List-Id of ours', ['From: ann@a.test', 'List-Id: <x.a.test>'], { from: 'ann@a.test', listId: 'x.a.test', relayed: false }],
  ["our author with another domain's List-Id: no list_id", ['From: ann@a.test', 'List-Id: <x.other.test>'], { from: 'ann@a.test', listId: null, relayed: false }],
  [
    'a list of ours relaying a foreign author',
    ['From: alice@author.test', 'Sender: dev@lists.a.test', 'List-Id: Devs <Dev.Lists.A.test>'],
    { from: 'dev@lists.a.test', listId: 'dev.lists.a.test', relayed: true },
  ],
  [
    'a list of ours relaying our own author: still the list',
    ['From: ann@a.test', 'Sender: dev@lists.a.test', 'List-Id: <dev.lists.a.test>'],
    { from: 'dev@lists.a.test', listId: 'dev.lists.a.test', relayed: true },
  ],
  ['a list whose List-Id is not under its domain: a forwarder', ['From: alice@author.test', 'Sender: dev@lists.a.test', 'List-Id: <dev.other.test>'], { from: 'dev@lists.a.test', listId: null, relayed: true }],
  ['a forwarder of ours (Sender:, no List-Id)', ['From: alice@author.test', 'Sender: fwd@a.test'], { from: 'fwd@a.test', listId: null, relayed: true }],
  ['a foreign author, a foreign Sender: SMTP', ['From: alice@author.test', 'Sender: list@other.test', 'List-Id: <l.other.test>'], null],
  ['a foreign author, no Sender: SMTP', ['From: alice@author.test', 'List-Id: <dev.a.test>'], null],
  ['a foreign author, two Sender: fields: SMTP', ['From: alice@author.test', 'Sender: fwd@a.test', 'Sender: fwd@a.test'], null],
  ['no From: at all, no Sender: SMTP', ['Subject: x'], null],
];

for (const [name, fields, expected] of ROWS) {
  test(`TWM identity: ${name}`, () => assert.deepEqual(identity(...fields), expected));
}
