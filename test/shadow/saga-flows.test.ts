import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { buildEvent } from '../../src/events/cloudevent.js';
import { ObservationTypes, observationsTopicOf, type BusReplyData } from '../../src/events/wire.js';
import { defineSaga } from '../../src/saga/model.js';
import { AgentBus } from '../../src/sdk/agent-bus.js';
import { MemoryDedupeStore } from '../../src/handling/dedupe/index.js';
import { serveSagaStep } from '../../src/sdk/saga-step.js';
import { SagaFlows } from '../../shadow/saga-flows.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';
import { createRegistry } from '../../src/metrics.js';

/** The saga flow runner's promises on its own: one saga per call event however often it comes, and no reply for a saga that does not end in time. */
describe('SagaFlows', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  async function setup(options: { serveShip: boolean; waitMs: number }) {
    const bus = new MemoryBus();
    await bus.start();
    cleanups.push(() => bus.close());
    const saga = defineSaga({
      name: 'order',
      steps: [
        { name: 'reserve', command: 'commands.agent.inventory.reserve', compensation: 'commands.agent.inventory.release', timeout: '5s' },
        { name: 'ship', command: 'commands.agent.logistics.ship', timeout: '5s' },
      ],
    });
    const agents = new AgentBus({ bus, agent: 'shop', dedupe: new MemoryDedupeStore() });
    cleanups.push(() => agents.close());
    const runs: string[] = [];
    await serveSagaStep(agents, { command: saga.steps[0]!.command, run: ({ command }) => (runs.push(command.sagaId), { status: 201, body: { reservation: 1 } }), compensation: { topic: saga.steps[0]!.compensation!, run: () => ({}) } });
    if (options.serveShip) await serveSagaStep(agents, { command: saga.steps[1]!.command, run: () => ({ status: 201, body: { tracking: 't-1' } }) });
    const registry = createRegistry();
    const flows = new SagaFlows({ bus, flows: [{ name: 'orders.place', topic: 'commands.agent.orders.place', saga }], waitMs: options.waitMs, registry });
    await flows.start();
    cleanups.push(() => flows.close());
    const replies: BusReplyData[] = [];
    await bus.subscribe({ group: 'test.replies', topics: [observationsTopicOf('orders.place')], handler: async (d) => void (d.event.type === ObservationTypes.bus && replies.push(d.event.data as BusReplyData)) });
    const call = buildEvent({ source: '/agents/orders', type: 'commands.agent.orders.place', replyto: observationsTopicOf('orders.place'), cutoverflow: 'orders.place', cutovermode: 'shadow', data: { body: { order: 'o-1' }, params: {}, query: {} } });
    const counted = async (outcome: string) => (await registry.getSingleMetricAsString('cutover_saga_flow_calls_total')).split('\n').find((l) => l.includes(`outcome="${outcome}"`));
    return { bus, flows, replies, runs, call, saga, counted };
  }

  it('a call event delivered twice begins one saga, with the call id as saga id', async () => {
    const { bus, flows, replies, runs, call, counted } = await setup({ serveShip: true, waitMs: 10_000 });
    await bus.publish('commands.agent.orders.place', [{ key: 'o-1', event: call }]);
    await bus.publish('commands.agent.orders.place', [{ key: 'o-1', event: call }]);
    await waitFor(() => flows.stats().answered === 2, { timeoutMs: 10_000, what: 'both deliveries answered' });
    expect(flows.orchestrator.list('order').map((s) => [s.id, s.mode, s.status])).toEqual([[call.id, 'shadow', 'completed']]);
    expect(runs).toEqual([call.id]);
    expect(await counted('answered')).toBe('cutover_saga_flow_calls_total{flow="orders.place",outcome="answered"} 2');
    await waitFor(() => replies.length === 2, { what: 'the replies' });
    expect(replies.map((r) => [r.status, r.body, r.saga?.status])).toEqual([
      [201, { tracking: 't-1' }, 'completed'],
      [201, { tracking: 't-1' }, 'completed'],
    ]);
  });

  it('a saga that does not end within the wait gets no reply, so the comparator counts its pair missing_bus', async () => {
    const { bus, flows, replies, call, counted } = await setup({ serveShip: false, waitMs: 300 });
    await bus.publish('commands.agent.orders.place', [{ key: randomUUID(), event: call }]);
    await waitFor(() => flows.stats().unanswered === 1, { timeoutMs: 10_000, what: 'the wait to run out' });
    expect(flows.stats()).toMatchObject({ begun: 1, answered: 0 });
    expect(flows.orchestrator.get('order', call.id)!.status).toBe('running');
    expect(replies).toEqual([]);
    expect(await counted('unanswered')).toBe('cutover_saga_flow_calls_total{flow="orders.place",outcome="unanswered"} 1');
  });
});
