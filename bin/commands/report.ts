import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDuration } from '../../src/duration.js';
import { currentModes, readFlips } from '../../src/flips/log.js';
import { flipPolicy } from '../../src/flips/policy.js';
import { sidecarBaseUrl } from '../../src/net.js';
import { renderHtml } from '../../reports/render-html.js';
import { renderJson } from '../../reports/render-json.js';
import { renderMarkdown } from '../../reports/render-md.js';
import { renderText } from '../../reports/render-text.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../../reports/report.js';
import { ReportExitCode } from '../../reports/types.js';
import { loadConfig, parseCommandArgs, usageError, withBus, type CliIo, type CommandDeps } from '../io.js';


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

/**
 * `cutover report`: builds the readiness report for the config's flows from the parity records on the
 * bus and returns the exit code (0 all READY, 1 any NOT_READY, 3 any INSUFFICIENT_DATA). Usage and config
 * problems are thrown as CutoverError (CUTOVER_USAGE, CUTOVER_CONFIG_*) for the CLI's error handler,
 * which exits 2 for those; bus failures are thrown as BusError.
 */
export async function reportCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    {
      config: { type: 'string', short: 'c' },
      flow: { type: 'string', multiple: true },
      since: { type: 'string' },
      format: { type: 'string', short: 'f' },
      out: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
    REPORT_USAGE,
  );
  if (values.help) {
    io.out(REPORT_USAGE);
    return 0;
  }
  if (!values.config) throw usageError('report needs --config FILE', REPORT_USAGE);
  const format = (values.format ?? 'text') as ReportFormat;
  if (!REPORT_FORMATS.includes(format)) throw usageError(`--format must be one of ${REPORT_FORMATS.join(', ')}, got ${JSON.stringify(values.format)}`, REPORT_USAGE);
  let sinceMs: number | undefined;
  if (values.since !== undefined) {
    sinceMs = parseDuration(values.since);
    if (sinceMs === undefined || sinceMs <= 0) throw usageError(`--since expects a duration like 30m, 24h or 7d, got ${JSON.stringify(values.since)}`, REPORT_USAGE);
  }

  const env = deps.env ?? process.env;
  const config = loadConfig(values.config, deps);
  if (config.flows.length === 0) throw usageError(`${values.config} declares no flows: nothing to report on`, REPORT_USAGE);
  let flows = config.flows;
  if (values.flow && values.flow.length > 0) {
    const unknown = values.flow.filter((name) => !config.flows.some((f) => f.name === name));
    if (unknown.length > 0) throw usageError(`unknown flow${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (the config declares ${config.flows.map((f) => f.name).join(', ')})`, REPORT_USAGE);
    flows = config.flows.filter((f) => values.flow!.includes(f.name));
  }

  const now = (deps.now ?? (() => new Date()))();
  const report = await withBus(config, deps, async (bus, logger) => {
    const configModes = new Map(config.flows.map((f) => [f.name, f.mode]));
    const flips = await readFlips(bus, { policy: flipPolicy(config.trust), configModes });
    return buildReport(parityRecordsFromBus(bus), {
      flows: reportFlowsFromConfig(flows, currentModes(flips, configModes), flips),
      readiness: config.readiness,
      since: sinceMs === undefined ? null : new Date(now.getTime() - sinceMs),
      now,
      baseUrl: sidecarBaseUrl(config.listen),
      logger,
    });
  });

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
