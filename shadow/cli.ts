import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createBus } from '../src/bus/index.js';
import { busConfigSchema } from '../src/bus/options.js';
import { loadConfigFile } from '../src/config/load.js';
import { ConfigError, ErrorCodes, isCutoverError } from '../src/errors.js';
import { flowObjectSchema } from '../src/flows/schema.js';
import { createLogger, type Logger } from '../src/logger.js';
import { createRegistry } from '../src/metrics.js';
import { flowShadowKeys, shadowConfigSchema } from './options.js';
import { ShadowRuntime } from './runtime.js';

/**
 * What `cutover shadow` reads from the config file: the bus, the flows with their shadow / compare /
 * noise keys, and the top-level `shadow:`. Keys other parts own pass through untouched (they are checked by
 * the full config schema); the keys read here are validated strictly.
 */
export const shadowCliConfigSchema = z
  .object({
    bus: busConfigSchema.default({ kind: 'embedded' }),
    dataDir: z.string().default('.data'),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .passthrough()
      .default({}),
    shadow: shadowConfigSchema.default({}),
    /** The sidecar's key: where direct observations (and shadow replies) go. */
    observationsTopic: z.string().optional(),
    flows: z.array(flowObjectSchema.extend(flowShadowKeys).passthrough()).default([]),
  })
  .passthrough();

export type ShadowCliConfig = z.infer<typeof shadowCliConfigSchema>;

export interface ShadowIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Stops the command (tests); default SIGINT / SIGTERM. */
  signal?: AbortSignal;
  /** Logger to use instead of one built from the config's `log.level` (tests). */
  logger?: Logger;
}

const USAGE = `usage: cutover shadow --config FILE [--only delivery|comparator]

Runs the shadow side on its own: a delivery consumer per flow with a shadow.target (consumer group
cutover.shadow.<flow>) and the comparator for the config's flows (group cutover.comparator.<flow> each).
Start several to scale out.`;

/**
 * `cutover shadow --config FILE`: runs delivery consumers and comparator until SIGINT/SIGTERM (or
 * `io.signal`), then drains and exits. Returns the exit code: 0, 1 on a runtime failure, 2 on usage or config
 * errors (every config problem printed with its path).
 */
export async function shadowCommand(argv: string[], io: ShadowIo): Promise<number> {
  let values: { config?: string; only?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, only: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    io.err(`${ErrorCodes.USAGE}: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (!values.config) {
    io.err(`${ErrorCodes.USAGE}: shadow needs --config FILE\n${USAGE}`);
    return 2;
  }
  if (values.only !== undefined && values.only !== 'delivery' && values.only !== 'comparator') {
    io.err(`${ErrorCodes.USAGE}: --only takes delivery or comparator, got ${JSON.stringify(values.only)}`);
    return 2;
  }

  let runtime: ShadowRuntime | undefined;
  let bus: Awaited<ReturnType<typeof createBus>> | undefined;
  try {
    const config = loadConfigFile(values.config, shadowCliConfigSchema);
    const logger = io.logger ?? createLogger({ level: config.log.level });
    bus = await createBus(config.bus, { logger });
    await bus.start();
    runtime = new ShadowRuntime({
      bus,
      busConfig: config.bus,
      flows: config.flows,
      shadow: config.shadow,
      dataDir: config.dataDir,
      logger,
      registry: createRegistry(),
      delivery: values.only !== 'comparator',
      comparator: values.only === 'delivery' ? false : config.shadow.comparator,
      ...(config.observationsTopic ? { observationsTopic: config.observationsTopic } : {}),
    });
    await runtime.start();
    const delivering = runtime.consumers.map((c) => c.group);
    io.out(`shadow: bus ${config.bus.kind}; delivery ${delivering.length ? delivering.join(', ') : 'none'}; comparator ${runtime.comparator ? 'on' : 'off'}`);
    await untilStopped(io.signal);
    io.out('shadow: stopping');
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || (isCutoverError(err) && err.code === ErrorCodes.USAGE)) {
      io.err(`${err.code}: ${err.message}`);
      return 2;
    }
    io.err(isCutoverError(err) ? `${err.code}: ${err.message}` : `${ErrorCodes.INTERNAL}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await runtime?.close().catch((err) => io.err(`closing the shadow runtime failed: ${(err as Error).message}`));
    await bus?.close().catch(() => undefined);
  }
}

function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal) {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
