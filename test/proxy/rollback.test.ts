import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/metrics.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { appendFlip, readFlips } from '../../src/flips/log.js';
import type { FlowMode } from '../../src/flips/mode.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC, type ParityRecord } from '../../src/parity/types.js';
import { ROLLBACK_WHO, RollbackWatcher, type RollbackAction, type RollbackFlow } from '../../proxy/rollback.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const readiness = { minSamples: 50, minParityLowerBound: 0.9, maxMissingRate: 0.05, maxDlqRate: 0.05, maxBusErrorRate: 0.05, maxBusP99Ms: null, largeEventBytes: 65536 };

function flow(name: string, rollback: RollbackFlow['rollback'] = 'auto'): RollbackFlow {
  return { name, mode: 'shadow', rollback, topic: `commands.agent.x.${name.replace(/\W/g, '')}`, match: { method: 'POST' } };
}

async function flip(bus: MemoryBus, name: string, from: FlowMode, to: FlowMode, at: Date): Promise<void> {
  await appendFlip(bus, { flow: name, from, to, reason: 'test', who: 'test', at: at.toISOString(), forced: false, report: null });
}

async function parity(bus: MemoryBus, name: string, n: number, mismatchEvery: number, start: number): Promise<void> {
  const records: ParityRecord[] = Array.from({ length: n }, (_, i) => ({
    v: 1,
    flow: name,
    correlationId: `${name}-${start}-${i}`,
    outcome: mismatchEvery > 0 && i % mismatchEvery === 0 ? 'mismatch' : 'match',
    at: new Date(start + i * 10).toISOString(),
    mode: 'canary:20',
    diffs: [],
  }));
  await bus.publish(PARITY_TOPIC, records.map((r) => ({ key: r.flow, event: buildEvent({ source: '/agents/comparator', type: PARITY_EVENT_TYPE, data: r }) })));
}

describe('RollbackWatcher', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function watch(bus: MemoryBus, flows: RollbackFlow[]): Promise<{ watcher: RollbackWatcher; actions: RollbackAction[]; registry: ReturnType<typeof createRegistry> }> {
    const actions: RollbackAction[] = [];
    const registry = createRegistry();
    const watcher = new RollbackWatcher({ bus, flows, readiness, intervalMs: 20, registry, onAction: (a) => actions.push(a) });
    await watcher.start();
    cleanups.push(() => watcher.close());
    return { watcher, actions, registry };
  }

  it('rolls a canary that turns NOT_READY back to shadow with an automatic flip naming its reasons', async () => {
    const bus = new MemoryBus();
    const t0 = Date.now() - 60_000;
    await flip(bus, 'orders.create', 'shadow', 'canary:20', new Date(t0));
    // Evidence from before the canary does not count, good or bad.
    await parity(bus, 'orders.create', 200, 2, t0 - 10_000);
    const { actions, registry, watcher } = await watch(bus, [flow('orders.create')]);
    expect(watcher.watching()).toEqual([{ flow: 'orders.create', mode: 'canary:20', since: new Date(t0).toISOString(), records: 0 }]);
    await parity(bus, 'orders.create', 60, 0, t0 + 1_000);
    await waitFor(() => watcher.watching()[0]?.records === 60, { what: 'the 60 good records read' });
    await watcher.check();
    expect(actions).toEqual([]);
    // One call in five now differs.
    await parity(bus, 'orders.create', 100, 5, t0 + 5_000);
    await waitFor(() => actions.length === 1, { what: 'the rollback' });
    expect(actions[0]).toMatchObject({ flow: 'orders.create', action: 'rolled_back', from: 'canary:20', to: 'shadow' });
    const flips = await readFlips(bus, { flow: 'orders.create' });
    const last = flips.at(-1)!;
    expect(last).toMatchObject({ from: 'canary:20', to: 'shadow', who: ROLLBACK_WHO, automatic: true, forced: false });
    expect(last.reason).toMatch(/^automatic rollback: NOT_READY in canary:20 since .*parity/);
    expect(last.report).toMatchObject({ verdict: 'NOT_READY', basis: 'canary' });
    expect(await registry.getSingleMetricAsString('cutover_sidecar_rollbacks_total')).toContain('cutover_sidecar_rollbacks_total{flow="orders.create",action="rolled_back"} 1');
    await waitFor(() => watcher.watching().length === 0, { what: 'the watch to end once the flow is back in shadow' });
  });

  it('only alerts when rollback is alert, and leaves a good canary and an unwatched flow alone', async () => {
    const bus = new MemoryBus();
    const t0 = Date.now() - 60_000;
    await flip(bus, 'a.alert', 'shadow', 'canary:20', new Date(t0));
    await flip(bus, 'b.good', 'shadow', 'canary:20', new Date(t0));
    await flip(bus, 'c.off', 'shadow', 'canary:20', new Date(t0));
    const { actions, watcher } = await watch(bus, [flow('a.alert', 'alert'), flow('b.good'), flow('c.off', 'off')]);
    await parity(bus, 'a.alert', 100, 3, t0 + 1_000);
    await parity(bus, 'b.good', 100, 0, t0 + 1_000);
    await parity(bus, 'c.off', 100, 2, t0 + 1_000);
    await waitFor(() => actions.length === 1, { what: 'the alert' });
    await waitFor(() => watcher.watching().find((w) => w.flow === 'b.good')?.records === 100, { what: 'the good canary read' });
    await watcher.check();
    // c.off is not even watched.
    expect(watcher.watching().map((w) => w.flow).sort()).toEqual(['a.alert', 'b.good']);
    expect(actions.map((a) => [a.flow, a.action])).toEqual([['a.alert', 'alerted']]);
    expect((await readFlips(bus)).filter((f) => f.automatic)).toEqual([]);
  });

  it('two replicas deciding together write one rollback', async () => {
    const bus = new MemoryBus();
    const t0 = Date.now() - 60_000;
    await flip(bus, 'orders.create', 'shadow', 'canary:20', new Date(t0));
    const one = await watch(bus, [flow('orders.create')]);
    const two = await watch(bus, [flow('orders.create')]);
    await parity(bus, 'orders.create', 100, 4, t0 + 1_000);
    await waitFor(() => one.actions.length + two.actions.length >= 1, { what: 'a rollback' });
    // Both replicas have applied the rollback flip once neither watches the flow any more.
    await waitFor(() => one.watcher.watching().length === 0 && two.watcher.watching().length === 0, { what: 'both replicas past the rollback' });
    const rollbacks = (await readFlips(bus)).filter((f) => f.automatic);
    expect(new Set(rollbacks.map((f) => f.id)).size).toBe(1);
  });
});
