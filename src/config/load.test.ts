import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from './load.ts';
import { renderConfig } from './template.ts';

const minimal = 'hostname = "mx.example.org"\ndomains = ["example.org"]\n';

describe('config', () => {
  it('fills safe defaults and resolves paths against the file', () => {
    const c = parseConfig(minimal, '/etc/twoway/twoway.toml');
    assert.equal(c.dataDir, '/etc/twoway/data');
    assert.equal(c.storage, 'sqlite:/etc/twoway/data/twoway.db');
    assert.deepEqual(c.smtp, { host: '0.0.0.0', port: 25 });
    assert.deepEqual(c.http, { host: '127.0.0.1', port: 8080, tls: true });
    assert.equal(c.tls.generated, true);
    assert.equal(c.tls.cert, '/etc/twoway/data/tls/cert.pem');
    assert.equal(c.limits.messageSize, 25 * 1024 * 1024);
    assert.equal(c.dkim.key, '/etc/twoway/data/dkim.key');
    assert.equal(c.server.loginCacheMs, 5 * 60_000);
    assert.equal(parseConfig(minimal + '[server]\nlogin_cache = "0s"\n', '/t.toml').server.loginCacheMs, 0);
  });

  it('accepts postgres storage and explicit TLS files', () => {
    const c = parseConfig(minimal + 'storage = "postgres://u@db:5432/mail"\n[tls]\ncert = "c.pem"\nkey = "/k.pem"\n', '/srv/t.toml');
    assert.equal(c.storage, 'postgres://u@db:5432/mail');
    assert.deepEqual(c.tls, { cert: '/srv/c.pem', key: '/k.pem', generated: false });
  });

  it('the file init writes is valid', () => {
    const c = parseConfig(renderConfig({ hostname: 'mx.a.test', domains: ['a.test'], smtpPort: 2525, httpPort: 0, dns: ['127.0.0.1:5353'] }), '/x/t.toml');
    assert.equal(c.smtp.port, 2525);
    assert.deepEqual(c.dns.servers, ['127.0.0.1:5353']);
    assert.equal(c.delivery.giveUpAfterMs, 5 * 86_400_000);
    assert.equal(c.delivery.delayWarningAfterMs, 4 * 3_600_000);
    assert.equal(parseConfig(minimal + '[delivery]\nmin_backoff = "1m30s"\n', '/t.toml').delivery.minBackoffMs, 90_000);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['missing domains', 'hostname = "mx.example.org"\n', /key "domains": .*expected array/i],
    ['empty domains', 'hostname = "mx.a.org"\ndomains = []\n', /key "domains": expected at least one served domain/],
    ['upper-case hostname', 'hostname = "MX"\ndomains = ["a.org"]\n', /key "hostname": expected a lower-case domain name/],
    ['port as string', minimal + '[smtp]\nport = "25"\n', /key "smtp\.port": .*expected number/],
    ['port out of range', minimal + '[http]\nport = 70000\n', /key "http\.port": .*65535/],
    ['unknown key', minimal + 'hostnme = "x"\n', /unknown key "hostnme"/],
    ['unknown nested key', minimal + '[limits]\nmax_size = 1\n', /unknown key "limits\.max_size"/],
    ['cert without key', minimal + '[tls]\ncert = "c.pem"\n', /key "tls": expected both "cert" and "key"/],
    ['bad dns server', minimal + '[dns]\nservers = ["not a host!"]\n', /key "dns\.servers\.0": expected "host" or "host:port"/],
    ['bad storage', minimal + 'storage = "mysql://x"\n', /key "storage": expected "sqlite:FILE" or "postgres/],
    ['bad duration', minimal + '[delivery]\ngive_up_after = "5 days"\n', /key "delivery\.give_up_after": expected a duration such as "30s"/],
    ['a TWM expiry over 30 days', minimal + '[twm]\nexpiry = "31d"\n', /key "twm\.expiry": at most "30d": recipients refuse notices that live longer/],
    ['a login cache over an hour', minimal + '[server]\nlogin_cache = "2h"\n', /key "server\.login_cache": at most "1h"/],
    ['invalid TOML', 'hostname = \n', /^\/t\.toml:1:\d+: invalid TOML/],
  ];
  for (const [name, text, pattern] of bad) {
    it(`rejects ${name} with a message naming the key`, () => {
      assert.throws(() => parseConfig(text, '/t.toml'), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, pattern);
        return true;
      });
    });
  }
});
