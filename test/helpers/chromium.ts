import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium (package `chromium`; .ci/run installs it), driven by playwright-core, which never downloads a browser. */
export const CHROMIUM = process.env.CUTOVER_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless Chromium on a fresh profile directory (a persistent context is how Playwright takes
 * --user-data-dir), with nothing of its own on the network. Throws with the install hint when it is missing.
 */
export async function launchChromium(profileDir: string, options: { viewport?: { width: number; height: number } } = {}): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium) or set CUTOVER_CHROMIUM`);
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    ...(options.viewport ? { viewport: options.viewport, deviceScaleFactor: 1 } : {}),
  });
}

/** Records what a page requests and every console error or warning and page error, from now on. */
export function watchPage(page: Page): { requests: string[]; problems: string[] } {
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (r) => void requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => void problems.push(`pageerror: ${e.message}`));
  return { requests, problems };
}
