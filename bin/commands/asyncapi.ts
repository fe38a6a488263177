import { existsSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { asyncApiDocument } from '../../src/discovery/asyncapi.js';
import { discoveryFile, readDiscoverySummary } from '../../proxy/discovery.js';
import { ExitCode, loadConfig, parseCommandArgs, usageError, type CliIo, type CommandDeps } from '../io.js';

export const ASYNCAPI_USAGE = `usage: cutover asyncapi --config FILE [--summary FILE]... [--out FILE]

  writes an AsyncAPI 3.0 document of the configured flows: a channel per topic, send and receive
  operations, the reply on the call's replyto correlated by correlationid, CloudEvents payloads. Payload
  schemas come from observed calls: <dataDir>/discovery/<agent>.json when it exists, or each --summary.
  YAML, or JSON when --out ends in .json; stdout without --out`;

/** `cutover asyncapi`: the contract of the configured flows. */
export async function asyncapiCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    { config: { type: 'string', short: 'c' }, summary: { type: 'string', multiple: true }, out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    ASYNCAPI_USAGE,
  );
  if (values.help) {
    io.out(ASYNCAPI_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('asyncapi needs --config FILE', ASYNCAPI_USAGE);
  const config = loadConfig(values.config, deps);
  const own = discoveryFile(config.dataDir, config.agent);
  const files = values.summary?.length ? values.summary : existsSync(own) ? [own] : [];
  const doc = asyncApiDocument({ agent: config.agent, flows: config.flows, summaries: files.map(readDiscoverySummary) });
  const text = values.out?.endsWith('.json') ? JSON.stringify(doc, null, 2) + '\n' : stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
  if (!values.out) {
    io.out(text.trimEnd());
    return ExitCode.OK;
  }
  writeFileSync(values.out, text);
  io.out(`wrote ${values.out} (AsyncAPI 3.0, ${config.flows.length} flow${config.flows.length === 1 ? '' : 's'}${files.length ? `, payloads from ${files.join(', ')}` : ', no observed payloads'})`);
  return ExitCode.OK;
}
