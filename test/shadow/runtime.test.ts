import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus, type Bus, type BusConfigInput, type BusMessage } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { comparatorGroupOf } from '../../shadow/comparator.js';
import { OBSERVATIONS_TOPIC, ObservationTypes, observationsTopicOf, type BusReplyData } from '../../src/events/wire.js';
import { flowCompareSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime, type ShadowFlowConfig } from '../../shadow/runtime.js';
import { waitFor } from '../helpers/wait-for.js';
import { collectParity } from '../helpers/parity.js';

function observation(type: string, id: string, flow: string, data: BusReplyData): BusMessage {
  return { key: id, event: { specversion: '1.0', id: `${type}:${id}`, source: '/agents/test', type, correlationid: id, cutoverflow: flow, cutovermode: 'shadow', data } };
}

function flow(name: string, ignore: string): ShadowFlowConfig {
  return { name, topic: `commands.agent.test.${name}`, match: { method: 'POST', path: `/${name}` }, compare: flowCompareSchema.parse({ ignore: [ignore] }) };
}

describe('ShadowRuntime: comparator ownership', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  async function openBus(config: BusConfigInput): Promise<Bus> {
    const bus = await createBus(config);
    await bus.start();
    cleanups.push(() => bus.close());
    return bus;
  }

  async function twoRuntimes(sharedObservations: boolean) {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-runtime-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config: BusConfigInput = { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' };
    // Two sidecars' in-process shadow sides: same file, same default group prefix, different flows.
    const runtimes = [
      { flows: [flow('alpha', '/body/at')], bus: await openBus(config) },
      { flows: [flow('beta', '/body/stamp')], bus: await openBus(config) },
    ].map(({ flows, bus }) => new ShadowRuntime({ bus, busConfig: busConfigSchema.parse(config), flows, shadow: shadowConfigSchema.parse({ window: '30s', sharedObservations }), dataDir: dir }));
    for (const r of runtimes) {
      await r.start();
      cleanups.push(() => r.close());
    }
    expect(runtimes.map((r) => r.comparator!.groups)).toEqual([[comparatorGroupOf('alpha')], [comparatorGroupOf('beta')]]);
    const bus = await openBus(config);
    const records = await collectParity(bus);
    // Each flow's pairs differ only where that flow's rules ignore: under the default rules they mismatch.
    const pairs = (name: string, prefix: string, field: string): BusMessage[] =>
      Array.from({ length: 20 }, (_, i) => [
        observation(ObservationTypes.direct, `${prefix}-${i}`, name, { status: 200, body: { n: i, [field]: 1 } }),
        observation(ObservationTypes.bus, `${prefix}-${i}`, name, { status: 200, body: { n: i, [field]: 2 } }),
      ]).flat();
    return { runtimes, bus, records, alpha: pairs('alpha', 'a', 'at'), beta: pairs('beta', 'b', 'stamp') };
  }

  it('two runtimes knowing different flows on one embedded bus file each read only their own flows\' topics and judge them with their rules', async () => {
    const { runtimes, bus, records, alpha, beta } = await twoRuntimes(false);
    await bus.publish(observationsTopicOf('alpha'), alpha);
    await bus.publish(observationsTopicOf('beta'), beta);

    await waitFor(() => records.length >= 40, { timeoutMs: 30_000, what: '40 parity records' });
    expect(records.filter((r) => r.outcome !== 'match')).toEqual([]);
    expect(new Set(records.map((r) => r.correlationId)).size).toBe(40);
    // Neither comparator was handed a single observation of the other flow.
    const [a, b] = runtimes.map((r) => r.comparator!.stats());
    expect(a).toMatchObject({ records: { match: 20 }, foreign: 0 });
    expect(b).toMatchObject({ records: { match: 20 }, foreign: 0 });
  });

  it('with shadow.sharedObservations the comparators also judge what older sidecars put on the shared topic, leaving other flows to their owner', async () => {
    const { runtimes, bus, records, alpha, beta } = await twoRuntimes(true);
    // An older sidecar: every flow on the one topic; a newer one: its flow's own topic.
    await bus.publish(OBSERVATIONS_TOPIC, [...alpha.slice(0, 20), ...beta]);
    await bus.publish(observationsTopicOf('alpha'), alpha.slice(20));

    await waitFor(() => records.length >= 40, { timeoutMs: 30_000, what: '40 parity records' });
    expect(records.filter((r) => r.outcome !== 'match')).toEqual([]);
    expect(new Set(records.map((r) => r.correlationId)).size).toBe(40);
    // On the shared topic each group sees the other flow's observations too, and skips them.
    await waitFor(() => runtimes.every((r) => r.comparator!.stats().foreign > 0), { what: 'foreign observations skipped' });
    const [a, b] = runtimes.map((r) => r.comparator!.stats());
    expect(a).toMatchObject({ records: { match: 20 }, foreign: 40 });
    expect(b).toMatchObject({ records: { match: 20 }, foreign: 20 });
  });

  it("comparatorScope 'all' keeps the single group that judges every flow (flows without rules get the defaults)", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-runtime-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config: BusConfigInput = { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' };
    const bus = await openBus(config);
    const runtime = new ShadowRuntime({ bus, busConfig: busConfigSchema.parse(config), flows: [flow('alpha', '/body/at')], shadow: shadowConfigSchema.parse({}), comparatorScope: 'all' });
    await runtime.start();
    cleanups.push(() => runtime.close());
    expect(runtime.comparator!.groups).toEqual(['cutover.comparator']);
    // Every flow's topic, the multi-level flow names included; never the shared topic (not asked for).
    await bus.publish(OBSERVATIONS_TOPIC, [observation(ObservationTypes.direct, 'old-1', 'gamma', { status: 200, body: {} })]);
    await bus.publish(observationsTopicOf('gamma'), [
      observation(ObservationTypes.direct, 'g-1', 'gamma', { status: 200, body: { at: 1 } }),
      observation(ObservationTypes.bus, 'g-1', 'gamma', { status: 200, body: { at: 2 } }),
    ]);
    await bus.publish(observationsTopicOf('shop.checkout.v2'), [
      observation(ObservationTypes.direct, 'd-1', 'shop.checkout.v2', { status: 200, body: { at: 1 } }),
      observation(ObservationTypes.bus, 'd-1', 'shop.checkout.v2', { status: 200, body: { at: 1 } }),
    ]);
    await waitFor(() => runtime.comparator!.stats().records.mismatch === 1 && runtime.comparator!.stats().records.match === 1, { timeoutMs: 30_000, what: 'gamma judged with the default rules, shop.checkout.v2 matched' });
    expect(runtime.comparator!.stats()).toMatchObject({ open: 0, foreign: 0 });
  });
});
