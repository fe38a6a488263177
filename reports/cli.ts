import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { openBus } from '../src/bus/index.js';
import type { BusConfig } from '../src/bus/options.js';
import type { Bus } from '../src/bus/types.js';
import { formatIssues, parseConfigText } from '../src/config/load.js';
import { cutoverConfigSchema, type CutoverConfig } from '../src/config/schema.js';
import { parseDuration } from '../src/duration.js';
import { ConfigError, CutoverError, ErrorCodes } from '../src/errors.js';
import type { FlowConfig } from '../src/flows/schema.js';
import { createLogger, type Logger } from '../src/logger.js';
import { flowReadinessSchema, readinessSchema, type FlowReadinessConfig, type ReadinessConfig } from './options.js';
import { renderHtml } from './render-html.js';
import { renderJson } from './render-json.js';
import { renderMarkdown } from './render-md.js';
import { renderText } from './render-text.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from './report.js';
import type { Report, VerdictStatus } from './types.js';

/** Exit codes of `cutover report`: CI gates on them. NOT_READY wins over INSUFFICIENT_DATA. */
export const ReportExitCode = { READY: 0, NOT_READY: 1, INSUFFICIENT_DATA: 3 } as const satisfies Record<VerdictStatus, number>;

export const REPORT_FORMATS = ['text', 'json', 'md', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export const REPORT_USAGE = `usage: cutover report --config FILE [--flow NAME]... [--since DURATION] [--format text|json|md|html] [--out FILE]

  --config FILE      the cutover config (flows, bus, readiness criteria)
  --flow NAME        report only this flow (repeatable); default every flow in the config
  --since DURATION   only records from the last DURATION (like 30m, 24h, 7d)
  --format FORMAT    text (default), json, md or html
  --out FILE         write the report to FILE instead of stdout

exit codes: 0 every flow READY, 1 any NOT_READY, 3 any INSUFFICIENT_DATA (and none NOT_READY),
            2 usage or config error`;

export interface ReportIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Whether `out` is a terminal: colour only then. */
  isTTY?: boolean;
}

/** The config as the report needs it: the validated file plus the readiness keys. */
export interface ReportConfig {
  config: CutoverConfig;
  readiness: ReadinessConfig;
  flowReadiness: Map<string, FlowReadinessConfig>;
}

export interface ReportDeps {
  /** Loads and validates the config file. Default {@link loadReportConfig}. */
  loadConfig?: (file: string) => ReportConfig;
  /** Opens and starts the bus the parity records are on; closed by the command. Default createBus + start. */
  openBus?: (config: BusConfig, logger: Logger) => Promise<Bus>;
  /**
   * The flow's current mode. Until flips exist it is the config's `mode`; the flips issue replaces this
   * hook with a reader of the flip log.
   */
  modeOf?: (flow: FlowConfig) => string | Promise<string>;
  now?: () => Date;
  logger?: Logger;
  /** For NO_COLOR. Default process.env (this is the CLI edge). */
  env?: NodeJS.ProcessEnv;
}

/** Config readiness keys the main schema may not know yet: read here, stripped before validating the rest. */
const readinessViewSchema = z
  .object({
    readiness: readinessSchema.default({}),
    flows: z.array(z.object({ name: z.unknown(), readiness: flowReadinessSchema.optional() }).passthrough()).default([]),
  })
  .passthrough();

/**
 * Reads the config with its `readiness:` keys (top level and per flow). The keys are validated with the
 * schemas in reports/options.ts and removed before the rest is validated by the main config schema, so
 * this works whether or not that schema has been taught the keys yet. Throws one ConfigError listing every
 * problem with its path.
 */
export function loadReportConfig(file: string, env: NodeJS.ProcessEnv = process.env): ReportConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(ErrorCodes.CONFIG_NOT_FOUND, `cannot read config file ${file}: ${(err as Error).message}`, [], { cause: err });
  }
  const raw = parseConfigText(text, z.unknown(), { env, source: file });
  const issues: string[] = [];
  const view = readinessViewSchema.safeParse(raw ?? {});
  if (!view.success) issues.push(...formatIssues(view.error));
  const stripped = stripReadiness(raw);
  const main = cutoverConfigSchema.safeParse(stripped);
  if (!main.success) issues.push(...formatIssues(main.error));
  if (!view.success || !main.success) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${file} is invalid:\n  ${issues.join('\n  ')}`, issues);
  }
  const flowReadiness = new Map<string, FlowReadinessConfig>();
  view.data.flows.forEach((f) => {
    if (typeof f.name === 'string' && f.readiness) flowReadiness.set(f.name, f.readiness);
  });
  return { config: main.data, readiness: view.data.readiness, flowReadiness };
}

function stripReadiness(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const { readiness: _top, ...rest } = raw as Record<string, unknown>;
  if (Array.isArray(rest.flows)) {
    rest.flows = rest.flows.map((f: unknown) => {
      if (typeof f !== 'object' || f === null || Array.isArray(f)) return f;
      const { readiness: _flow, ...flow } = f as Record<string, unknown>;
      return flow;
    });
  }
  return rest;
}

/** `http://<listen>` with wildcard addresses replaced by loopback: where a pasted curl can reach the sidecar. */
export function sidecarBaseUrl(listen: string): string {
  const host = listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
  return `http://${host}`;
}

function defaultOpenBus(config: BusConfig, logger: Logger): Promise<Bus> {
  return openBus(config, { logger });
}

function usage(message: string): CutoverError {
  return new CutoverError(ErrorCodes.USAGE, `${message}\n${REPORT_USAGE}`);
}

/**
 * `cutover report`: builds the readiness report for the config's flows from the parity records on the
 * bus and returns the exit code (0 all READY, 1 any NOT_READY, 3 any INSUFFICIENT_DATA). Usage and config
 * problems are thrown as CutoverError (CUTOVER_USAGE, CUTOVER_CONFIG_*) for the CLI's error handler,
 * which exits 2 for those; bus failures are thrown as BusError.
 */
export async function reportCommand(argv: string[], io: ReportIo, deps: ReportDeps = {}): Promise<number> {
  let values: { config?: string; flow?: string[]; since?: string; format?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        flow: { type: 'string', multiple: true },
        since: { type: 'string' },
        format: { type: 'string', short: 'f' },
        out: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw usage((err as Error).message);
  }
  if (values.help) {
    io.out(REPORT_USAGE);
    return 0;
  }
  if (!values.config) throw usage('report needs --config FILE');
  const format = (values.format ?? 'text') as ReportFormat;
  if (!REPORT_FORMATS.includes(format)) throw usage(`--format must be one of ${REPORT_FORMATS.join(', ')}, got ${JSON.stringify(values.format)}`);
  let sinceMs: number | undefined;
  if (values.since !== undefined) {
    sinceMs = parseDuration(values.since);
    if (sinceMs === undefined || sinceMs <= 0) throw usage(`--since expects a duration like 30m, 24h or 7d, got ${JSON.stringify(values.since)}`);
  }

  const env = deps.env ?? process.env;
  const { config, readiness, flowReadiness } = (deps.loadConfig ?? ((file) => loadReportConfig(file, env)))(values.config);
  if (config.flows.length === 0) throw usage(`${values.config} declares no flows: nothing to report on`);
  let flows = config.flows;
  if (values.flow && values.flow.length > 0) {
    const unknown = values.flow.filter((name) => !config.flows.some((f) => f.name === name));
    if (unknown.length > 0) throw usage(`unknown flow${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (the config declares ${config.flows.map((f) => f.name).join(', ')})`);
    flows = config.flows.filter((f) => values.flow!.includes(f.name));
  }

  const logger = deps.logger ?? createLogger({ level: config.log.level });
  const reportFlows = await reportFlowsFromConfig(flows, deps.modeOf, flowReadiness);

  const now = (deps.now ?? (() => new Date()))();
  const bus = await (deps.openBus ?? defaultOpenBus)(config.bus, logger);
  let report: Report;
  try {
    report = await buildReport(parityRecordsFromBus(bus), {
      flows: reportFlows,
      readiness,
      since: sinceMs === undefined ? null : new Date(now.getTime() - sinceMs),
      now,
      baseUrl: sidecarBaseUrl(config.listen),
      logger,
    });
  } finally {
    await bus.close();
    // A logger made here writes asynchronously: flush so skipped-record warnings are not lost at exit.
    if (!deps.logger) await new Promise<void>((resolve) => logger.flush(() => resolve()));
  }

  const colour = !values.out && io.isTTY === true && !env.NO_COLOR;
  const rendered = format === 'json' ? renderJson(report) : format === 'md' ? renderMarkdown(report) : format === 'html' ? renderHtml(report) : renderText(report, { colour });
  if (values.out) {
    writeAtomically(values.out, rendered);
    io.out(`wrote ${format} report to ${values.out}: ${report.verdict} (${report.summary.READY} ready, ${report.summary.NOT_READY} not ready, ${report.summary.INSUFFICIENT_DATA} insufficient data)`);
  } else {
    io.out(rendered.replace(/\n$/, ''));
  }
  return ReportExitCode[report.verdict];
}

/** A reader of --out never sees half a report: write beside it, then rename over. */
function writeAtomically(file: string, content: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}
