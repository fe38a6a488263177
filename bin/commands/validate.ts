import { loadConfigFile } from '../../src/config/load.js';
import { sidecarConfigSchema } from '../../src/config/schema.js';
import { ExitCode, loadConfig, parseCommandArgs, usageError, type CliIo, type CommandDeps } from '../io.js';

export const VALIDATE_USAGE = `usage: cutover validate --config FILE

  prints OK, or every error with its path (flows[1].match.path: ...); exit 2 on error. A sidecar's config
  (one with upstream or routes) is also held to the sidecar's own rules (deliver:, acl: grants of its flows)`;

/** `cutover validate`: OK with a one-line summary, or a CUTOVER_CONFIG_* error listing every problem. */
export async function validateCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, VALIDATE_USAGE);
  if (values.help) {
    io.out(VALIDATE_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('validate needs --config FILE', VALIDATE_USAGE);
  const config = loadConfig(values.config, deps);
  // The same file serves the shadow side and the CLI, which need no upstream; a sidecar's checks apply
  // when the file is a sidecar's, so validate fails where `cutover sidecar` would.
  if (config.upstream || config.routes.length > 0) loadConfigFile(values.config, sidecarConfigSchema, { env: deps.env ?? process.env });
  io.out(`OK: ${values.config} (agent ${config.agent}, bus ${config.bus.kind}, ${config.flows.length} flow${config.flows.length === 1 ? '' : 's'})`);
  return ExitCode.OK;
}
