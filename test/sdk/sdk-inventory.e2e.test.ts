import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startRestInventory } from '../../examples/agents/inventory.js';
import { startSdkInventory } from '../../examples/agents/sdk-inventory.js';
import { createBus, DlqHeaders, type Bus, type BusMessage, type Delivery } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { flowCompareSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { waitFor } from '../helpers/wait-for.js';
import { simulateCall } from '../shadow/fixtures/sidecar-sim.js';
import { busTargets } from '../helpers/bus-targets.js';

/**
 * The SDK example agent (examples/agents/sdk-inventory.ts) on the three real buses: it replies to call
 * events, its replies pair with the REST agent's responses in the comparator, and a redelivered event does
 * not run its handler twice.
 */

const targets = busTargets('sdk');

function callEvent(prefix: string, replyTo: string, body: unknown, id: string = randomUUID()): BusMessage {
  return {
    key: 'SKU-TEAPOT',
    event: {
      specversion: '1.0',
      id,
      source: '/agents/checkout',
      type: 'inventory.reserve',
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      schemaversion: '1',
      correlationid: id,
      replyto: replyTo,
      cutoverflow: 'inventory.reserve',
      cutovermode: 'bus',
      data: { body, params: {}, query: {} },
    },
  };
}

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`SDK example agent on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    async function setup() {
      const id = randomUUID().slice(0, 8);
      const prefix = `commands.agent.t${id}`;
      const replyTo = `cutover.replies.t${id}`;
      const env = await target.setup(id);
      cleanups.push(() => env.cleanup([prefix, replyTo, `events.t${id}`, `cutover.parity.t${id}`, `cutover.observations.t${id}`]));
      const bus: Bus = await createBus(env.config);
      await bus.start();
      cleanups.push(() => bus.close());
      const agent = await startSdkInventory({ bus: env.config, prefix, factsPrefix: `events.t${id}`, group: `agent.inventory.t${id}`, dataDir: env.dataDir });
      cleanups.push(() => agent.close());
      const replies: Delivery[] = [];
      await bus.subscribe({ group: `test.replies.${id}`, topics: [replyTo], handler: async (d) => void replies.push(d) });
      return { id, env, bus, agent, prefix, replyTo, replies };
    }

    it('replies to a call event on its replyto, keyed by correlation id, with status and body', async () => {
      const { bus, agent, prefix, replyTo, replies } = await setup();
      const ok = callEvent(prefix, replyTo, { sku: 'SKU-TEAPOT', qty: 2, customerId: 'c-1' });
      const short = callEvent(prefix, replyTo, { sku: 'SKU-KETTLE', qty: 1 });
      await bus.publish(`${prefix}.reserve`, [ok, short]);
      await waitFor(() => replies.length >= 2, { timeoutMs: 30_000, what: 'two replies' });
      const byId = new Map(replies.map((r) => [r.event.correlationid, r]));
      const first = byId.get(ok.event.id)!;
      expect(first.key).toBe(ok.event.id);
      expect(first.event).toMatchObject({ type: 'cutover.observation.bus', source: '/agents/inventory', cutoverflow: 'inventory.reserve', cutovermode: 'bus' });
      expect(first.event.data).toMatchObject({ status: 201, body: { sku: 'SKU-TEAPOT', qty: 2, customerId: 'c-1', status: 'held', remaining: 48 }, attempt: 1 });
      expect(byId.get(short.event.id)!.event.data).toMatchObject({ status: 409, body: { error: { code: 'OUT_OF_STOCK' } } });
      // Not a shadow call: the fact was published.
      expect(agent.facts).toBe(1);
    });

    it('is idempotent by event id: a redelivered event is not handled again and gets no second reply', async () => {
      const { bus, agent, prefix, replyTo, replies } = await setup();
      const ev = callEvent(prefix, replyTo, { sku: 'SKU-TEAPOT', qty: 1 });
      await bus.publish(`${prefix}.reserve`, [ev]);
      await waitFor(() => replies.length === 1, { timeoutMs: 30_000, what: 'the first reply' });
      // The same event again, as the bus redelivers it after a crash or a rebalance.
      await bus.publish(`${prefix}.reserve`, [ev]);
      const marker = callEvent(prefix, replyTo, { sku: 'SKU-TEAPOT', qty: 1 });
      await bus.publish(`${prefix}.reserve`, [marker]);
      await waitFor(() => replies.some((r) => r.event.correlationid === marker.event.id), { timeoutMs: 30_000, what: 'the reply to a later event on the same key' });
      expect(agent.handled.get(ev.event.id)).toBe(1);
      expect(replies.filter((r) => r.event.correlationid === ev.event.id)).toHaveLength(1);
      // Stock moved once for the event, once for the marker.
      expect(replies.find((r) => r.event.correlationid === marker.event.id)!.event.data).toMatchObject({ body: { remaining: 48 } });
    });

    it('sends an unknown schema major to the DLQ at once, with the reason, and replies with the error', async () => {
      const { bus, agent, prefix, replyTo, replies } = await setup();
      const ev = callEvent(prefix, replyTo, { sku: 'SKU-TEAPOT', qty: 1 });
      ev.event.schemaversion = '9.0';
      await bus.publish(`${prefix}.reserve`, [ev]);
      const dead = await waitFor(
        async () => {
          const found: Delivery[] = [];
          for await (const d of bus.read(`${prefix}.reserve.dlq`, { from: 'start', follow: false })) found.push(d);
          return found.length > 0 ? found : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: 'the dead letter' },
      );
      expect(dead[0]!.event.id).toBe(ev.event.id);
      expect(dead[0]!.headers).toMatchObject({ [DlqHeaders.errorCode]: 'CUTOVER_SCHEMA_UNSUPPORTED', [DlqHeaders.attempts]: '1' });
      expect(dead[0]!.headers[DlqHeaders.errorMessage]).toMatch(/schemaversion 9\.0/);
      await waitFor(() => replies.length === 1, { timeoutMs: 30_000, what: 'the error reply' });
      expect(replies[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'CUTOVER_SCHEMA_UNSUPPORTED' } });
      expect(agent.handled.has(ev.event.id)).toBe(false);
    });

    it("its replies pair with the REST agent's responses in the comparator (bus-native shadow)", async () => {
      const { id, env, bus, prefix } = await setup();
      const rest = await startRestInventory();
      cleanups.push(() => rest.close());
      const flow = { name: 'inventory.reserve', topic: `${prefix}.reserve`, observationsTopic: `cutover.observations.t${id}` };
      const parityTopic = `cutover.parity.t${id}`;
      const records: ParityRecord[] = [];
      await bus.subscribe({ group: `test.parity.${id}`, topics: [parityTopic], handler: async (d) => void records.push(d.event.data as ParityRecord) });
      const runtime = new ShadowRuntime({
        bus,
        busConfig: busConfigSchema.parse(env.config),
        flows: [{ name: flow.name, topic: flow.topic, match: { method: 'POST', path: '/reservations' }, compare: flowCompareSchema.parse({ ignore: ['/body/reservationId'] }) }],
        shadow: shadowConfigSchema.parse({ window: '30s' }),
        observationsTopic: flow.observationsTopic,
        parityTopic,
        comparatorGroup: `cutover.comparator.t${id}`,
      });
      await runtime.start();
      cleanups.push(() => runtime.close());
      const ids: string[] = [];
      for (const [sku, qty] of [['SKU-TEAPOT', 5], ['SKU-RED-MUG', 1], ['SKU-TEAPOT', 100], ['SKU-NOPE', 1], ['SKU-TEAPOT', 3]] as const) {
        ids.push(await simulateCall(bus, rest.url, flow, { method: 'POST', path: '/reservations', body: { sku, qty, customerId: 'c-9' }, key: sku }));
      }
      await waitFor(() => records.length >= ids.length, { timeoutMs: 30_000, what: 'parity records' });
      // Records of different keys arrive in any order.
      const byId = new Map(records.map((r) => [r.correlationId, [r.outcome, r.directStatus, r.busStatus]]));
      expect(ids.map((cid) => byId.get(cid))).toEqual([201, 201, 409, 404, 201].map((s) => ['match', s, s]));
    });
  });
}
