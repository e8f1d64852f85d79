/**
 * A real browser for the web app's tests: Debian's chromium driven by
 * playwright-core (no browser download). The test server's certificate is
 * self-signed, hence ignoreHTTPSErrors.
 */
import { existsSync } from 'node:fs';
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
