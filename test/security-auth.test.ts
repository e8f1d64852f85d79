/**
 * Security battery, password guessing (issue #6), counted: SMTP AUTH PLAIN
 * and LOGIN, username spraying, HTTP Basic and POST /api/session. Each
 * guessing client (its own loopback address, so the four run side by side)
 * gets 535 5.7.8 / 401 for wrong passwords, then 454 4.7.0 / 429 even for
 * the right one: the throttle of services/auth-throttle.ts. (A wrong guess
 * may already meet the lockout, 454/429: a refusal too.) The single
 * 535-then-454 case of test/submission.test.ts is the basic check; this file
 * counts every protocol and the spraying variant.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { Agent, fetch } from 'undici';
import { SecurityTally } from './helpers/security-tally.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const tally = new SecurityTally('auth');
const USER = 'ann@example.test';
const PASSWORD = 'ann-correct-password';
const GUESSES = 5;
/** The per-address limit over every account (services/auth-throttle.ts). */
const SPRAY = 20;

describe('security battery: password guessing', () => {
  let t: TestServer;
  let ca: string;

  before(async () => {
    t = await startTestServer();
    ca = readFileSync(t.server.config.tls.cert, 'utf8');
    await t.server.services.accounts.add(USER, PASSWORD, 'open');
    await t.server.services.accounts.add('bob@example.test', 'bob-password', 'open');
  });
  after(() => t.close());

  /** One SMTP submission attempt from `localAddress`; the server's reply to AUTH (or the message's). */
  async function smtpAuth(localAddress: string, user: string, pass: string, method: 'PLAIN' | 'LOGIN'): Promise<string> {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: t.server.submission!.port, localAddress, auth: { user, pass, method }, requireTLS: true, tls: { rejectUnauthorized: false } });
    try {
      return (await transport.sendMail({ from: user, to: 'bob@example.test', subject: 'guess', text: 'x' })).response;
    } catch (err) {
      return String((err as { response?: string }).response ?? (err as Error).message);
    } finally {
      transport.close();
    }
  }

  async function http(localAddress: string, path: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<number> {
    const agent = new Agent({ connect: { ca, localAddress } });
    try {
      const res = await fetch(`${t.server.http.url}${path}`, { ...init, dispatcher: agent });
      await res.text();
      return res.status;
    } finally {
      await agent.close();
    }
  }
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

  it('throttles and then locks out guessing on every protocol, even for the right password', async () => {
    const runs = {
      async smtpPlain() {
        for (let i = 0; i < GUESSES; i++) {
          const r = await smtpAuth('127.0.0.5', USER, `guess-${i}`, 'PLAIN');
          tally.expectRefused(`SMTP AUTH PLAIN wrong password #${i + 1}`, /^(535 5\.7\.8|454 4\.7\.0)/.test(r), r);
        }
        const r = await smtpAuth('127.0.0.5', USER, PASSWORD, 'PLAIN');
        tally.expectRefused('SMTP AUTH PLAIN right password after lockout', /^454 4\.7\.0/.test(r), r);
      },
      async smtpLoginSpray() {
        // Spraying: one guess per user name from one address is counted per address too, with a higher limit.
        for (let i = 0; i < SPRAY; i++) {
          const r = await smtpAuth('127.0.0.6', `user${i}@example.test`, 'Summer2024!', 'LOGIN');
          tally.expectRefused(`SMTP AUTH LOGIN spraying user${i}`, /^(535 5\.7\.8|454 4\.7\.0)/.test(r), r);
        }
        const r = await smtpAuth('127.0.0.6', USER, PASSWORD, 'LOGIN');
        tally.expectRefused('SMTP AUTH LOGIN right password after spraying', /^454 4\.7\.0/.test(r), r);
      },
      async httpBasic() {
        for (let i = 0; i < GUESSES; i++) {
          const s = await http('127.0.0.7', '/api/me', { method: 'GET', headers: basic(USER, `guess-${i}`) });
          tally.expectRefused(`HTTP Basic wrong password #${i + 1}`, s === 401 || s === 429, String(s));
        }
        const s = await http('127.0.0.7', '/api/me', { method: 'GET', headers: basic(USER, PASSWORD) });
        tally.expectRefused('HTTP Basic right password after lockout', s === 429, String(s));
      },
      async session() {
        const login = (password: string) => http('127.0.0.8', '/api/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ address: USER, password }) });
        for (let i = 0; i < GUESSES; i++) {
          const s = await login(`guess-${i}`);
          tally.expectRefused(`POST /api/session wrong password #${i + 1}`, s === 401 || s === 429, String(s));
        }
        const s = await login(PASSWORD);
        tally.expectRefused('POST /api/session right password after lockout', s === 429, String(s));
      },
    };
    await Promise.all(Object.values(runs).map((run) => run()));
    // Another address is not affected: the lockout is per client, not a denial of service for the user.
    assert.match(await smtpAuth('127.0.0.9', USER, PASSWORD, 'PLAIN'), /^250 /);
  });

  it("a success for one account does not clear another's count: guess 4 times, log in as bob, repeat: locked", async () => {
    const runs = {
      async smtp() {
        const from = '127.0.0.10';
        for (let round = 0; round < 2; round++) {
          for (let i = 0; i < 4; i++) {
            const r = await smtpAuth(from, USER, `round-${round}-guess-${i}`, 'PLAIN');
            tally.expectRefused(`SMTP AUTH wrong password, round ${round + 1} #${i + 1}`, /^(535 5\.7\.8|454 4\.7\.0)/.test(r), r);
          }
          // The guesser's own account, from the same address: allowed, and clears nothing else.
          assert.match(await smtpAuth(from, 'bob@example.test', 'bob-password', 'PLAIN'), /^250 /);
        }
        const r = await smtpAuth(from, USER, PASSWORD, 'PLAIN');
        tally.expectRefused('SMTP AUTH right password after 8 guesses split by own logins', /^454 4\.7\.0/.test(r), r);
      },
      async httpBasic() {
        const from = '127.0.0.11';
        for (let round = 0; round < 2; round++) {
          for (let i = 0; i < 4; i++) {
            const s = await http(from, '/api/me', { method: 'GET', headers: basic(USER, `round-${round}-guess-${i}`) });
            tally.expectRefused(`HTTP Basic wrong password, round ${round + 1} #${i + 1}`, s === 401 || s === 429, String(s));
          }
          assert.equal(await http(from, '/api/me', { method: 'GET', headers: basic('bob@example.test', 'bob-password') }), 200);
        }
        const s = await http(from, '/api/me', { method: 'GET', headers: basic(USER, PASSWORD) });
        tally.expectRefused('HTTP Basic right password after 8 guesses split by own logins', s === 429, String(s));
      },
    };
    await Promise.all(Object.values(runs).map((run) => run()));
  });

  it('summary: every case refused', (tc) => tally.report((l) => tc.diagnostic(l)));
});
