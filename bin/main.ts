import { ConfigError, CutoverError, ErrorCodes, isCutoverError } from '../src/errors.js';
import { ExitCode, stdio, type CliIo, type CommandDeps } from './io.js';

export { ExitCode } from './io.js';

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
  discover --config FILE [--out FILE]
                             candidate flows the sidecar observed (observe:), a suggested migration order
                             and, with --out, the config with the proposed flows appended
  asyncapi --config FILE [--out FILE]
                             AsyncAPI 3.0 document of the configured flows, payloads inferred from
                             observed calls
  schema                     print the JSON Schema of the config file (for editors)
  keygen --agent NAME --key-id ID [--out FILE]
                             make an Ed25519 signing key for agent identity (docs/security.md)
  acl --config FILE --bus kafka|redis|rabbitmq [--apply]
                             print (or apply) the broker's access rules for the acl: section
  saga list|show ID|run --config FILE
                             the config's sagas with their status; one saga's history; an orchestrator
                             replica that drives them until SIGTERM/SIGINT

run cutover <command> --help for a command's options
`;

type Command = (argv: string[], io: CliIo, deps?: CommandDeps) => Promise<number>;

/** Each command's module is loaded on use, so `cutover validate` does not pay for the data plane's. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  validate: async () => (await import('./commands/validate.js')).validateCommand,
  sidecar: async () => (await import('./commands/sidecar.js')).sidecarCommand,
  shadow: async () => (await import('./commands/shadow.js')).shadowCommand,
  report: async () => (await import('./commands/report.js')).reportCommand,
  flip: async () => (await import('./commands/flip.js')).flipCommand,
  status: async () => (await import('./commands/flip.js')).statusCommand,
  history: async () => (await import('./commands/flip.js')).historyCommand,
  discover: async () => (await import('./commands/discover.js')).discoverCommand,
  asyncapi: async () => (await import('./commands/asyncapi.js')).asyncapiCommand,
  schema: async () => (await import('./commands/schema.js')).schemaCommand,
  keygen: async () => (await import('./commands/keygen.js')).keygenCommand,
  acl: async () => (await import('./commands/acl.js')).aclCommand,
  saga: async () => (await import('./commands/saga.js')).sagaCommand,
};

/** Runs one CLI invocation and returns its exit code (never calls process.exit itself). */
export async function runCli(argv: string[], io: CliIo = stdio, deps: CommandDeps = {}): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      io.out(USAGE);
      return command === undefined ? ExitCode.USAGE_OR_CONFIG : ExitCode.OK;
    }
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!load) throw new CutoverError(ErrorCodes.USAGE, `unknown command ${JSON.stringify(command)}\n${USAGE}`);
    return await (await load())(rest, io, deps);
  } catch (err) {
    return failed(err, io);
  }
}

/** Prints `CODE: message` and maps the error to the exit code scripts rely on. */
function failed(err: unknown, io: CliIo): number {
  if (err instanceof ConfigError) {
    io.err(`${err.code}: ${err.message}`);
    return ExitCode.USAGE_OR_CONFIG;
  }
  if (isCutoverError(err)) {
    io.err(`${err.code}: ${err.message}`);
    // An unknown flow name is a usage mistake, and a key that may not flip a config one: exit 2, so
    // scripts tell them from a refused flip (1).
    return err.code === ErrorCodes.USAGE || err.code === ErrorCodes.FLOW_UNKNOWN || err.code === ErrorCodes.SAGA_UNKNOWN || err.code === ErrorCodes.FLIP_NOT_OPERATOR ? ExitCode.USAGE_OR_CONFIG : ExitCode.FAILURE;
  }
  io.err(`${ErrorCodes.INTERNAL}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return ExitCode.FAILURE;
}
