/**
 * Fuzzing the text parsers that take user-written input: the configuration
 * file (`parseConfig`) and vCards (`splitVCards`, `parseContactCard`).
 * Each mutated input must either parse or fail with the parser's own error
 * type naming where the problem is; any other exception is a finding.
 *
 * Seeded: repeat a run with FUZZ_SEED; FUZZ_ITERATIONS makes it longer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../src/config/load.ts';
import { renderConfig } from '../src/config/template.ts';
import { parseContactCard } from '../src/core/vcard/index-entries.ts';
import { VCardError } from '../src/core/vcard/parse.ts';
import { splitVCards } from '../src/core/vcard-split.ts';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText, type Rng } from './helpers/fuzz.ts';

const BASE_CONFIGS = [
  renderConfig({ hostname: 'mx.example.org', domains: ['example.org', 'example.net'], smtpPort: 25, httpPort: 8080, dns: ['127.0.0.1:5353'] }),
  `hostname = "mx.example.org"
domains = ["example.org"]
storage = "postgres://twoway@127.0.0.1:5432/twoway?schema=mail"

[delivery]
port = 2525
bind_address = "192.0.2.1"
max_active = 50
per_domain_concurrency = 4
min_backoff = "30s"
max_backoff = "2h"
keep_history = "7d"

[tls]
cert = "/etc/ssl/cert.pem"
key = "/etc/ssl/key.pem"

[dns]
servers = ["[::1]:53", "127.0.0.1"]
timeout_ms = 1500

[dkim]
selector = "s2024"
ed25519_selector = "ed2024"

[limits]
message_size = 1048576
received_headers = 30

[log]
level = "warn"
`,
  'hostname = "a.b"\ndomains = ["a.b"]\n',
];

/** Structural TOML edits that mutateText rarely produces: wrong types, duplicate tables, deep nesting. */
function mutateToml(rng: Rng, text: string): string {
  const lines = text.split('\n');
  const i = rng.int(lines.length);
  const values = ['1', '-1', '0', '1e999', 'inf', 'nan', '"x"', '""', 'true', '[]', '[1, "a"]', '{}', '{ a = 1 }', '1979-05-27T07:32:00Z', '0x7fffffffffffffff', '99999999999999999999'];
  switch (rng.int(6)) {
    case 0: // replace a value with one of another type
      lines[i] = (lines[i] ?? '').replace(/=.*$/, `= ${rng.pick(values)}`);
      break;
    case 1: // duplicate a table header or a key
      lines.splice(rng.int(lines.length), 0, lines[i] ?? '');
      break;
    case 2: // an unknown key or table
      lines.splice(i, 0, rng.pick(['unknown = 1', '[unknown]', 'smtp.extra = 2', '[[domains]]', 'a.b.c.d = 1', '"quoted key" = 1']));
      break;
    case 3: { // deep nesting
      const depth = rng.range(10, 3000);
      const [open, close] = rng.pick([['[', ']'], ['{ a = ', ' }']] as const);
      lines.splice(i, 0, `deep = ${open.repeat(depth)}1${close.repeat(depth)}`);
      break;
    }
    case 4: // a very long line
      lines.splice(i, 0, `hostname = "${'a'.repeat(rng.range(300, 100_000))}"`);
      break;
    default:
      return mutateText(rng, text);
  }
  return lines.join('\n');
}

/** A ConfigError must say where: a key ("key "x"", "unknown key") or a line (":LINE:COL:"). */
const NAMES_KEY_OR_LINE = /key "|unknown key|:\d+:\d+: /;

describe('fuzz: configuration file', () => {
  it('parses or throws a ConfigError naming a key or a line', async (t) => {
    const seed = fuzzSeed();
    const count = fuzzIterations(1500);
    t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed}), ${count} cases`);
    const outcomes = { parsed: 0, configError: 0 };
    await forEachCase(seed, count, (rng) => {
      let text = rng.pick(BASE_CONFIGS);
      const rounds = rng.range(1, 3);
      for (let k = 0; k < rounds; k++) text = rng.bool(0.5) ? mutateToml(rng, text) : mutateText(rng, text);
      try {
        const config = parseConfig(text, '/etc/twoway/twoway.toml');
        assert.equal(typeof config.hostname, 'string');
        outcomes.parsed++;
      } catch (err) {
        if (!(err instanceof ConfigError)) {
          assert.fail(`not a ConfigError: ${(err as Error)?.name}: ${(err as Error)?.message}\n--- input (${text.length} chars) ---\n${text.slice(0, 600)}`);
        }
        assert.match(err.message, NAMES_KEY_OR_LINE, `the error names no key or line: ${err.message}`);
        outcomes.configError++;
      }
    });
    t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
  });
});

const BASE_CARDS = [
  'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\nEMAIL;TYPE=work;PREF=1:bob@friends.test\r\nEMAIL:mailto:Bob%40friends.test\r\nTEL;VALUE=uri:tel:+1-555-555-5555\r\nX-TWOWAY-DOMAIN:@partners.test\r\nX-TWOWAY-LIST:dev.lists.example.org\r\nNOTE:a long note that is folded\r\n  across two lines\\, with escapes\\n\r\nEND:VCARD\r\n',
  'BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Shop\r\nN:;Shop;;;\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20300101T000000Z;USES=1:shop.test\r\nEMAIL;TYPE=INTERNET:orders@shop.test\r\nEND:VCARD\r\n',
  'BEGIN:VCARD\nVERSION:4.0\nUID:blocked-1\nFN:Spam\nEMAIL:spam@spam.test\nX-TWOWAY-BLOCKED:TRUE\nEND:VCARD\n',
];

/** A VCardError must name a line, except for input with no content line at all. */
function checkVCardError(err: unknown, text: string): void {
  if (!(err instanceof VCardError)) {
    assert.fail(`not a VCardError: ${(err as Error)?.name}: ${(err as Error)?.message}\n--- input ---\n${JSON.stringify(text.slice(0, 600))}`);
  }
  if (err.line === null) assert.match(err.message, /empty input/, `no line in ${err.message}`);
  else {
    assert.ok(err.line >= 1, `line ${err.line}`);
    assert.match(err.message, new RegExp(`line ${err.line}\\b`));
  }
}

describe('fuzz: vCards', () => {
  it('splitVCards never throws; each card parses or throws a VCardError naming a line', async (t) => {
    const seed = fuzzSeed();
    const count = fuzzIterations(1500);
    t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed}), ${count} cases`);
    const outcomes = { parsed: 0, vcardError: 0, splitProblems: 0 };
    await forEachCase(seed, count, (rng) => {
      // A file of 1-3 cards, some of them mutated, as an import would read it.
      const cards = Array.from({ length: rng.range(1, 3) }, () => {
        const card = rng.pick(BASE_CARDS);
        return rng.bool(0.85) ? mutateText(rng, card, 5) : card;
      });
      const file = rng.bool(0.2) ? mutateText(rng, cards.join(''), 2) : cards.join('');
      let split: ReturnType<typeof splitVCards>;
      try {
        split = splitVCards(file);
      } catch (err) {
        assert.fail(`splitVCards threw ${(err as Error)?.name}: ${(err as Error)?.message}\n--- input ---\n${JSON.stringify(file.slice(0, 600))}`);
      }
      outcomes.splitProblems += split.problems.length;
      // The split cards, and each mutated card on its own (a CardDAV PUT body).
      for (const text of [...split.cards.map((c) => c.text), ...cards]) {
        try {
          const parsed = parseContactCard(text);
          assert.ok(parsed.version === '3.0' || parsed.version === '4.0');
          for (const e of parsed.entries) assert.equal(typeof e.value, 'string');
          outcomes.parsed++;
        } catch (err) {
          checkVCardError(err, text);
          outcomes.vcardError++;
        }
      }
    });
    t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
  });
});
