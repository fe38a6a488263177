import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { BusMessage } from '../../src/bus/types.js';
import { BusError, ErrorCodes } from '../../src/errors.js';
import { PARITY_EVENT_TYPE, type ParityRecord } from '../../src/parity/types.js';
import { Comparator } from '../../shadow/comparator.js';
import { ObservationTypes, type BusReplyData } from '../../src/events/wire.js';
import { waitFor } from '../helpers/wait-for.js';
import { MemoryBus } from '../helpers/memory-bus.js';

const OBS = 'test.observations';
/** Where the sidecars put inventory.reserve's observations: `<observationsTopic>.<flow>`. */
const FLOW_OBS = `${OBS}.inventory.reserve`;
const PARITY = 'test.parity';

function observation(type: string, id: string, data: BusReplyData, flow = 'inventory.reserve'): BusMessage {
  return {
    key: id,
    event: { specversion: '1.0', id: `${type}:${id}`, source: '/agents/inventory', type, correlationid: id, cutoverflow: flow, cutovermode: 'shadow', data },
  };
}

describe('Comparator (memory bus, fake clock)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup(options: { window?: number; maxOpenPairs?: number } = {}) {
    let now = 1_000_000;
    const bus = new MemoryBus(() => now);
    const registry = new Registry();
    const c = new Comparator({ bus, observationsTopic: OBS, parityTopic: PARITY, window: options.window ?? 30_000, maxOpenPairs: options.maxOpenPairs ?? 100, now: () => now, sweepInterval: 0, registry, flows: { 'inventory.reserve': { compare: { ignore: ['/body/at'] } } } });
    await c.start();
    cleanups.push(() => c.close());
    const records = (): ParityRecord[] => bus.messages(PARITY).map((d) => d.event.data as ParityRecord);
    return { bus, c, records, registry, advance: (ms: number) => (now += ms) };
  }

  it('publishes one parity record per pair on the parity topic, keyed by flow', async () => {
    const { bus, records } = await setup();
    await bus.publish(FLOW_OBS, [observation(ObservationTypes.direct, 'c1', { status: 200, body: { a: 1, at: 1 } }), observation(ObservationTypes.bus, 'c1', { status: 200, body: { a: 1, at: 2 } })]);
    await bus.publish(FLOW_OBS, [observation(ObservationTypes.direct, 'c2', { status: 200, body: { a: 1 } }), observation(ObservationTypes.bus, 'c2', { status: 201, body: { a: 1 } })]);
    await waitFor(() => records().length === 2, { what: 'two parity records' });
    expect(records().map((r) => [r.correlationId, r.outcome])).toEqual([
      ['c1', 'match'],
      ['c2', 'mismatch'],
    ]);
    const m = bus.messages(PARITY)[1]!;
    expect(m.key).toBe('inventory.reserve');
    expect(m.event.type).toBe(PARITY_EVENT_TYPE);
    expect(records()[1]!.diffs).toEqual([{ path: '/status', kind: 'changed', direct: 200, bus: 201 }]);
  });

  it('records missing_bus and missing_direct only once the window has passed (injected clock)', async () => {
    const { bus, c, records, advance } = await setup({ window: 5_000 });
    await bus.publish(FLOW_OBS, [observation(ObservationTypes.direct, 'lonely-direct', { status: 200, body: {} })]);
    advance(1_000);
    await bus.publish(FLOW_OBS, [observation(ObservationTypes.bus, 'lonely-bus', { status: 200, body: {} })]);
    await waitFor(() => c.stats().open === 2, { what: 'two open pairs' });
    advance(3_999);
    await c.sweep();
    expect(records()).toEqual([]);
    advance(1);
    await c.sweep();
    expect(records().map((r) => [r.correlationId, r.outcome])).toEqual([['lonely-direct', 'missing_bus']]);
    advance(1_000);
    await c.sweep();
    expect(records().map((r) => r.outcome)).toEqual(['missing_bus', 'missing_direct']);
  });

  it('bounds open pairs and counts the overflow', async () => {
    const { bus, c, registry } = await setup({ maxOpenPairs: 10 });
    await bus.publish(FLOW_OBS, Array.from({ length: 25 }, (_, i) => observation(ObservationTypes.direct, `c${i}`, { status: 200 })));
    await waitFor(() => c.stats().overflow === 15, { what: 'overflow count' });
    expect(c.stats().open).toBe(10);
    expect(await registry.getSingleMetricAsString('cutover_comparator_overflow_total')).toMatch(/ 15$/m);
  });

  it('a second comparator on the same registry (a restarted shadow side) takes over the gauges', async () => {
    const first = await setup({ maxOpenPairs: 10 });
    await first.bus.publish(FLOW_OBS, Array.from({ length: 12 }, (_, i) => observation(ObservationTypes.direct, `a${i}`, { status: 200 })));
    await waitFor(() => first.c.stats().overflow === 2, { what: 'first overflow' });
    await first.c.close();
    const bus = new MemoryBus();
    const second = new Comparator({ bus, observationsTopic: OBS, parityTopic: PARITY, maxOpenPairs: 10, sweepInterval: 0, registry: first.registry });
    await second.start();
    cleanups.push(() => second.close());
    await bus.publish(FLOW_OBS, [observation(ObservationTypes.direct, 'b1', { status: 200 })]);
    await waitFor(() => second.stats().open === 1, { what: 'one open pair on the second comparator' });
    expect(await first.registry.getSingleMetricAsString('cutover_comparator_open_pairs')).toMatch(/ 1$/m);
    expect(await first.registry.getSingleMetricAsString('cutover_comparator_overflow_total')).toMatch(/ 0$/m);
  });

  it('skips events that are not observations', async () => {
    const { bus, c } = await setup();
    await bus.publish(FLOW_OBS, [{ key: null, event: { specversion: '1.0', id: 'x', source: '/s', type: 'something.else' } }]);
    await waitFor(() => c.stats().ignored === 1);
  });

  it('keeps records while the bus refuses them and publishes them once it is back', async () => {
    const { bus, c, records } = await setup();
    bus.failPublish = new BusError(ErrorCodes.BUS_UNAVAILABLE, 'down', { retriable: true });
    void c.handle({ topic: FLOW_OBS, key: 'c1', headers: {}, position: '1', publishedAt: 0, attempt: 1, event: observation(ObservationTypes.direct, 'c1', { status: 200 }).event });
    const acked = c.handle({ topic: FLOW_OBS, key: 'c1', headers: {}, position: '2', publishedAt: 0, attempt: 1, event: observation(ObservationTypes.bus, 'c1', { status: 200 }).event });
    let done = false;
    void acked.then(() => (done = true));
    await waitFor(() => c.stats().queued === 1);
    expect(done).toBe(false);
    bus.failPublish = undefined;
    await waitFor(() => done, { what: 'the observation to be acknowledged after the record is published' });
    expect(records().map((r) => r.outcome)).toEqual(['match']);
  });
  it('handle() never throws: a failure comes back as a rejected promise, which the subscription retries', async () => {
    const { c } = await setup();
    const failure = new Error('engine failed');
    c.engine.ingest = () => {
      throw failure;
    };
    const d = { topic: FLOW_OBS, headers: {}, position: '0', publishedAt: 1_000_000, attempt: 1, ...observation(ObservationTypes.direct, 'c1', { status: 200, body: {} }) };
    let result: Promise<void> | undefined;
    expect(() => (result = c.handle(d))).not.toThrow();
    await expect(result).rejects.toBe(failure);
  });
});

describe('Comparator: per-flow observation topics', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function start(options: { flows?: string[]; scope?: 'flows' | 'all'; sharedTopic?: boolean }) {
    const bus = new MemoryBus();
    const c = new Comparator({
      bus,
      observationsTopic: OBS,
      parityTopic: PARITY,
      sweepInterval: 0,
      flows: Object.fromEntries((options.flows ?? []).map((f) => [f, {}])),
      ...(options.scope ? { scope: options.scope } : {}),
      ...(options.sharedTopic !== undefined ? { sharedTopic: options.sharedTopic } : {}),
    });
    await c.start();
    cleanups.push(() => c.close());
    const records = (): ParityRecord[] => bus.messages(PARITY).map((d) => d.event.data as ParityRecord);
    return { bus, c, records };
  }
  const pair = (id: string, flow: string): BusMessage[] => [observation(ObservationTypes.direct, id, { status: 200 }, flow), observation(ObservationTypes.bus, id, { status: 200 }, flow)];

  it('each flow group reads only its flow topic: the other flows and the shared topic never reach it', async () => {
    const { bus, c, records } = await start({ flows: ['inventory.reserve', 'pricing.quote'] });
    expect(c.groups).toEqual(['cutover.comparator.inventory.reserve', 'cutover.comparator.pricing.quote']);
    await bus.publish(`${OBS}.inventory.reserve`, pair('r1', 'inventory.reserve'));
    await bus.publish(`${OBS}.pricing.quote`, pair('q1', 'pricing.quote'));
    // A flow this comparator has no rules for, and an older sidecar on the shared topic: not read at all.
    await bus.publish(`${OBS}.shipping.book`, pair('s1', 'shipping.book'));
    await bus.publish(OBS, pair('old', 'inventory.reserve'));
    await waitFor(() => records().length === 2, { what: 'two parity records' });
    expect(records().map((r) => [r.flow, r.correlationId]).sort()).toEqual([
      ['inventory.reserve', 'r1'],
      ['pricing.quote', 'q1'],
    ]);
    expect(c.stats()).toMatchObject({ foreign: 0, open: 0, ignored: 0 });
  });

  it('skips an observation on a flow topic that names another flow', async () => {
    const { bus, c, records } = await start({ flows: ['inventory.reserve'] });
    await bus.publish(`${OBS}.inventory.reserve`, [...pair('x1', 'pricing.quote'), ...pair('r1', 'inventory.reserve')]);
    await waitFor(() => records().length === 1 && c.stats().foreign === 2, { what: 'one record, two skipped' });
    expect(records()[0]!.correlationId).toBe('r1');
  });

  it('sharedTopic: also reads the shared topic during a rolling upgrade, skipping the other flows there', async () => {
    const { bus, c, records } = await start({ flows: ['inventory.reserve'], sharedTopic: true });
    await bus.publish(OBS, [...pair('old', 'inventory.reserve'), ...pair('other', 'pricing.quote')]);
    await bus.publish(`${OBS}.inventory.reserve`, pair('new', 'inventory.reserve'));
    await waitFor(() => records().length === 2 && c.stats().foreign === 2, { what: 'two records, two foreign' });
    expect(records().map((r) => r.correlationId).sort()).toEqual(['new', 'old']);
  });

  it("scope 'all' reads every flow topic below the base, not the shared topic unless asked, nor another installation's topics below it", async () => {
    const { bus, c, records } = await start({ scope: 'all' });
    expect(c.groups).toEqual(['cutover.comparator']);
    await bus.publish(OBS, pair('old', 'inventory.reserve'));
    await bus.publish(`${OBS}.inventory.reserve`, pair('r1', 'inventory.reserve'));
    await bus.publish(`${OBS}.shop.checkout.v2`, pair('c1', 'shop.checkout.v2'));
    // observationsTopic test.observations.staging of another installation: its flow topics lie below ours.
    await bus.publish(`${OBS}.staging.inventory.reserve`, pair('st1', 'inventory.reserve'));
    await waitFor(() => records().length === 2 && c.stats().foreign === 2, { what: 'two records, the other installation skipped' });
    expect(records().map((r) => r.correlationId).sort()).toEqual(['c1', 'r1']);
    expect(c.stats().open).toBe(0);
  });
});

describe('Comparator: acknowledgement and the queue bound', () => {
  /** A bus whose parity publishes wait until the test lets them through (or fails them). */
  function gatedBus() {
    const published: BusMessage[][] = [];
    const pending: Array<{ messages: BusMessage[]; pass: () => void; fail: (e: unknown) => void }> = [];
    const bus = new MemoryBus();
    bus.publish = (_topic: string, messages: readonly BusMessage[]) =>
      new Promise<void>((resolve, reject) => {
        pending.push({
          messages: [...messages],
          pass: () => {
            published.push([...messages]);
            resolve();
          },
          fail: reject,
        });
      });
    return { bus, published, pending };
  }
  const ids = (ms: readonly BusMessage[]): string[] => ms.map((m) => (m.event.data as ParityRecord).correlationId);

  function comparator(bus: MemoryBus, options: { batchSize?: number; maxQueued?: number } = {}) {
    const c = new Comparator({ bus, observationsTopic: OBS, parityTopic: PARITY, sweepInterval: 0, ...options });
    /** Handles both sides of call `id`; resolves with the acknowledgement of the side that completed the pair. */
    const pair = (id: string): { acked: () => boolean; promise: Promise<void> } => {
      void c.handle({ topic: FLOW_OBS, key: id, headers: {}, position: '0', publishedAt: 0, attempt: 1, event: observation(ObservationTypes.direct, id, { status: 200 }).event });
      const promise = c.handle({ topic: FLOW_OBS, key: id, headers: {}, position: '1', publishedAt: 0, attempt: 1, event: observation(ObservationTypes.bus, id, { status: 200 }).event });
      let acked = false;
      void promise.then(() => (acked = true));
      return { acked: () => acked, promise };
    };
    return { c, pair };
  }

  it('acknowledges an observation once its record is on the bus: records queued during a publish go in a later batch and are acknowledged together', async () => {
    const { bus, published, pending } = gatedBus();
    const { c, pair } = comparator(bus, { batchSize: 2 });
    const first = pair('c1');
    await waitFor(() => pending.length === 1, { what: 'the first batch on its way' });
    const later = [pair('c2'), pair('c3'), pair('c4')];
    await new Promise((r) => setImmediate(r));
    expect(first.acked()).toBe(false);
    pending.shift()!.pass();
    await first.promise;
    expect(ids(published[0]!)).toEqual(['c1']);
    await waitFor(() => pending.length === 1, { what: 'the second batch' });
    expect(ids(pending[0]!.messages)).toEqual(['c2', 'c3']);
    pending.shift()!.pass();
    // Queued in one go, they are acknowledged once the last of them (c4, in the third batch) is published.
    await waitFor(() => pending.length === 1, { what: 'the third batch' });
    expect(later.map((p) => p.acked())).toEqual([false, false, false]);
    pending.shift()!.pass();
    await Promise.all(later.map((p) => p.promise));
    expect(published.flatMap(ids)).toEqual(['c1', 'c2', 'c3', 'c4']);
    expect(c.stats()).toMatchObject({ queued: 0, dropped: 0 });
    void c.close();
  });

  it('when full, drops the oldest waiting record (counted), never one being published, and loses nothing else', async () => {
    const { bus, published, pending } = gatedBus();
    const { c, pair } = comparator(bus, { batchSize: 2, maxQueued: 2 });
    const calls = [pair('c1'), pair('c2')];
    await waitFor(() => pending.length === 1, { what: 'the first batch on its way' });
    expect(ids(pending[0]!.messages)).toEqual(['c1', 'c2']);
    // The bound is reached by the batch in flight: each newer record pushes the oldest waiting one out.
    calls.push(pair('c3'), pair('c4'), pair('c5'));
    expect(c.stats()).toMatchObject({ dropped: 2, queued: 3 });
    await new Promise((r) => setImmediate(r));
    expect(calls.map((p) => p.acked())).toEqual([false, false, false, false, false]);
    // The batch fails: back at the head, and the oldest beyond the bound goes (c1).
    pending.shift()!.fail(new BusError(ErrorCodes.BUS_UNAVAILABLE, 'down', { retriable: true }));
    await waitFor(() => c.stats().dropped === 3, { what: 'the oldest dropped' });
    expect(c.stats().queued).toBe(2);
    await waitFor(() => pending.length === 1, { what: 'the retry' });
    expect(ids(pending[0]!.messages)).toEqual(['c2', 'c5']);
    pending.shift()!.pass();
    await Promise.all(calls.map((p) => p.promise));
    expect(published.flatMap(ids)).toEqual(['c2', 'c5']);
    expect(c.stats()).toMatchObject({ dropped: 3, queued: 0 });
    void c.close();
  });
});
