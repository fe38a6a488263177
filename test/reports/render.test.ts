import { readFileSync } from 'node:fs';
import path from 'node:path';
// ajv comes with the cloudevents dev dependency; it checks the report against its published JSON Schema.
import ajv2020 from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildReport } from '../../reports/report.js';
import { renderHtml } from '../../reports/render-html.js';
import { renderJson } from '../../reports/render-json.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { REPORT_SCHEMA_ID, REPORT_SCHEMA_VERSION, type Report } from '../../reports/types.js';
import { HOSTILE, sampleReport } from './fixtures.js';

const schemaFile = path.resolve(import.meta.dirname, '../../docs/report-schema.json');
const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as { $id: string };

// Both are CommonJS: under NodeNext the default import is module.exports, whose `default` is the export.
const Ajv2020 = ajv2020.default;
const addFormats = ajvFormats.default;

function validator() {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  return ajv.compile(schema);
}

let report: Report;
beforeAll(async () => {
  report = await sampleReport();
});

describe('JSON output', () => {
  it('has one flow per verdict in the fixture', () => {
    expect(report.flows.map((f) => [f.flow, f.verdict.status])).toEqual([
      ['inventory.reserve', 'READY'],
      ['pricing.quote', 'NOT_READY'],
      ['catalog.lookup', 'INSUFFICIENT_DATA'],
    ]);
  });

  it('validates against docs/report-schema.json, and names that schema and version', () => {
    const validate = validator();
    const parsed = JSON.parse(renderJson(report)) as Report;
    const ok = validate(parsed);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    expect(parsed.schema).toBe(schema.$id);
    expect(parsed.schema).toBe(REPORT_SCHEMA_ID);
    expect(parsed.schemaVersion).toBe(REPORT_SCHEMA_VERSION);
  });

  it('validates with no flows and with a flow that has no records', async () => {
    const validate = validator();
    for (const r of [await buildReport([]), await buildReport([], { flows: [{ name: 'empty', mode: 'direct' }] })]) {
      expect(validate(JSON.parse(renderJson(r)))).toBe(true);
    }
  });

  it('is not vacuous: a report missing a verdict or with an unknown field fails', () => {
    const validate = validator();
    const broken = JSON.parse(renderJson(report)) as Record<string, unknown> & { flows: Array<Record<string, unknown>> };
    delete broken.flows[0]!.verdict;
    expect(validate(broken)).toBe(false);
    const extra = { ...(JSON.parse(renderJson(report)) as object), surprise: 1 };
    expect(validate(extra)).toBe(false);
  });
});

describe('text output', () => {
  it('is a readable table without colour when not on a TTY, with record text made inert', () => {
    const text = renderText(report, { colour: false });
    expect(text).not.toContain('\x1b');
    expect(text).not.toContain('\x07');
    const lines = text.split('\n');
    const header = lines.findIndex((l) => l.startsWith('FLOW'));
    expect(lines[header]).toMatch(/^FLOW\s+MODE\s+SAMPLES\s+PARITY\s+95% LOWER\s+MISSING\s+DLQ\s+DIRECT p99\s+BUS p99\s+LAG p99\s+VERDICT$/);
    expect(lines[header + 1]).toMatch(/^inventory\.reserve\s+shadow\s+6,000\s+100%\s+99\.942%.*READY$/);
    expect(lines[header + 2]).toMatch(/^pricing\.quote\s+shadow\s+4,030\s.*NOT_READY$/);
    expect(lines[header + 3]).toMatch(/^catalog\.lookup\s+direct\s+120\s.*INSUFFICIENT_DATA$/);
    expect(text).toMatch(/✗ minParityLowerBound: measured 9\d\.\d+%, threshold 99\.9% — (since the change at \S+: )?parity/);
    expect(text).toContain('\\x1b[31mRED');
    expect(text).toMatch(/curl -sS -g -X POST 'http:\/\/127\.0\.0\.1:15000\/quote\?sku=A'\\''1&x=\$\(id\)'/);
    expect(text).not.toContain('Bearer nope');
  });

  it('colours verdicts on a TTY', () => {
    const text = renderText(report, { colour: true });
    expect(text).toContain('\x1b[32mREADY\x1b[0m');
    expect(text).toContain('\x1b[31mNOT_READY\x1b[0m');
    expect(text).toContain('\x1b[33mINSUFFICIENT_DATA\x1b[0m');
  });
});

describe('Markdown output', () => {
  it('has a summary table and a section per flow with reasons and fenced curls', () => {
    const md = renderMarkdown(report);
    expect(md).toMatch(/^## ❌ cutover readiness: NOT_READY/);
    const rows = md.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows).toHaveLength(3 + report.flows.reduce((n, f) => n + f.topDiffs.length, 0));
    expect(md).toContain('### ❌ `pricing.quote`: NOT_READY');
    expect(md).toMatch(/- ❌ `minParityLowerBound`: measured 9\d\.\d+%, threshold 99\.9%/);
    expect(md).toContain('```sh\n  curl -sS -g -X POST');
  });

  it('keeps hostile values inside code spans: no raw HTML, no broken table rows', () => {
    const md = renderMarkdown(report);
    expect(md).toContain(HOSTILE.html.slice(0, 20));
    // Outside code spans and fences (where Markdown shows text literally) no hostile HTML is left.
    const prose = md.replace(/(?<!`)(`+)(?!`)[\s\S]*?(?<!`)\1(?!`)/g, '');
    expect(prose).not.toMatch(/<img|<script|\]\(http/);
    expect(md).not.toContain('\x1b');
    for (const row of md.split('\n').filter((l) => l.startsWith('|'))) {
      // Every unescaped pipe is a cell border: rows of one table have the same number.
      const cells = row.replace(/\\\|/g, '').split('|').length;
      expect([13, 8, 5]).toContain(cells);
    }
  });
});

describe('HTML output', () => {
  it('is one self-contained file: no scripts, no external references, a CSP that forbids fetching', () => {
    const html = renderHtml(report);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<script|<img|<link|@import|url\(/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
    expect(html).toContain('&lt;img src=&quot;http://example.invalid/pixel.png&quot;&gt;');
    expect(html.match(/<svg class="chart /g)).toHaveLength(6);
    expect(html).not.toContain(HOSTILE.ansi);
  });
});
