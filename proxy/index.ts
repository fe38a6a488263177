/**
 * The programmatic API of cutover (`import … from 'cutover'`): run a sidecar, open a bus, build and render
 * readiness reports, load and validate config, and match errors by code. Bus-native agents import the SDK
 * from `cutover/sdk` instead.
 *
 * Only what callers need is exported: what the sidecar, shadow side and reports are made of stays internal,
 * so it can change without breaking them.
 * @packageDocumentation
 */
import type { z } from 'zod';
import type * as bus from '../src/bus/index.js';
import { openBus } from '../src/bus/index.js';
import { signedBus } from '../src/bus/signed-bus.js';
import { loadIdentity } from '../src/events/signature.js';
import { formatIssues, loadConfigFile } from '../src/config/load.js';
import { cutoverConfigSchema, type CutoverConfig as Config, type CutoverConfigInput as ConfigInput } from '../src/config/schema.js';
import * as errors from '../src/errors.js';
import { ConfigError, ControlError, ErrorCodes } from '../src/errors.js';
import { silentLogger, type Logger as PinoLogger } from '../src/logger.js';
import type { Registry as PromRegistry } from '../src/metrics.js';
import { currentModes, readFlips } from '../src/flips/log.js';
import { flipPolicy } from '../src/flips/policy.js';
import { sidecarBaseUrl } from '../src/net.js';
import { renderHtml as renderHtmlPage } from '../reports/render-html.js';
import type * as html from '../reports/render-html.js';
import type * as text from '../reports/render-text.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../reports/report.js';
import type * as reports from '../reports/types.js';
import { sidecarConfigSchema, type SidecarConfig as SidecarSettings, type SidecarConfigInput as SidecarSettingsInput } from '../src/config/schema.js';
import { startSidecar as startSidecarHandle, type Address as ListenAddress } from './sidecar.js';

// Documented at their declarations, which the emitted declarations carry along.
export { BusError, ConfigError, ControlError, CutoverError, ErrorCodes, ProxyError, ValidationError, isRetriable } from '../src/errors.js';
export { createBus, openBus } from '../src/bus/index.js';
export type { Bus, Delivery } from '../src/bus/index.js';
export type { CloudEvent } from '../src/events/types.js';
export type { Reason } from '../reports/types.js';
export { renderText } from '../reports/render-text.js';
export { renderJson } from '../reports/render-json.js';
export { renderMarkdown } from '../reports/render-md.js';
export { ReportExitCode } from '../reports/types.js';

// Declared without TSDoc where they live: named here with their documentation.

/** True for every error cutover throws on purpose; match its `code` against {@link ErrorCodes}. */
export const isCutoverError: (err: unknown) => err is errors.CutoverError = errors.isCutoverError;
/** One of the closed list of {@link ErrorCodes} values (`CUTOVER_CONFIG_INVALID`, …). */
export type ErrorCode = errors.ErrorCode;
/** What a {@link CutoverError} carries besides code and message: cause, retriability, HTTP status, details. */
export type CutoverErrorOptions = errors.CutoverErrorOptions;

/** Options of {@link createBus} and {@link openBus}: the logger, and how to open Kafka connections. */
export type CreateBusOptions = bus.CreateBusOptions;
/** A bus section of the config after validation, defaults filled in. */
export type BusConfig = bus.BusConfig;
/** A bus section as written: `{ kind: 'embedded' | 'redis' | 'kafka' | 'rabbitmq', … }` (docs/bus.md lists the options). */
export type BusConfigInput = bus.BusConfigInput;
/** The bus adapters: `embedded` (one SQLite file), `redis` (Redis Streams), `kafka`. */
export type BusKind = bus.BusKind;
/** One message to publish: a CloudEvent, its partition key (per-key order) and transport headers. */
export type BusMessage = bus.BusMessage;
/** A consumer group's handler of one delivery; the message is acknowledged once it resolves. */
export type Handler = bus.Handler;
/** Retry backoff of a subscription (first delay, factor, cap). */
export type BackoffOptions = bus.BackoffOptions;
/** What {@link Bus.subscribe} takes: group, topics or patterns, handler, concurrency, attempts before the DLQ. */
export type SubscribeOptions = bus.SubscribeOptions;
/** A running consumer group membership; `close()` leaves the group after handlers in flight finish. */
export type Subscription = bus.Subscription;
/** Where {@link Bus.read} starts and whether it follows new messages. */
export type ReadOptions = bus.ReadOptions;
/** The deliveries of {@link Bus.read}, as an async iterable that can be closed early. */
export type ReadStream = bus.ReadStream;
/** Result of {@link Bus.health}: whether the bus answers, and how fast. */
export type BusHealth = bus.BusHealth;

/** The readiness report: the worst verdict, a count per verdict, what was read, and one entry per flow. */
export type Report = reports.Report;
/** One flow's part of a {@link Report}: mode, samples, outcomes, parity bound, latencies, rates, verdict. */
export type FlowReport = reports.FlowReport;
/** A flow's verdict with the criteria it does not meet ({@link Reason}) and advice. */
export type Verdict = reports.Verdict;
/** `READY`, `NOT_READY` or `INSUFFICIENT_DATA`. */
export type VerdictStatus = reports.VerdictStatus;
/** Options of {@link renderText}: ANSI colour or not. */
export type TextOptions = text.TextOptions;
/** Options of {@link renderHtml}: the flip history to show per flow. */
export type HtmlOptions = html.HtmlOptions;
/**
 * Renders a report as one self-contained HTML page: inline CSS and SVG charts, no scripts, and a
 * Content-Security-Policy that forbids every fetch, since diff values in the report come from the wire.
 */
export const renderHtml: (report: Report, options?: HtmlOptions) => string = renderHtmlPage;

/** The whole config file after validation, defaults filled in. */
export type CutoverConfig = Config;
/** The config file as written (docs/configuration.md lists every key). */
export type CutoverConfigInput = ConfigInput;
/** The config as a sidecar runs it: {@link CutoverConfig} with `upstream` or `routes` required. */
export type SidecarConfig = SidecarSettings;
/** What {@link startSidecar} takes when given an object. */
export type SidecarConfigInput = SidecarSettingsInput;
/** A listener's address: host, port and `http://host:port`. */
export type Address = ListenAddress;
/** A pino logger: cutover logs JSON lines through children of the one you pass. */
export type Logger = PinoLogger;
/** A prom-client registry for the sidecar's metrics. */
export type Registry = PromRegistry;

/** Where config comes from: a YAML file path (with `${VAR}` interpolation) or an object of the same shape. */
export type ConfigSource<Input> = string | Input;

/** Options of the functions that read config. */
export interface ConfigEnvOptions {
  /** Environment for `${VAR}` in config files and for the encryption key. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads a config file and validates it the way `cutover validate` does.
 * @throws ConfigError `CUTOVER_CONFIG_NOT_FOUND` when the file cannot be read, `CUTOVER_CONFIG_INVALID`
 * listing every problem with its path (also in `issues`).
 */
export function loadConfig(file: string, options: ConfigEnvOptions = {}): CutoverConfig {
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

/** Options of {@link startSidecar}. */
export interface StartSidecarOptions extends ConfigEnvOptions {
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

/** Options of {@link buildReportForConfig}. */
export interface BuildReportForConfigOptions extends ConfigEnvOptions {
  /** Only these flows (by name). Default every flow of the config. */
  flows?: readonly string[];
  /** Leave out parity records decided before this time. */
  since?: Date;
  /** The report's `generatedAt`. Default now. */
  now?: Date;
  /** Where skipped or unreadable records are logged. Default: silent. */
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
  // Verified like every other reader: with a trust configured, forged flip and parity records are skipped.
  const bus = signedBus(await openBus(parsed.bus, { logger }), { ...loadIdentity(parsed), logger });
  try {
    const configModes = new Map(flows.map((f) => [f.name, f.mode]));
    const flips = await readFlips(bus, { policy: flipPolicy(parsed.trust), configModes });
    const modes = currentModes(flips, configModes);
    return await buildReport(parityRecordsFromBus(bus), {
      flows: reportFlowsFromConfig(flows, modes, flips),
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
