import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { createBus } from '../../src/bus/index.js';
import type { Bus } from '../../src/bus/types.js';
import type { CloudEvent } from '../../src/events/types.js';
import { createRegistry } from '../../src/metrics.js';
import { AgentBus, rpcFailure } from '../../src/sdk/index.js';
import { buildReport } from '../../reports/report.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { busTargets, type BusTargetEnv } from '../helpers/bus-targets.js';
import { a2aMessage, rpcBody, rpcPost, startA2aAgent, startMcpServer } from '../helpers/jsonrpc-agents.js';
import { collectParity } from '../helpers/parity.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * JSON-RPC agents (A2A, MCP) through a real sidecar on a real bus: one URL, flows per method, shadow
 * comparison with the generated ids ignored, bus mode answered with JSON-RPC responses by an SDK agent.
 */

const targets = busTargets('jsonrpc').filter((t) => t.kind === 'embedded' || t.kind === 'redis');

type Flows = NonNullable<SidecarConfigInput['flows']>;

describe.each(targets)('JSON-RPC flows through the sidecar on $kind', (target) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  async function setup(upstream: string, flows: Flows, extra: Partial<SidecarConfigInput> = {}): Promise<{ env: BusTargetEnv; sidecar: SidecarHandle; bus: Bus; records: ParityRecord[]; registry: ReturnType<typeof createRegistry> }> {
    const env = await target.setup(randomUUID().slice(0, 8));
    cleanups.push(() => env.cleanup());
    const registry = createRegistry();
    const sidecar = await startSidecar(
      { agent: 'travel', listen: '127.0.0.1:0', upstream, admin: { listen: '127.0.0.1:0', auth: false }, bus: env.config, dataDir: env.dir, shadow: { inProcess: true, window: '20s' }, flows, ...extra },
      { registry },
    );
    cleanups.push(() => sidecar.close());
    const bus = await createBus(env.config);
    await bus.start();
    cleanups.push(() => bus.close());
    const records = await collectParity(bus);
    return { env, sidecar, bus, records, registry };
  }

  it.skipIf(target.skip)(`two methods on one URL are two flows with their own modes, keys, events and verdicts${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const direct = await startA2aAgent();
    const shadowAgent = await startA2aAgent();
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const sendTopic = `commands.agent.t${id}.send`;
    const getTopic = `commands.agent.t${id}.get`;
    const flows: Flows = [
      { name: 'travel.send', match: { method: 'POST', path: '/a2a', rpc: 'SendMessage' }, topic: sendTopic, key: 'rpc.params.message.contextId', mode: 'shadow', shadow: { target: shadowAgent.url } },
      { name: 'travel.get', match: { method: 'POST', path: '/a2a', rpc: ['GetTask'] }, topic: getTopic, key: 'rpc.params.id', mode: 'bus', timeout: '5s', verify: true, safe: true },
      { name: 'travel.other', match: { method: 'POST', path: '/a2a' }, topic: `commands.agent.t${id}.other`, mode: 'direct' },
    ];
    const { env, sidecar, bus, records, registry } = await setup(direct.url, flows);

    // The bus-native side of GetTask: reads the same task store as the REST agent, answers A2A 1.0.
    const agents = await AgentBus.connect(env.config, { agent: 'travel', dataDir: env.dir });
    cleanups.push(() => agents.close());
    await agents.serveRpc(getTopic, {
      methods: { GetTask: (params) => direct.tasks.has((params as { id: string }).id) ? { task: direct.tasks.get((params as { id: string }).id) } : rpcFailure(-32001, 'Task not found') },
    });
    const events: CloudEvent[] = [];
    await bus.subscribe({ group: `test.events.${id}`, topics: [sendTopic], handler: async (d) => void events.push(d.event) });

    const endpoint = `${sidecar.data.url}/a2a`;
    // A2A 1.0 and 0.3 names of one operation land in one flow.
    const sent = await rpcPost(endpoint, rpcBody('SendMessage', a2aMessage('hello', { contextId: 'ctx-1' }), 'req-1'));
    expect(sent.status).toBe(200);
    const task = (sent.json as { result: { task: { id: string; artifacts: Array<{ parts: Array<{ text: string }> }> } } }).result.task;
    expect(task.artifacts[0]!.parts[0]!.text).toBe('HELLO');
    const sent03 = await rpcPost(endpoint, rpcBody('message/send', a2aMessage('again', { contextId: 'ctx-2' }), 2));
    expect(sent03.json).toMatchObject({ jsonrpc: '2.0', id: 2, result: { kind: 'task', status: { state: 'completed' } } });

    // GetTask in bus mode: answered by the SDK agent as a JSON-RPC response with the caller's id.
    const got = await rpcPost(endpoint, rpcBody('GetTask', { id: task.id }, 'req-get'));
    expect(got.status).toBe(200);
    expect(got.json).toEqual({ jsonrpc: '2.0', id: 'req-get', result: { task: JSON.parse(JSON.stringify(direct.tasks.get(task.id))) } });
    const missing = await rpcPost(endpoint, rpcBody('tasks/get', { id: 'nope' }, 77));
    expect(missing.json).toEqual({ jsonrpc: '2.0', id: 77, error: { code: -32001, message: 'Task not found' } });

    // A method no flow names, and a batch, go to the URL's plain flow, directly.
    const listed = await rpcPost(endpoint, rpcBody('ListTasks', {}, 5));
    expect(listed.json).toMatchObject({ id: 5, error: { code: -32601 } });
    const batch = await rpcPost(endpoint, [rpcBody('GetTask', { id: task.id }, 6)]);
    expect(batch.json).toMatchObject({ error: { code: -32600 } });
    const unparsed = await registry.getSingleMetric('cutover_sidecar_rpc_unparsed_total')!.get();
    expect(unparsed.values.map((v) => [v.labels.reason, v.value])).toEqual([['batch', 1]]);

    const counters = (name: string) => sidecar.flows.get(name)!.counters;
    expect(counters('travel.send')).toMatchObject({ requests: 2, events: 2 });
    expect(counters('travel.get')).toMatchObject({ requests: 2, busServed: 2 });
    expect(counters('travel.other')).toMatchObject({ requests: 2, events: 0 });
    expect(sidecar.flows.get('travel.send')!.mode).toBe('shadow');
    expect(sidecar.flows.get('travel.get')!.mode).toBe('bus');

    // The call events: keyed by the A2A context, JSON-RPC method and id as extension attributes.
    await waitFor(() => events.length >= 2, { timeoutMs: 20_000, what: 'the two call events' });
    const byKey = new Map(events.map((e) => [e.partitionkey, e]));
    expect(byKey.get('ctx-1')).toMatchObject({ rpcmethod: 'SendMessage', rpcid: 'req-1', cutoverflow: 'travel.send' });
    expect(byKey.get('ctx-2')).toMatchObject({ rpcmethod: 'message/send', rpcid: '2' });

    // Shadow: the replayed call generated other task, context, message and artifact ids and timestamps:
    // still a match. Bus mode with verify: the bus answer and the direct one pair as well.
    await waitFor(() => records.filter((r) => r.flow === 'travel.send').length >= 2 && records.some((r) => r.flow === 'travel.get'), { timeoutMs: 30_000, what: 'parity records of both flows' });
    for (const r of records.filter((r) => r.flow === 'travel.send')) expect(r).toMatchObject({ outcome: 'match' });
    expect(records.filter((r) => r.flow === 'travel.get').map((r) => r.outcome)).toContain('match');

    const report = await buildReport(records, { flows: [{ name: 'travel.send', mode: 'shadow' }, { name: 'travel.get', mode: 'bus' }] });
    const flowReport = (name: string) => report.flows.find((f) => f.flow === name)!;
    expect(flowReport('travel.send')).toMatchObject({ mode: 'shadow', samples: 2 });
    expect(flowReport('travel.get').mode).toBe('bus');
    expect(flowReport('travel.get').samples).toBeGreaterThanOrEqual(1);
  });

  it.skipIf(target.skip)(`an answer whose artifact differs is a mismatch naming the field, ids and timestamps aside${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const direct = await startA2aAgent();
    const shadowAgent = await startA2aAgent({ answer: (t) => `${t.toUpperCase()}!` });
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const flows: Flows = [{ name: 'travel.send', match: { method: 'POST', path: '/a2a', rpc: 'message/send' }, topic: `commands.agent.t${id}.send`, mode: 'shadow', shadow: { target: shadowAgent.url } }];
    const { sidecar, records } = await setup(direct.url, flows);

    const sent = await rpcPost(`${sidecar.data.url}/a2a`, rpcBody('SendMessage', a2aMessage('hello'), 1));
    expect(sent.status).toBe(200);
    await waitFor(() => records.length >= 1, { timeoutMs: 30_000, what: 'the parity record' });
    expect(records[0]).toMatchObject({ flow: 'travel.send', outcome: 'mismatch' });
    expect(records[0]!.diffs).toEqual([{ path: '/body/result/task/artifacts/0/parts/0/text', kind: 'changed', direct: 'HELLO', bus: 'HELLO!' }]);
  });

  it.skipIf(target.skip)(`bus mode answers JSON-RPC errors with the caller's id; MCP tools are flows of their own, header disagreement counted${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const mcp = await startMcpServer();
    const mcpShadow = await startMcpServer();
    cleanups.push(() => mcp.close(), () => mcpShadow.close());
    const reserveTopic = `commands.agent.t${id}.reserve`;
    const flows: Flows = [
      { name: 'stock.lookup', match: { method: 'POST', path: '/mcp', rpc: 'tools/call', tool: 'lookup_stock' }, topic: `commands.agent.t${id}.lookup`, mode: 'shadow', shadow: { target: mcpShadow.url } },
      { name: 'stock.reserve', match: { method: 'POST', path: '/mcp', rpc: 'tools/call', tool: 'reserve_stock' }, topic: reserveTopic, key: 'rpc.params.arguments.sku', mode: 'bus', timeout: '400ms' },
      { name: 'stock.notes', match: { method: 'POST', path: '/mcp', rpc: 'notifications/initialized' }, topic: `commands.agent.t${id}.notes`, mode: 'bus', kind: 'event' },
    ];
    const { sidecar, registry, records } = await setup(mcp.url, flows);
    const endpoint = `${sidecar.data.url}/mcp`;

    const lookup = await rpcPost(endpoint, rpcBody('tools/call', { name: 'lookup_stock', arguments: { sku: 'SKU-1' } }, 1), { 'mcp-method': 'tools/call', 'mcp-name': 'lookup_stock' });
    expect(lookup.json).toMatchObject({ id: 1, result: { structuredContent: { sku: 'SKU-1', available: 12 } } });
    // The headers say one tool, the body another: the body decides (it is what the server runs), and the
    // disagreement is counted; the request reaches the server exactly as sent.
    const lying = rpcBody('tools/call', { name: 'lookup_stock', arguments: { sku: 'SKU-1' } }, 2);
    await rpcPost(endpoint, lying, { 'mcp-method': 'tools/list', 'mcp-name': 'reserve_stock' });
    expect(mcp.requests.at(-1)!.body).toBe(JSON.stringify(lying));
    expect(mcp.requests.at(-1)!.headers['mcp-name']).toBe('reserve_stock');
    expect(sidecar.flows.get('stock.lookup')!.counters).toMatchObject({ requests: 2, rpcHeaderMismatches: 2 });
    const mismatches = await registry.getSingleMetric('cutover_sidecar_rpc_header_mismatch_total')!.get();
    expect(mismatches.values.map((v) => [v.labels.flow, v.labels.header, v.value]).sort()).toEqual([
      ['stock.lookup', 'mcp-method', 1],
      ['stock.lookup', 'mcp-name', 1],
    ]);
    // ... and in the report: the parity record of that call says which headers lied, the flow gets advice.
    await waitFor(() => records.length >= 2, { timeoutMs: 30_000, what: 'parity records of both lookups' });
    expect(records.map((r) => r.outcome)).toEqual(['match', 'match']);
    expect(records.map((r) => r.rpcHeaderMismatch)).toContainEqual(['mcp-method', 'mcp-name']);
    const report = await buildReport(records, { flows: [{ name: 'stock.lookup', mode: 'shadow' }] });
    expect(report.flows[0]!.rpcHeaderMismatches).toBe(1);
    expect(report.flows[0]!.verdict.advice.find((a) => a.code === 'mcp-headers')?.message).toMatch(/^1 calls sent Mcp-Method \/ Mcp-Name headers/);

    // reserve_stock is in bus mode and nothing serves it yet: a JSON-RPC error with the caller's id.
    const timedOut = await rpcPost(endpoint, rpcBody('tools/call', { name: 'reserve_stock', arguments: { sku: 'SKU-1' } }, 'r-1'));
    expect(timedOut.status).toBe(504);
    expect(timedOut.json).toMatchObject({ jsonrpc: '2.0', id: 'r-1', error: { code: -32603, data: { code: 'CUTOVER_REPLY_TIMEOUT' } } });
    expect(mcp.served.get('tools/call')).toBe(2);

    // A notification in a fire-and-forget flow: 202 without a body, as an MCP server answers it.
    const note = await rpcPost(endpoint, { jsonrpc: '2.0', method: 'notifications/initialized' });
    expect([note.status, note.text]).toEqual([202, '']);
    expect(mcp.served.get('notifications/initialized')).toBeUndefined();
  });

  it.skipIf(target.skip)(`a body over capture.maxBodyBytes on a JSON-RPC URL is forwarded byte for byte to the URL's plain flow${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const direct = await startA2aAgent();
    cleanups.push(() => direct.close());
    const flows: Flows = [
      { name: 'travel.send', match: { method: 'POST', path: '/a2a', rpc: 'SendMessage' }, topic: `commands.agent.t${id}.send`, mode: 'bus', timeout: '300ms' },
      { name: 'travel.other', match: { method: 'POST', path: '/a2a' }, topic: `commands.agent.t${id}.other`, mode: 'direct' },
    ];
    const { sidecar, registry } = await setup(direct.url, flows, { capture: { maxBodyBytes: 1024 } });
    const big = rpcBody('SendMessage', a2aMessage('x'.repeat(64 * 1024)), 'big');
    const answer = await rpcPost(`${sidecar.data.url}/a2a`, big);
    // Served by the agent directly (the bus-mode flow would have timed out: nothing serves it).
    expect(answer.json).toMatchObject({ id: 'big', result: { task: { status: { state: 'completed' } } } });
    expect(direct.requests.at(-1)!.body).toBe(JSON.stringify(big));
    expect(sidecar.flows.get('travel.other')!.counters.requests).toBe(1);
    expect(sidecar.flows.get('travel.send')!.counters.requests).toBe(0);
    const unparsed = await registry.getSingleMetric('cutover_sidecar_rpc_unparsed_total')!.get();
    expect(unparsed.values.map((v) => [v.labels.reason, v.value])).toEqual([['body_too_large', 1]]);
  });
});
