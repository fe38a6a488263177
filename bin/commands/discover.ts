import { readFileSync, writeFileSync } from 'node:fs';
import { isSeq, parseDocument, YAMLSeq } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { discoverFlows, type DiscoveredFlow } from '../../src/discovery/propose.js';
import { discoveryTable } from '../../src/discovery/table.js';
import { discoveryFile, readDiscoverySummary } from '../../proxy/discovery.js';
import { ExitCode, loadConfig, parseCommandArgs, usageError, type CliIo, type CommandDeps } from '../io.js';

export const DISCOVER_USAGE = `usage: cutover discover --config FILE [--summary FILE]... [--out FILE]

  prints the candidate flows the sidecar observed (observe: in its config): calls, errors, latency, safe to
  repeat, partition key, and a suggested migration order with the reason for each. --summary reads these
  summaries instead of <dataDir>/discovery/<agent>.json (one per sidecar). --out writes the config file
  with the proposed flows appended under flows: (it passes cutover validate)`;

/**
 * The config file's text with the proposed flows appended to `flows:` (comments and layout kept), each
 * preceded by its place in the migration order and why.
 */
export function withProposedFlows(text: string, rows: readonly DiscoveredFlow[]): string {
  const doc = parseDocument(text);
  const proposed = rows.filter((r) => r.proposed).sort((a, b) => a.order! - b.order!);
  let flows = doc.get('flows');
  if (!isSeq(flows)) {
    flows = new YAMLSeq();
    doc.set('flows', flows);
  }
  for (const r of proposed) {
    const node = doc.createNode(r.proposed);
    const rpc = r.rpcMethods ? ` JSON-RPC methods: ${r.rpcMethods.join(', ')}.` : '';
    node.commentBefore = ` discovered: migrate #${r.order}: ${r.reason}.${rpc}`;
    (flows as YAMLSeq).items.push(node);
  }
  return doc.toString();
}

/** `cutover discover`: the discovery table, and with --out the config with the proposed flows. */
export async function discoverCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    { config: { type: 'string', short: 'c' }, summary: { type: 'string', multiple: true }, out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    DISCOVER_USAGE,
  );
  if (values.help) {
    io.out(DISCOVER_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('discover needs --config FILE', DISCOVER_USAGE);
  const config = loadConfig(values.config, deps);
  const files = values.summary?.length ? values.summary : [discoveryFile(config.dataDir, config.agent)];
  const rows = discoverFlows(files.map(readDiscoverySummary), { names: config.flows.map((f) => f.name) });
  io.out(discoveryTable(rows));
  if (values.out) {
    const text = withProposedFlows(readFileSync(values.config, 'utf8'), rows);
    // What is written must load: checked here rather than left for the next command to find.
    parseConfigText(text, cutoverConfigSchema, { env: deps.env ?? process.env, source: values.out });
    writeFileSync(values.out, text);
    io.out(`wrote ${values.out} (${rows.filter((r) => r.proposed).length} proposed flows appended under flows:)`);
  }
  return ExitCode.OK;
}
