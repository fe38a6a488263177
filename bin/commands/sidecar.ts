import { loadConfigFile } from '../../src/config/load.js';
import { sidecarConfigSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/logger.js';
import { createRegistry } from '../../src/metrics.js';
import { ExitCode, parseCommandArgs, untilStopped, usageError, type CliIo, type CommandDeps } from '../io.js';

export const SIDECAR_USAGE = `usage: cutover sidecar --config FILE

  forwards every request to the upstream and dual-writes the configured flows; the admin API on admin.listen;
  SIGTERM or SIGINT drains in-flight requests and flushes queue and spool before exit`;

/**
 * Runs the sidecar until SIGTERM or SIGINT, then drains: in-flight requests finish, the publish queue and
 * spool are sent (what the bus cannot take in time stays in the spool for the next start). A second
 * signal during the drain gets Node's default behaviour and ends the process at once.
 */
export async function sidecarCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, SIDECAR_USAGE);
  if (values.help) {
    io.out(SIDECAR_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('sidecar needs --config FILE', SIDECAR_USAGE);
  // Every config error, with its path, before anything listens.
  const config = loadConfigFile(values.config, sidecarConfigSchema, { env: deps.env ?? process.env });
  const logger = deps.logger ?? createLogger({ level: config.log.level });
  // Loaded here so that other commands do not pay for the data plane's modules.
  const { startSidecar } = await import('../../proxy/sidecar.js');
  const handle = await startSidecar(config, { logger, registry: createRegistry({ defaultMetrics: true }), env: deps.env ?? process.env });
  io.out(`cutover sidecar: agent ${config.agent} on ${handle.data.url} -> ${config.upstream ?? `${config.routes.length} routes`}, admin ${handle.admin.url}, bus ${config.bus.kind}`);
  const signal = await untilStopped(io.signal);
  logger.info({ signal }, 'signal received; draining');
  await handle.close();
  io.out(`cutover sidecar: stopped (${signal}); ${handle.publisher.spoolDepth} events left in the spool`);
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return ExitCode.OK;
}
