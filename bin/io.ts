import { parseArgs, type ParseArgsConfig } from 'node:util';
import { openBus } from '../src/bus/index.js';
import { signedBus } from '../src/bus/signed-bus.js';
import { loadIdentity } from '../src/events/signature.js';
import type { BusConfig } from '../src/config/bus.js';
import type { Bus } from '../src/bus/types.js';
import { loadConfigFile } from '../src/config/load.js';
import { cutoverConfigSchema, type CutoverConfig } from '../src/config/schema.js';
import { CutoverError, ErrorCodes } from '../src/errors.js';
import { createLogger, type Logger } from '../src/logger.js';

/** Exit codes every command shares: scripts rely on them. `cutover report` adds 3 (INSUFFICIENT_DATA). */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE_OR_CONFIG: 2 } as const;

/**
 * Where a command writes and what it may be handed instead of the process's own (tests). Commands
 * return their exit code and throw CutoverErrors; the dispatcher prints `CODE: message` and maps the
 * error to an exit code, so every command reports failures the same way.
 */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Whether `out` is a terminal: colour only then. */
  isTTY?: boolean;
  /** Stops a long-running command; default SIGINT / SIGTERM. */
  signal?: AbortSignal;
}

/** What a command may be given instead of the real thing (tests). */
export interface CommandDeps {
  /** Opens and starts the config's bus; the command closes it. Default createBus + start. */
  openBus?: (config: BusConfig, logger: Logger) => Promise<Bus>;
  now?: () => Date;
  logger?: Logger;
  /** `${VAR}` values and NO_COLOR. Default process.env (this is the CLI edge). */
  env?: NodeJS.ProcessEnv;
}

export const stdio: CliIo = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
  isTTY: process.stdout.isTTY,
};

export function usageError(message: string, usage: string): CutoverError {
  return new CutoverError(ErrorCodes.USAGE, `${message}\n${usage}`);
}

/** node:util parseArgs (strict) whose mistakes are CUTOVER_USAGE errors carrying the command's usage. */
export function parseCommandArgs<const O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
  usage: string,
  allowPositionals = false,
): { values: ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: boolean }>>['values']; positionals: string[] } {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (err) {
    throw usageError((err as Error).message, usage);
  }
}

/** The config file validated by the one schema every command uses. */
export function loadConfig(file: string, deps: CommandDeps = {}): CutoverConfig {
  return loadConfigFile(file, cutoverConfigSchema, { env: deps.env ?? process.env });
}

/**
 * Runs `fn` with the config's bus open, then closes it. A logger made here writes asynchronously: it is
 * flushed so warnings are not lost at exit.
 */
export async function withBus<T>(config: CutoverConfig, deps: CommandDeps, fn: (bus: Bus, logger: Logger) => Promise<T>, level = config.log.level): Promise<T> {
  const logger = deps.logger ?? createLogger({ level });
  const identity = loadIdentity(config);
  const bus = signedBus(await (deps.openBus ?? ((c: BusConfig, l: Logger) => openBus(c, { logger: l })))(config.bus, logger), { ...identity, logger });
  try {
    return await fn(bus, logger);
  } finally {
    await bus.close();
    if (!deps.logger) await new Promise<void>((resolve) => logger.flush(() => resolve()));
  }
}

/** Resolves on `signal` or, without one, on the first SIGINT / SIGTERM; returns what stopped it. */
export function untilStopped(signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve) => {
    if (signal) {
      if (signal.aborted) return resolve('abort');
      signal.addEventListener('abort', () => resolve('abort'), { once: true });
      return;
    }
    const stop = (s: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(s);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
