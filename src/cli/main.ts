import { parseArgs } from 'node:util';
import { cutoverConfigSchema } from '../config/schema.js';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, CutoverError, ErrorCodes, isCutoverError } from '../errors.js';
import { createLogger } from '../logger.js';
import { createRegistry } from '../metrics.js';
import { sidecarConfigSchema } from '../../proxy/config.js';

/** Exit codes the CLI promises: scripts rely on them. */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE_OR_CONFIG: 2 } as const;

type Out = { out: (s: string) => void; err: (s: string) => void };
const stdio: Out = { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };

const USAGE = `usage: cutover <command> [options]

commands:
  validate --config FILE     check a config file; prints OK or every error with its path
  sidecar --config FILE      run the sidecar proxy (forward + dual-write) until SIGTERM/SIGINT
  shadow --config FILE       run the shadow side (delivery consumers and comparator) on its own
  report --config FILE       readiness report per flow (exit 0 READY, 1 NOT_READY, 3 INSUFFICIENT_DATA)
  flip FLOW --to MODE --config FILE [--reason TEXT] [--force]
                             move a flow to direct, shadow, canary:<1-99> or bus (gated on READY towards
                             the bus; exit 1 when refused)
  status --config FILE       every flow: mode, verdict, samples, parity, key figures
  history FLOW --config FILE the flow's flips: when, from -> to, who, reason, forced
  schema                     print the JSON Schema of the config file (for editors)

run cutover <command> --help for a command's options
`;

/** Runs one CLI invocation and returns its exit code (never calls process.exit itself). */
export async function runCli(argv: string[], io: Out = stdio): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate':
        return validate(rest, io);
      case 'sidecar':
        return await sidecar(rest, io);
      case 'shadow': {
        const { shadowCommand } = await import('../../shadow/cli.js');
        return await shadowCommand(rest, io);
      }
      case 'report':
        return await reportWithFlipLog(rest, io);
      case 'flip': {
        const { flipCommand } = await import('../flips/cli.js');
        return await flipCommand(rest, io);
      }
      case 'status': {
        const { statusCommand } = await import('../flips/cli.js');
        return await statusCommand(rest, io);
      }
      case 'history': {
        const { historyCommand } = await import('../flips/cli.js');
        return await historyCommand(rest, io);
      }
      case 'schema': {
        if (rest.length > 0) throw new CutoverError(ErrorCodes.USAGE, 'usage: cutover schema (takes no options)');
        const { configJsonSchema } = await import('../config/reference.js');
        io.out(JSON.stringify(configJsonSchema(), null, 2));
        return ExitCode.OK;
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.out(USAGE);
        return command === undefined ? ExitCode.USAGE_OR_CONFIG : ExitCode.OK;
      default:
        throw new CutoverError(ErrorCodes.USAGE, `unknown command ${JSON.stringify(command)}\n${USAGE}`);
    }
  } catch (err) {
    return report(err, io);
  }
}

const VALIDATE_USAGE = `usage: cutover validate --config FILE

  prints OK, or every error with its path (flows[1].match.path: ...); exit 2 on error`;

const SIDECAR_USAGE = `usage: cutover sidecar --config FILE

  forwards every request to the upstream and dual-writes the configured flows; the admin API on admin.listen;
  SIGTERM or SIGINT drains in-flight requests and flushes queue and spool before exit`;

function validate(args: string[], io: Out): number {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    io.out(VALIDATE_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw new CutoverError(ErrorCodes.USAGE, `validate needs --config FILE\n${VALIDATE_USAGE}`);
  const config = loadConfigFile(values.config, cutoverConfigSchema);
  io.out(`OK: ${values.config} (agent ${config.agent}, bus ${config.bus.kind}, ${config.flows.length} flow${config.flows.length === 1 ? '' : 's'})`);
  return ExitCode.OK;
}

/**
 * Runs the sidecar until SIGTERM or SIGINT, then drains: in-flight requests finish, the publish queue and
 * spool are sent (what the bus cannot take in time stays in the spool for the next start). A second
 * signal during the drain gets Node's default behaviour and ends the process at once.
 */
async function sidecar(args: string[], io: Out): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    io.out(SIDECAR_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw new CutoverError(ErrorCodes.USAGE, `sidecar needs --config FILE\n${SIDECAR_USAGE}`);
  // Every config error, with its path, before anything listens.
  const config = loadConfigFile(values.config, sidecarConfigSchema);
  const logger = createLogger({ level: config.log.level });
  // Loaded here so that other commands do not pay for the data plane's modules.
  const { startSidecar } = await import('../../proxy/sidecar.js');
  const handle = await startSidecar(config, { logger, registry: createRegistry({ defaultMetrics: true }), env: process.env });
  io.out(`cutover sidecar: agent ${config.agent} on ${handle.data.url} -> ${config.upstream ?? `${config.routes.length} routes`}, admin ${handle.admin.url}, bus ${config.bus.kind}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(s);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  logger.info({ signal }, 'signal received; draining');
  await handle.close();
  io.out(`cutover sidecar: stopped (${signal}); ${handle.publisher.spoolDepth} events left in the spool`);
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return ExitCode.OK;
}

/**
 * `cutover report` with each flow's current mode read from the flip log: the config loader is wrapped so
 * the mode lookup can open the same bus (once, lazily) before the report reads the parity records.
 */
async function reportWithFlipLog(args: string[], io: Out): Promise<number> {
  const { reportCommand, loadReportConfig } = await import('../../reports/cli.js');
  const { modesFromLog } = await import('../flips/control.js');
  const { createBus } = await import('../bus/index.js');
  let loaded: ReturnType<typeof loadReportConfig> | undefined;
  let modes: Promise<Map<string, string>> | undefined;
  const readModes = async (): Promise<Map<string, string>> => {
    const { config } = loaded!;
    const logger = createLogger({ level: 'warn' });
    const bus = await createBus(config.bus, { logger });
    try {
      await bus.start();
      return await modesFromLog(bus, config.flows);
    } finally {
      await bus.close();
    }
  };
  return reportCommand(args, { ...io, isTTY: process.stdout.isTTY }, {
    loadConfig: (file) => (loaded = loadReportConfig(file)),
    modeOf: async (flow) => (await (modes ??= readModes())).get(flow.name) ?? flow.mode,
  });
}

function report(err: unknown, io: Out): number {
  if (err instanceof ConfigError) {
    io.err(`${err.code}: ${err.message}`);
    return ExitCode.USAGE_OR_CONFIG;
  }
  if (isCutoverError(err)) {
    io.err(`${err.code}: ${err.message}`);
    // An unknown flow name is a usage mistake: exit 2, so scripts tell it from a refused flip (1).
    return err.code === ErrorCodes.USAGE || err.code === ErrorCodes.FLOW_UNKNOWN ? ExitCode.USAGE_OR_CONFIG : ExitCode.FAILURE;
  }
  if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    io.err(`${ErrorCodes.USAGE}: ${err.message}`);
    return ExitCode.USAGE_OR_CONFIG;
  }
  io.err(`${ErrorCodes.INTERNAL}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return ExitCode.FAILURE;
}
