import { ExitCode, loadConfig, parseCommandArgs, usageError, type CliIo, type CommandDeps } from '../io.js';

export const VALIDATE_USAGE = `usage: cutover validate --config FILE

  prints OK, or every error with its path (flows[1].match.path: ...); exit 2 on error`;

/** `cutover validate`: OK with a one-line summary, or a CUTOVER_CONFIG_* error listing every problem. */
export async function validateCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, VALIDATE_USAGE);
  if (values.help) {
    io.out(VALIDATE_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('validate needs --config FILE', VALIDATE_USAGE);
  const config = loadConfig(values.config, deps);
  io.out(`OK: ${values.config} (agent ${config.agent}, bus ${config.bus.kind}, ${config.flows.length} flow${config.flows.length === 1 ? '' : 's'})`);
  return ExitCode.OK;
}
