import { configJsonSchema } from '../../src/config/reference.js';
import { ExitCode, usageError, type CliIo } from '../io.js';

const SCHEMA_USAGE = 'usage: cutover schema (takes no options)';

/** `cutover schema`: the config file's JSON Schema, for editors. */
export async function schemaCommand(argv: string[], io: CliIo): Promise<number> {
  if (argv.length > 0) throw usageError(`schema takes no options, got ${argv.join(' ')}`, SCHEMA_USAGE);
  io.out(JSON.stringify(configJsonSchema(), null, 2));
  return ExitCode.OK;
}
