/**
 * The programmatic API of cutover (`import … from 'cutover'`): run a sidecar, open a bus, build and render
 * readiness reports, load and validate config, and match errors by code. Bus-native agents import the SDK
 * from `cutover/sdk` instead.
 *
 * Everything here is a stable surface: what the sidecar, shadow side and reports are made of stays
 * internal so it can change without breaking callers.
 * @packageDocumentation
 */
import { openBus } from '../src/bus/index.js';
import type { z } from 'zod';
import { formatIssues, loadConfigFile } from '../src/config/load.js';
import { cutoverConfigSchema, type CutoverConfig, type CutoverConfigInput } from '../src/config/schema.js';
import { ConfigError, ControlError, ErrorCodes } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/logger.js';
import type { Registry } from '../src/metrics.js';
import { modesFromLog } from '../src/flips/control.js';
import { sidecarBaseUrl } from '../reports/cli.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../reports/report.js';
import type { Report } from '../reports/types.js';
import { sidecarConfigSchema, type SidecarConfig, type SidecarConfigInput } from './config.js';
import { startSidecar as startSidecarHandle, type Address } from './sidecar.js';

export {
  BusError,
  ConfigError,
  ControlError,
  CutoverError,
  ErrorCodes,
  ProxyError,
  ValidationError,
  isCutoverError,
  isRetriable,
  type CutoverErrorOptions,
  type ErrorCode,
} from '../src/errors.js';
export { createBus, openBus, type CreateBusOptions } from '../src/bus/index.js';
export type {
  BackoffOptions,
  Bus,
  BusConfig,
  BusConfigInput,
  BusHealth,
  BusKind,
  BusMessage,
  Delivery,
  Handler,
  ReadOptions,
  ReadStream,
  SubscribeOptions,
  Subscription,
} from '../src/bus/index.js';
export type { CloudEvent } from '../src/events/types.js';
export { renderText, type TextOptions } from '../reports/render-text.js';
export { renderJson } from '../reports/render-json.js';
export { renderMarkdown } from '../reports/render-md.js';
export { renderHtml, type HtmlOptions } from '../reports/render-html.js';
export { ReportExitCode } from '../reports/cli.js';
export type { FlowReport, Reason, Report, Verdict, VerdictStatus } from '../reports/types.js';
export type { Address, CutoverConfig, CutoverConfigInput, Logger, Registry, SidecarConfig, SidecarConfigInput };

/** Where config comes from: a YAML file path (with `${VAR}` interpolation) or an object of the same shape. */
export type ConfigSource<Input> = string | Input;

interface EnvOption {
  /** Environment for `${VAR}` in config files and for the encryption key. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads a config file and validates it the way `cutover validate` does.
 * @throws ConfigError `CUTOVER_CONFIG_NOT_FOUND` when the file cannot be read, `CUTOVER_CONFIG_INVALID`
 * listing every problem with its path (also in `issues`).
 */
export function loadConfig(file: string, options: EnvOption = {}): CutoverConfig {
  return loadConfigFile(file, cutoverConfigSchema, options);
}

/**
 * Validates config given as an object of the config file's shape, filling in defaults.
 * @throws ConfigError `CUTOVER_CONFIG_INVALID` listing every problem with its path.
 */
export function parseConfig(input: CutoverConfigInput): CutoverConfig {
  return validate(cutoverConfigSchema, input);
}

function validate<S extends z.ZodTypeAny>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = formatIssues(result.error);
  throw new ConfigError(ErrorCodes.CONFIG_INVALID, `config is invalid:\n  ${issues.join('\n  ')}`, issues);
}

export interface StartSidecarOptions extends EnvOption {
  /** pino logger; the sidecar logs through children of it. Default: silent. */
  logger?: Logger;
  /** prom-client registry for the sidecar's metrics. Default: a fresh one. */
  registry?: Registry;
}

/** A running sidecar. */
export interface Sidecar {
  /** The validated config it runs with (defaults filled in). */
  readonly config: SidecarConfig;
  /** The data listener callers send their requests to. */
  readonly data: Address;
  /** The admin listener (health, metrics, report, flips). */
  readonly admin: Address;
  /** Events waiting in the local spool for the bus. */
  spoolDepth(): number;
  /**
   * Drains and stops: stops accepting requests, lets in-flight ones finish (up to `shutdownTimeout`),
   * sends the publish queue and spool (up to `publisher.drainTimeout`; the rest stays spooled for the next
   * start), closes the bus and the listeners. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Starts a sidecar, as `cutover sidecar --config FILE` does: the data listener (forwarding and dual-write)
 * and the admin listener, plus the in-process shadow side and `deliver:` consumers the config asks for.
 * Listen on port 0 to get a free port; read it from `data` and `admin`.
 *
 * Config problems throw before anything listens. An unreachable bus does not stop the start (events are
 * spooled) unless `publisher.requireBus` is set.
 * @throws ConfigError on an unreadable or invalid config or a missing encryption key.
 */
export async function startSidecar(config: ConfigSource<SidecarConfigInput>, options: StartSidecarOptions = {}): Promise<Sidecar> {
  const env = options.env ?? process.env;
  const parsed = typeof config === 'string' ? loadConfigFile(config, sidecarConfigSchema, { env }) : validate(sidecarConfigSchema, config);
  const handle = await startSidecarHandle(parsed, { ...options, env });
  return {
    config: handle.config,
    data: handle.data,
    admin: handle.admin,
    spoolDepth: () => handle.publisher.spoolDepth,
    close: () => handle.close(),
  };
}

export interface BuildReportForConfigOptions extends EnvOption {
  /** Only these flows (by name). Default every flow of the config. */
  flows?: readonly string[];
  /** Leave out parity records decided before this time. */
  since?: Date;
  /** The report's `generatedAt`. Default now. */
  now?: Date;
  logger?: Logger;
}

/**
 * Builds the readiness report of a config's flows, as `cutover report` does: opens the config's bus,
 * reads each flow's current mode from the flip log and every parity record, applies the config's
 * `readiness:` criteria, and closes the bus again. Render the result with {@link renderText},
 * {@link renderJson}, {@link renderMarkdown} or {@link renderHtml}; {@link ReportExitCode} maps its
 * verdict to the command's exit code.
 * @throws ConfigError on an invalid config, ControlError `CUTOVER_FLOW_UNKNOWN` on an unknown flow name,
 * BusError when the bus cannot be read.
 */
export async function buildReportForConfig(config: ConfigSource<CutoverConfigInput>, options: BuildReportForConfigOptions = {}): Promise<Report> {
  const parsed = typeof config === 'string' ? loadConfig(config, options) : parseConfig(config);
  const flows = selectFlows(parsed, options.flows);
  const logger = options.logger ?? silentLogger();
  const bus = await openBus(parsed.bus, { logger });
  try {
    const modes = await modesFromLog(bus, flows);
    return await buildReport(parityRecordsFromBus(bus), {
      flows: await reportFlowsFromConfig(flows, (flow) => modes.get(flow.name) ?? flow.mode),
      readiness: parsed.readiness,
      since: options.since ?? null,
      now: options.now ?? new Date(),
      baseUrl: sidecarBaseUrl(parsed.listen),
      logger,
    });
  } finally {
    await bus.close();
  }
}

function selectFlows(config: CutoverConfig, names: readonly string[] | undefined): CutoverConfig['flows'] {
  if (!names) return config.flows;
  const unknown = names.filter((name) => !config.flows.some((f) => f.name === name));
  if (unknown.length > 0) {
    throw new ControlError(ErrorCodes.FLOW_UNKNOWN, `unknown flow ${unknown.map((n) => JSON.stringify(n)).join(', ')} (the config declares ${config.flows.map((f) => f.name).join(', ') || 'no flows'})`);
  }
  return config.flows.filter((f) => names.includes(f.name));
}
