import type { Report } from './types.js';

/**
 * The report as JSON (`--format json`, admin `GET /report`). The shape is versioned (`schemaVersion`) and
 * described by docs/report-schema.json; the report model is already plain JSON, so this only serializes.
 */
export function renderJson(report: Report): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
