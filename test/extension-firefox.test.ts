/**
 * The extension in Debian's Firefox ESR, driven over WebDriver BiDi with
 * puppeteer-core: the package npm run build:extension makes installs as a
 * temporary add-on (installExtension), under the gecko id of the manifest.
 *
 * Not covered here (docs/extension.md, "Tests"): Firefox's BiDi refuses to
 * navigate to moz-extension:// pages ("Navigation to moz-extension://… is
 * not allowed in this context") and does not list the tabs an extension
 * opens, so the connect step cannot be driven; the flow after it is the
 * Chromium test's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

const FIREFOX = process.env.TWOWAY_FIREFOX ?? '/usr/bin/firefox-esr';
const skip = !existsSync(FIREFOX) && !process.env.CI ? `no browser at ${FIREFOX} (apt-get install firefox-esr)` : undefined;

describe('the extension in firefox-esr', { skip }, () => {
  let out: string;
  let browser: Browser;
  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'twoway-ext-ff-'));
    const built = spawnSync(process.execPath, ['scripts/build-extension.mjs', '--out', out], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    browser = await puppeteer.launch({ browser: 'firefox', protocol: 'webDriverBiDi', executablePath: FIREFOX, headless: true });
  });
  after(async () => {
    await browser?.close();
    rmSync(out, { recursive: true, force: true });
  });

  it('installs as a temporary add-on over BiDi under the manifest gecko id', async () => {
    const id = await browser.installExtension(join(out, 'extension'));
    assert.equal(id, 'extension@twoway.invalid');
    await browser.uninstallExtension(id);
  });
});
