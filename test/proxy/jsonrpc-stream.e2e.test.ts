import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { createBus } from '../../src/bus/index.js';
import { createRegistry } from '../../src/metrics.js';
import { AgentBus } from '../../src/sdk/index.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { busTargets, type BusTargetEnv } from '../helpers/bus-targets.js';
import { a2aMessage, gate, openRpcStream, rpcBody, rpcPost, startA2aAgent } from '../helpers/jsonrpc-agents.js';
import { collectParity } from '../helpers/parity.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Streamed JSON-RPC answers (A2A SendStreamingMessage as Server-Sent Events) through a real sidecar on a
 * real bus: relayed to the caller as they come, compared by their meaning, served bus-natively in bus mode.
 */

const targets = busTargets('jsonrpc-stream').filter((t) => t.kind === 'embedded' || t.kind === 'redis');

type Flows = NonNullable<SidecarConfigInput['flows']>;
type Event = { jsonrpc: string; id: unknown; result?: Record<string, unknown>; error?: unknown };

describe.each(targets)('streamed JSON-RPC answers on $kind', (target) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  async function setup(upstream: string, flows: Flows): Promise<{ env: BusTargetEnv; sidecar: SidecarHandle; records: ParityRecord[] }> {
    const env = await target.setup(randomUUID().slice(0, 8));
    cleanups.push(() => env.cleanup());
    const sidecar = await startSidecar(
      { agent: 'travel', listen: '127.0.0.1:0', upstream, admin: { listen: '127.0.0.1:0', auth: false }, bus: env.config, dataDir: env.dir, shadow: { inProcess: true, window: '20s' }, flows },
      { registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());
    const bus = await createBus(env.config);
    await bus.start();
    cleanups.push(() => bus.close());
    return { env, sidecar, records: await collectParity(bus) };
  }

  const streamFlow = (id: string, shadowUrl: string): Flows[number] => ({
    name: 'travel.stream',
    match: { method: 'POST', path: '/a2a', rpc: 'SendStreamingMessage' },
    topic: `commands.agent.t${id}.stream`,
    mode: 'shadow',
    shadow: { target: shadowUrl },
  });

  it.skipIf(target.skip)(`shadow: events reach the caller before the agent finishes; other chunking is a match, another artifact a mismatch naming it${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const hold = gate();
    const direct = await startA2aAgent({ chunkSize: 4, holdFinal: () => hold.promise });
    const sameAnswer = await startA2aAgent({ chunkSize: 7 });
    const otherAnswer = await startA2aAgent({ answer: (t) => `${t.toUpperCase()}?` });
    cleanups.push(() => direct.close(), () => sameAnswer.close(), () => otherAnswer.close());
    const flow = streamFlow(id, sameAnswer.url);
    const { sidecar, records } = await setup(direct.url, [flow]);

    const stream = await openRpcStream(`${sidecar.data.url}/a2a`, rpcBody('SendStreamingMessage', a2aMessage('hello world'), 's-1'));
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream');
    // The agent holds its final event: the task and the first chunks reach the caller all the same.
    await stream.waitForEvents(2);
    expect((stream.events as Event[]).some((e) => (e.result?.statusUpdate as { final?: boolean } | undefined)?.final)).toBe(false);
    hold.open();
    expect(await stream.done).toEqual({ complete: true });
    const events = stream.events as Event[];
    expect(events.every((e) => e.jsonrpc === '2.0' && e.id === 's-1')).toBe(true);
    expect(events.at(-1)!.result).toMatchObject({ statusUpdate: { status: { state: 'completed' }, final: true } });

    await waitFor(() => records.length >= 1, { timeoutMs: 30_000, what: 'the parity record of the stream' });
    expect(records[0]).toMatchObject({ flow: 'travel.stream', outcome: 'match' });

    // The same flow (called by its A2A 0.3 name) against a shadow agent whose answer differs.
    await sidecar.close();
    const second = await setup(direct.url, [{ ...flow, shadow: { target: otherAnswer.url } }]);
    const other = await openRpcStream(`${second.sidecar.data.url}/a2a`, rpcBody('message/stream', a2aMessage('hello world'), 2));
    expect(await other.done).toEqual({ complete: true });
    await waitFor(() => second.records.length >= 1, { timeoutMs: 30_000, what: 'the parity record of the second stream' });
    expect(second.records[0]).toMatchObject({ flow: 'travel.stream', outcome: 'mismatch' });
    expect(second.records[0]!.diffs).toEqual([{ path: '/body/result/task/artifacts/0/parts/0/text', kind: 'changed', direct: 'HELLO WORLD', bus: 'HELLO WORLD?' }]);
  });

  it.skipIf(target.skip)(`a stream the agent cuts short is a result of its own: the caller's stream is cut, the sidecar carries on${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const direct = await startA2aAgent({ cutAfter: 2 });
    const shadowAgent = await startA2aAgent();
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const { sidecar, records } = await setup(direct.url, [streamFlow(id, shadowAgent.url)]);

    const cut = await openRpcStream(`${sidecar.data.url}/a2a`, rpcBody('SendStreamingMessage', a2aMessage('hello world'), 'cut'));
    expect(await cut.done).toEqual({ complete: false });
    expect(cut.events.length).toBe(2);
    await waitFor(() => records.length >= 1, { timeoutMs: 30_000, what: 'the parity record of the cut stream' });
    expect(records[0]).toMatchObject({ flow: 'travel.stream', outcome: 'error_direct' });

    // The sidecar and the flow still work.
    const answer = await rpcPost(`${sidecar.data.url}/a2a`, rpcBody('SendMessage', a2aMessage('x'), 1));
    expect(answer.json).toMatchObject({ id: 1, result: { task: { status: { state: 'completed' } } } });
  });

  it.skipIf(target.skip)(`bus mode: the SDK agent's streamed events are relayed as SSE in order, as they come, with the caller's id${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const topic = `commands.agent.t${id}.stream`;
    const unused = await startA2aAgent();
    cleanups.push(() => unused.close());
    const { env, sidecar } = await setup(unused.url, [{ name: 'travel.stream', match: { method: 'POST', path: '/a2a', rpc: 'SendStreamingMessage' }, topic, mode: 'bus', timeout: '5s' }]);
    const agents = await AgentBus.connect(env.config, { agent: 'travel', dataDir: env.dir });
    cleanups.push(() => agents.close());
    const hold = gate();
    await agents.serveRpc(topic, {
      methods: {
        SendStreamingMessage: async function* (params) {
          const text = ((params as { message: { parts: Array<{ text: string }> } }).message.parts[0]!.text).toUpperCase();
          yield { task: { id: 'task-1', contextId: 'ctx', status: { state: 'TASK_STATE_WORKING' } } };
          for (let i = 0; i < text.length; i += 3) {
            yield { artifactUpdate: { taskId: 'task-1', artifact: { artifactId: 'a', parts: [{ text: text.slice(i, i + 3) }] }, append: i > 0 } };
          }
          await hold.promise;
          yield { statusUpdate: { taskId: 'task-1', status: { state: 'TASK_STATE_COMPLETED' }, final: true } };
        },
      },
    });

    const stream = await openRpcStream(`${sidecar.data.url}/a2a`, rpcBody('message/stream', a2aMessage('bus world'), 'b-1'));
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream');
    // 1 task + 3 chunks relayed while the handler still waits to finish.
    await stream.waitForEvents(4);
    hold.open();
    expect(await stream.done).toEqual({ complete: true });
    const events = stream.events as Event[];
    expect(events.map((e) => [e.jsonrpc, e.id])).toEqual(Array(5).fill(['2.0', 'b-1']));
    expect(events.slice(1, 4).map((e) => (e.result!.artifactUpdate as { artifact: { parts: Array<{ text: string }> } }).artifact.parts[0]!.text).join('')).toBe('BUS WORLD');
    expect(events[4]!.result).toMatchObject({ statusUpdate: { final: true } });
    expect(sidecar.flows.get('travel.stream')!.counters).toMatchObject({ busServed: 1 });
  });

  it.skipIf(target.skip)(`shadow with an SDK agent: its streamed answer, chunked its own way, matches the REST agent's${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const id = randomUUID().slice(0, 8);
    const topic = `commands.agent.t${id}.stream`;
    const direct = await startA2aAgent({ chunkSize: 4 });
    cleanups.push(() => direct.close());
    const { env, sidecar, records } = await setup(direct.url, [{ name: 'travel.stream', match: { method: 'POST', path: '/a2a', rpc: 'SendStreamingMessage' }, topic, mode: 'shadow' }]);
    const agents = await AgentBus.connect(env.config, { agent: 'travel', dataDir: env.dir });
    cleanups.push(() => agents.close());
    let shadowCalls = 0;
    await agents.serveRpc(topic, {
      methods: {
        SendStreamingMessage: async function* (params, ctx) {
          if ((ctx.event as { shadow?: boolean }).shadow) shadowCalls++;
          const message = (params as { message: { parts: Array<{ text: string }> } }).message;
          const text = message.parts[0]!.text.toUpperCase();
          yield { task: { id: 'sdk-task', contextId: 'sdk-ctx', status: { state: 'working', timestamp: new Date().toISOString() }, artifacts: [], history: [message] } };
          for (let i = 0; i < text.length; i += 6) {
            yield { artifactUpdate: { taskId: 'sdk-task', contextId: 'sdk-ctx', artifact: { artifactId: 'sdk-a', name: 'answer', parts: [{ text: text.slice(i, i + 6) }] }, append: i > 0 } };
          }
          yield { statusUpdate: { taskId: 'sdk-task', contextId: 'sdk-ctx', status: { state: 'completed', timestamp: new Date().toISOString() }, final: true } };
        },
      },
    });

    const stream = await openRpcStream(`${sidecar.data.url}/a2a`, rpcBody('SendStreamingMessage', a2aMessage('streams alike'), 'sh-1'));
    expect(await stream.done).toEqual({ complete: true });
    await waitFor(() => records.length >= 1, { timeoutMs: 30_000, what: 'the parity record of the SDK stream' });
    expect(records[0]).toMatchObject({ flow: 'travel.stream', outcome: 'match' });
    expect(shadowCalls).toBe(1);
  });
});
