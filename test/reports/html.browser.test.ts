import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderHtml } from '../../reports/render-html.js';
import { launchChromium, watchPage } from '../helpers/chromium.js';
import { sampleReport } from './fixtures.js';

/** Renders the HTML report in Debian's Chromium (see test/helpers/chromium.ts). */

describe('HTML report in headless Chromium', () => {
  let context: BrowserContext;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-report-html-'));
    context = await launchChromium(path.join(dir, 'profile'), { viewport: { width: 1366, height: 900 } });
  });

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('renders flows, verdicts and charts with no console errors and no network requests', async () => {
    const report = await sampleReport();
    const file = path.join(dir, 'report.html');
    writeFileSync(file, renderHtml(report));
    const url = pathToFileURL(file).href;

    const page = await context.newPage();
    const { requests, problems } = watchPage(page);

    await page.goto(url, { waitUntil: 'load' });

    expect(await page.title()).toBe('Cutover readiness: NOT_READY');
    const flows = page.locator('section.flow');
    expect(await flows.count()).toBe(3);
    expect(await page.locator('section.flow h2').allTextContents()).toEqual(['inventory.reserve', 'pricing.quote', 'catalog.lookup']);
    expect(await flows.evaluateAll((els) => els.map((e) => e.getAttribute('data-verdict')))).toEqual(['READY', 'NOT_READY', 'INSUFFICIENT_DATA']);
    expect(await page.locator('.summary tbody tr').count()).toBe(3);
    expect(await page.locator('.summary .badge').allTextContents()).toEqual(['READY', 'NOT READY', 'INSUFFICIENT DATA']);
    // Reasons name the failing criterion with measured value and threshold.
    expect(await page.locator('section.flow[data-verdict="NOT_READY"] ul.reasons li.fail').first().textContent()).toMatch(/minParityLowerBound failed: measured 9\d\.\d+%, threshold 99\.9%/);

    // Every flow has a timeline and a latency chart, drawn with visible size and real marks.
    for (const kind of ['timeline-chart', 'latency-chart']) {
      const charts = page.locator(`svg.${kind}`);
      expect(await charts.count()).toBe(3);
      for (const box of await charts.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON() as { width: number; height: number }))) {
        expect(box.width).toBeGreaterThan(300);
        expect(box.height).toBeGreaterThan(100);
      }
    }
    expect(await page.locator('svg.timeline-chart polyline.parity').count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator('svg.timeline-chart rect.mismatch').count()).toBeGreaterThan(0);
    expect(await page.locator('svg.latency-chart rect.p99').count()).toBe(9);

    // The hostile diff value is shown as text, never parsed into an element.
    expect(await page.locator('main img, main script').count()).toBe(0);
    const shown = await page.locator('section.flow[data-verdict="NOT_READY"] .example code').allTextContents();
    expect(shown.some((t) => t.startsWith('"<img src=\\"http://example.invalid/pixel.png\\"><script src='))).toBe(true);

    // CUTOVER_REPORT_SCREENSHOT=/some/file.png keeps the screenshot for a human to look at.
    const shot = process.env.CUTOVER_REPORT_SCREENSHOT ?? path.join(dir, 'report.png');
    const png = await page.screenshot({ path: shot, fullPage: true });
    expect(png.length).toBeGreaterThan(50_000);
    await page.close();

    expect(problems).toEqual([]);
    // Only the report itself was loaded: nothing from the network, no data: or blob: subresources.
    expect(requests).toEqual([url]);
  });
});
