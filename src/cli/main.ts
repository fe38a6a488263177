import { parseArgs } from 'node:util';
import { cutoverConfigSchema } from '../config/schema.js';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, CutoverError, ErrorCodes, isCutoverError } from '../errors.js';

/** Exit codes the CLI promises: scripts rely on them. */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE_OR_CONFIG: 2 } as const;

type Out = { out: (s: string) => void; err: (s: string) => void };
const stdio: Out = { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };

const USAGE = `usage: cutover <command> [options]

commands:
  validate --config FILE     check a config file; prints OK or every error with its path
`;

/** Runs one CLI invocation and returns its exit code (never calls process.exit itself). */
export async function runCli(argv: string[], io: Out = stdio): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate':
        return validate(rest, io);
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

function validate(args: string[], io: Out): number {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  if (!values.config) throw new CutoverError(ErrorCodes.USAGE, 'validate needs --config FILE');
  const config = loadConfigFile(values.config, cutoverConfigSchema);
  io.out(`OK: ${values.config} (agent ${config.agent}, bus ${config.bus.kind}, ${config.flows.length} flow${config.flows.length === 1 ? '' : 's'})`);
  return ExitCode.OK;
}

function report(err: unknown, io: Out): number {
  if (err instanceof ConfigError) {
    io.err(`${err.code}: ${err.message}`);
    return ExitCode.USAGE_OR_CONFIG;
  }
  if (isCutoverError(err)) {
    io.err(`${err.code}: ${err.message}`);
    return err.code === ErrorCodes.USAGE ? ExitCode.USAGE_OR_CONFIG : ExitCode.FAILURE;
  }
  if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    io.err(`${ErrorCodes.USAGE}: ${err.message}`);
    return ExitCode.USAGE_OR_CONFIG;
  }
  io.err(`${ErrorCodes.INTERNAL}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return ExitCode.FAILURE;
}
