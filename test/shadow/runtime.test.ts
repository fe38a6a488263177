import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus, type Bus, type BusConfigInput, type BusMessage } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { comparatorGroupOf } from '../../shadow/comparator.js';
import { OBSERVATIONS_TOPIC, ObservationTypes, type BusReplyData } from '../../src/events/wire.js';
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

  it('two runtimes knowing different flows on one embedded bus file each judge only their own flows, with their rules', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-runtime-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config: BusConfigInput = { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' };
    // Two sidecars' in-process shadow sides: same file, same default group prefix, different flows.
    const runtimes = [
      { flows: [flow('alpha', '/body/at')], bus: await openBus(config) },
      { flows: [flow('beta', '/body/stamp')], bus: await openBus(config) },
    ].map(({ flows, bus }) => new ShadowRuntime({ bus, busConfig: busConfigSchema.parse(config), flows, shadow: shadowConfigSchema.parse({ window: '30s' }), dataDir: dir }));
    for (const r of runtimes) {
      await r.start();
      cleanups.push(() => r.close());
    }
    expect(runtimes.map((r) => r.comparator!.groups)).toEqual([[comparatorGroupOf('alpha')], [comparatorGroupOf('beta')]]);

    const bus = await openBus(config);
    const records = await collectParity(bus);
    const messages: BusMessage[] = [];
    for (let i = 0; i < 20; i++) {
      // Each flow's pairs differ only where that flow's rules ignore: under the default rules they mismatch.
      messages.push(observation(ObservationTypes.direct, `a-${i}`, 'alpha', { status: 200, body: { n: i, at: 1 } }));
      messages.push(observation(ObservationTypes.bus, `a-${i}`, 'alpha', { status: 200, body: { n: i, at: 2 } }));
      messages.push(observation(ObservationTypes.direct, `b-${i}`, 'beta', { status: 200, body: { n: i, stamp: 'x' } }));
      messages.push(observation(ObservationTypes.bus, `b-${i}`, 'beta', { status: 200, body: { n: i, stamp: 'y' } }));
    }
    await bus.publish(OBSERVATIONS_TOPIC, messages);

    await waitFor(() => records.length >= 40, { timeoutMs: 30_000, what: '40 parity records' });
    expect(records.filter((r) => r.outcome !== 'match')).toEqual([]);
    expect(new Set(records.map((r) => r.correlationId)).size).toBe(40);
    // Each comparator saw the other flow's observations and left them to their owner.
    const [alpha, beta] = runtimes.map((r) => r.comparator!.stats());
    expect(alpha).toMatchObject({ records: { match: 20 }, foreign: 40 });
    expect(beta).toMatchObject({ records: { match: 20 }, foreign: 40 });
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
    await bus.publish(OBSERVATIONS_TOPIC, [
      observation(ObservationTypes.direct, 'g-1', 'gamma', { status: 200, body: { at: 1 } }),
      observation(ObservationTypes.bus, 'g-1', 'gamma', { status: 200, body: { at: 2 } }),
    ]);
    await waitFor(() => runtime.comparator!.stats().records.mismatch === 1, { timeoutMs: 30_000, what: 'gamma judged with the default rules' });
  });
});
