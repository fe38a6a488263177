/** Readiness reports: aggregation, statistics, verdicts, the flip gate and renderers. */
export * from './types.js';
export { wilson, samplesNeeded, Z95, type Interval } from './stats.js';
export { READINESS_DEFAULTS, readinessSchema, flowReadinessSchema, resolveCriteria, type ReadinessConfig, type ReadinessInput, type FlowReadinessConfig } from '../src/config/readiness.js';
export { decideVerdict, worstVerdict } from './verdict.js';
export { buildCurl, shellQuote, type CurlResult } from './curl.js';
export { buildReport, parityRecordsFromBus, adminReport, reportFlowsFromConfig, type BuildReportOptions, type ReportFlow, type AdminReport } from './report.js';
export { renderText, type TextOptions } from './render-text.js';
export { renderJson } from './render-json.js';
export { renderMarkdown } from './render-md.js';
export { renderHtml } from './render-html.js';
