import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus, type Bus } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { flowCompareSchema, flowShadowSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime, type ShadowFlowConfig } from '../../shadow/runtime.js';
import { waitFor } from '../helpers/wait-for.js';
import { startTestAgent, type TestAgent } from './fixtures/agent.js';
import { simulateCall, type SimFlow } from './fixtures/sidecar-sim.js';
import { busTargets } from '../helpers/bus-targets.js';
import { collectParity } from '../helpers/parity.js';

/**
 * Shadow delivery + comparator end to end on the real buses. The sidecar is simulated with its own
 * message builders (proxy/call-event.ts) so that the run controls exactly which calls exist; everything
 * after the publish is the real thing: consumer groups, the HTTP shadow target, replies, pairing,
 * parity records on the bus.
 */

const targets = busTargets('shadow');

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`shadow end to end on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    interface Run {
      bus: Bus;
      flow: SimFlow;
      records: ParityRecord[];
      runtime: ShadowRuntime;
      direct: TestAgent;
      shadowTarget: TestAgent;
    }

    /** A bus, two agents (direct and shadow target), the shadow runtime and a parity reader. */
    async function run(options: { differs?: (sku: string) => boolean; randomToken?: boolean; window?: string; flow: (name: string, topic: string, shadowUrl: string) => ShadowFlowConfig }): Promise<Run> {
      const id = randomUUID().slice(0, 8);
      const flow: SimFlow = { name: `t${id}.call`, topic: `commands.agent.t${id}.call`, observationsTopic: `cutover.observations.t${id}` };
      const parityTopic = `cutover.parity.t${id}`;
      const env = await target.setup(id);
      // Prefixes: every flow topic of the run and every flow's observation topic below its base.
      cleanups.push(() => env.cleanup([`commands.agent.t${id}.`, flow.observationsTopic, parityTopic]));
      const direct = await startTestAgent({ randomToken: options.randomToken });
      const shadowTarget = await startTestAgent({ differs: options.differs, randomToken: options.randomToken });
      cleanups.push(() => direct.close(), () => shadowTarget.close());
      const bus = await createBus(env.config);
      await bus.start();
      cleanups.push(() => bus.close());

      const records = await collectParity(bus, { group: `test.parity.${id}`, topic: parityTopic, concurrency: 4 });

      const runtime = new ShadowRuntime({
        bus,
        busConfig: busConfigSchema.parse(env.config),
        dataDir: env.dataDir,
        flows: [options.flow(flow.name, flow.topic, shadowTarget.url)],
        shadow: shadowConfigSchema.parse({ window: options.window ?? '30s', maxOpenPairs: 10_000 }),
        observationsTopic: flow.observationsTopic,
        parityTopic,
        comparatorGroup: `cutover.comparator.t${id}`,
      });
      await runtime.start();
      cleanups.push(() => runtime.close());
      return { bus, flow, records, runtime, direct, shadowTarget };
    }

    const reserveFlow = (name: string, topic: string, target: string): ShadowFlowConfig => ({
      name,
      topic,
      match: { method: 'POST', path: '/reservations' },
      shadow: flowShadowSchema.parse({ target, timeout: '5s', concurrency: 8, maxAttempts: 3, backoff: { initialMs: 20 } }),
      compare: flowCompareSchema.parse({}),
    });

    async function reserveCalls(r: Run, skus: string[]): Promise<Map<string, string>> {
      const bySku = new Map<string, string>();
      // A few calls in flight at once, as from concurrent callers.
      for (let i = 0; i < skus.length; i += 10) {
        const ids = await Promise.all(
          skus.slice(i, i + 10).map((sku) => simulateCall(r.bus, r.direct.url, r.flow, { method: 'POST', path: '/reservations', body: { sku, qty: 2 }, key: sku })),
        );
        ids.forEach((id, j) => bySku.set(skus[i + j]!, id));
      }
      return bySku;
    }

    const skus = Array.from({ length: 100 }, (_, i) => `sku-${i}`);

    it('a shadow target identical to the agent: every call of the run is a match; another flow\'s observations never reach the comparator', async () => {
      const r = await run({ flow: reserveFlow });
      // A flow this runtime does not know, on the same sidecar: its observations go to its own topic.
      const other: SimFlow = { ...r.flow, name: r.flow.name.replace(/\.call$/, '.other'), topic: r.flow.topic.replace(/\.call$/, '.other') };
      for (const sku of skus.slice(0, 10)) await simulateCall(r.bus, r.direct.url, other, { method: 'POST', path: '/reservations', body: { sku, qty: 1 }, key: sku });
      const ids = await reserveCalls(r, skus);
      await waitFor(() => r.records.length >= 100, { timeoutMs: 45_000, what: '100 parity records' });
      expect(new Set(r.records.map((x) => x.correlationId))).toEqual(new Set(ids.values()));
      expect(r.records.filter((x) => x.outcome !== 'match')).toEqual([]);
      for (const rec of r.records) {
        expect(rec).toMatchObject({ v: 1, flow: r.flow.name, mode: 'shadow', directStatus: 201, busStatus: 201, diffs: [] });
        expect(rec.busLatencyMs).toBeGreaterThanOrEqual(0);
        expect(rec.busLagMs).toBeGreaterThanOrEqual(0);
        expect(rec.busLagMs!).toBeLessThanOrEqual(rec.busLatencyMs!);
        expect(rec.directLatencyMs).toBeGreaterThan(0);
        expect(rec.eventBytes).toBeGreaterThan(0);
      }
      expect(r.shadowTarget.hits).toBe(100);
      // The comparator's group read its flow's topic only: not one observation of the other flow was handed to it.
      expect(r.runtime.comparator!.stats()).toMatchObject({ foreign: 0, open: 0 });
    });

    it('a shadow target answering differently for a known 2% of keys: exactly those calls mismatch, at /body/price', async () => {
      const differing = new Set(['sku-7', 'sku-57']);
      const r = await run({ flow: reserveFlow, differs: (sku) => differing.has(sku) });
      const ids = await reserveCalls(r, skus);
      await waitFor(() => r.records.length >= 100, { timeoutMs: 45_000, what: '100 parity records' });
      const mismatches = r.records.filter((x) => x.outcome === 'mismatch');
      expect(new Set(mismatches.map((m) => m.correlationId))).toEqual(new Set([...differing].map((s) => ids.get(s)!)));
      expect(r.records.filter((x) => x.outcome === 'match')).toHaveLength(98);
      for (const m of mismatches) {
        const sku = [...ids].find(([, id]) => id === m.correlationId)![0];
        const base = 10 + Number(sku.split('-')[1]) / 4;
        expect(m.diffs).toEqual([{ path: '/body/price', kind: 'changed', direct: base, bus: base + 1 }]);
        expect(m.request).toMatchObject({ method: 'POST', target: '/reservations' });
        expect(JSON.parse(m.request!.body!)).toEqual({ sku, qty: 2 });
      }
    });

    it('stopping the shadow consumer: the calls made meanwhile become missing_bus after the window', async () => {
      const r = await run({ flow: reserveFlow, window: '2s' });
      await reserveCalls(r, skus.slice(0, 10));
      await waitFor(() => r.records.length >= 10, { timeoutMs: 45_000, what: 'the first 10 records' });
      expect(r.records.every((x) => x.outcome === 'match')).toBe(true);
      await r.runtime.consumers[0]!.close();
      const stopped = await reserveCalls(r, skus.slice(10, 20));
      await waitFor(() => r.records.length >= 20, { timeoutMs: 45_000, what: '10 missing_bus records' });
      const missing = r.records.slice(10);
      expect(missing.map((x) => x.outcome)).toEqual(Array(10).fill('missing_bus'));
      expect(new Set(missing.map((x) => x.correlationId))).toEqual(new Set(stopped.values()));
      for (const m of missing) expect(m.directStatus).toBe(201);
    });

    it('noise sampling on: a field the agent fills at random is noise, not a mismatch', async () => {
      const r = await run({
        randomToken: true,
        flow: (name, topic, target) => ({
          name,
          topic,
          match: { method: 'GET', path: '/items/:sku' },
          shadow: flowShadowSchema.parse({ target, timeout: '5s', concurrency: 8 }),
          compare: flowCompareSchema.parse({}),
          noise: { sample: 0.25, warmup: 2 },
        }),
      });
      const ids: string[] = [];
      for (let i = 0; i < 40; i += 8) {
        // One request in four is sampled, as shouldSampleNoise({ sample: 0.25 }) would pick them on average.
        ids.push(
          ...(await Promise.all(
            skus.slice(i, i + 8).map((sku, j) =>
              simulateCall(r.bus, r.direct.url, r.flow, { method: 'GET', path: `/items/${sku}`, params: { sku }, key: sku, noise: (i + j) % 4 === 0 }),
            ),
          )),
        );
      }
      await waitFor(() => r.records.length >= 40, { timeoutMs: 45_000, what: '40 parity records' });
      expect(new Set(r.records.map((x) => x.correlationId))).toEqual(new Set(ids));
      expect(r.records.filter((x) => x.outcome !== 'match')).toEqual([]);
      for (const rec of r.records) expect(rec.noise).toEqual(['/body/token']);
      expect(r.runtime.comparator!.engine.noisePaths(r.flow.name)).toEqual(['/body/token']);
    });
  });
}
