import type { SidecarHandle } from '../../proxy/sidecar.js';
import { configFlowSchema } from '../../src/config/schema.js';
import type { Logger } from '../../src/logger.js';
import { start as startCustomerService, startFraudDesk, startStockTools } from '../shop/customer-service.js';
import type { AgentHandle } from '../shop/http.js';
import type { RpcAgent } from '../shop/rpc-agents.js';
import type { ConfigFlow, ConfigFlowInput } from './config.js';

/**
 * The JSON-RPC part of the demo: customer service asks the fraud desk (A2A) and inventory's stock tools
 * (MCP), each behind its own sidecar, with one flow per JSON-RPC method: `SendMessage` and the streamed
 * `SendStreamingMessage` shadowed, `GetTask` left direct, `tools/call lookup_stock` shadowed. A second
 * fraud desk and a second MCP server are the shadow instances the replay consumers deliver to.
 */

/** An agent speaking JSON-RPC, its shadow instance, and its flows (shadow targets filled in). */
export interface RpcAgentSide {
  agent: 'fraud-desk' | 'inventory-mcp';
  direct: RpcAgent;
  shadow: RpcAgent;
  flows: ConfigFlow[];
  inputs: ConfigFlowInput[];
}

export interface RpcSide {
  agents: RpcAgentSide[];
  /** Every JSON-RPC flow, in report order. */
  flows: ConfigFlow[];
  inputs: ConfigFlowInput[];
  close(): Promise<void>;
}

/** Starts the JSON-RPC agents and their shadow instances (before the shadow side, which needs their URLs). */
export async function startRpcAgents(): Promise<RpcSide> {
  const started: RpcAgent[] = [];
  const keep = async (p: Promise<RpcAgent>): Promise<RpcAgent> => {
    const a = await p;
    started.push(a);
    return a;
  };
  const close = async (): Promise<void> => {
    for (const a of started.reverse()) await a.close();
  };
  try {
    const desk = { direct: await keep(startFraudDesk()), shadow: await keep(startFraudDesk()) };
    const tools = { direct: await keep(startStockTools()), shadow: await keep(startStockTools()) };
    const rpcFlow = (agent: string, action: string, target: string, input: Omit<ConfigFlowInput, 'name' | 'topic'>): ConfigFlowInput => ({
      name: `${agent}.${action}`,
      topic: `commands.agent.${agent}.${action}`,
      ...input,
      ...(input.mode === 'shadow' ? { shadow: { target, timeout: '5s' } } : {}),
    });
    const a2a = (action: string, rpc: string, mode: 'shadow' | 'direct', key: string): ConfigFlowInput =>
      rpcFlow('fraud-desk', action, desk.shadow.url, { match: { method: 'POST', path: '/a2a', rpc }, key, mode });
    const sides: Array<Omit<RpcAgentSide, 'flows'>> = [
      {
        agent: 'fraud-desk',
        ...desk,
        inputs: [
          a2a('send', 'SendMessage', 'shadow', 'rpc.params.message.contextId'),
          // Reads the task the direct agent holds: its shadow instance never saw it, so this one stays direct.
          a2a('get-task', 'GetTask', 'direct', 'rpc.params.id'),
          a2a('stream', 'SendStreamingMessage', 'shadow', 'rpc.params.message.contextId'),
        ],
      },
      {
        agent: 'inventory-mcp',
        ...tools,
        inputs: [rpcFlow('inventory-mcp', 'lookup-stock', tools.shadow.url, { match: { method: 'POST', path: '/mcp', rpc: 'tools/call', tool: 'lookup_stock' }, key: 'rpc.params.arguments.sku', mode: 'shadow' })],
      },
    ];
    const agents = sides.map((s) => ({ ...s, flows: s.inputs.map((i) => configFlowSchema.parse(i)) }));
    return { agents, flows: agents.flatMap((a) => a.flows), inputs: agents.flatMap((a) => a.inputs), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Puts a sidecar in front of each JSON-RPC agent and starts customer service, which calls them through those. */
export async function frontRpcAgents(
  side: RpcSide,
  sidecar: (agent: string, upstream: string, flows: ConfigFlow[]) => Promise<SidecarHandle>,
  logger: Logger,
): Promise<{ customerService: AgentHandle; sidecars: Map<string, SidecarHandle> }> {
  const sidecars = new Map<string, SidecarHandle>();
  for (const a of side.agents) sidecars.set(a.agent, await sidecar(a.agent, a.direct.url, a.flows));
  const customerService = await startCustomerService({
    logger,
    deps: { fraudDesk: `${sidecars.get('fraud-desk')!.data.url}/a2a`, stockTools: `${sidecars.get('inventory-mcp')!.data.url}/mcp` },
  });
  return { customerService, sidecars };
}

/** The topology lines of the JSON-RPC agents, after the shop's. */
export function printRpcTopology(out: (l: string) => void, side: RpcSide, sidecars: ReadonlyMap<string, SidecarHandle>, customerService: AgentHandle): void {
  const port = (url: string): string => `:${new URL(url).port}`;
  out('Customer service and the agents it calls over JSON-RPC, one flow per method:');
  for (const a of side.agents) {
    for (const f of a.flows) {
      const how = f.mode === 'direct' ? 'stays direct' : `delivery to a shadow ${a.agent} instance ${port(a.shadow.url)} replies`;
      const rpc = [f.match.rpc, f.match.tool].flat().filter(Boolean).join(' ');
      out(`  ${a.agent.padEnd(16)} ${port(a.direct.url).padEnd(7)} sidecar ${port(sidecars.get(a.agent)!.data.url).padEnd(7)} ${f.name.padEnd(26)} ${`${f.match.method} ${f.match.path} ${rpc}`.padEnd(33)} key ${f.key ?? '-'}; ${how}`);
    }
  }
  out(`  ${'customer-service'.padEnd(16)} ${port(customerService.url).padEnd(7)} asks the fraud desk (A2A) and inventory's stock tools (MCP) through their sidecars`);
  out('');
}
