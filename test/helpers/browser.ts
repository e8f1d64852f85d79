/**
 * A real browser for the web app's tests: Debian's chromium driven by
 * playwright-core (no browser download). The test server's certificate is
 * self-signed, hence ignoreHTTPSErrors.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.TWOWAY_CHROMIUM ?? '/usr/bin/chromium';

/** A reason to skip browser tests locally (no chromium); in CI a missing browser fails instead. */
export const browserSkip = !existsSync(CHROMIUM) && !process.env.CI ? `no browser at ${CHROMIUM} (apt-get install chromium)` : undefined;

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export function newContext(browser: Browser, options: { width?: number; bypassCSP?: boolean } = {}): Promise<BrowserContext> {
  return browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: options.width ?? 1280, height: 900 }, bypassCSP: options.bypassCSP ?? false });
}

export async function signIn(page: Page, base: string, address: string, password: string): Promise<void> {
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Address').fill(address);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/screener`);
}

// Screenshots are taken on every run (a page that fails to render fails the test) but written to
// docs/screenshots/ only with TWOWAY_SCREENSHOTS=1, so a test run leaves the checkout clean.
const SCREENSHOTS = process.env.TWOWAY_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots') : null;
let axeSource: string | undefined;

/**
 * axe-core on the page as it stands (injected as a script: the context needs
 * `bypassCSP`), no violation allowed; then its screenshot, `name-width.png`.
 */
export async function checkPage(page: Page, name: string, width: number): Promise<void> {
  axeSource ??= readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    const result = await (window as unknown as { axe: { run(): Promise<{ violations: Array<{ id: string; nodes: unknown[] }> }> } }).axe.run();
    return result.violations.map((v) => `${v.id} (${v.nodes.length})`);
  });
  assert.deepEqual(violations, [], `axe on ${name} at ${width}px`);
  const shot = await page.screenshot({ fullPage: true, ...(SCREENSHOTS ? { path: join(SCREENSHOTS, `${name}-${width}.png`) } : {}) });
  assert.ok(shot.length > 1000, `a screenshot of ${name} at ${width}px`);
}
