import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildEvent } from '../../src/events/cloudevent.js';
import { createBus, type Bus } from '../../src/bus/index.js';
import { ErrorCodes } from '../../src/errors.js';
import { flipFlow, flowStatus, type ControlContext } from '../../proxy/flip-control.js';
import { createFlipFollower } from '../../src/flips/follower.js';
import { appendFlip, canarySince, readFlips } from '../../src/flips/log.js';
import type { FlowMode } from '../../src/flips/mode.js';
import { FLIP_TOPIC, type FlipRecord } from '../../src/flips/types.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC, type ParityRecord } from '../../src/parity/types.js';
import { readinessSchema } from '../../src/config/readiness.js';
import type { FlowConfig } from '../../src/config/flow.js';
import { waitFor } from '../helpers/wait-for.js';
import { busTargets, records, TEST_READINESS } from './fixtures.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function openBus(kind: (typeof busTargets)[number]['kind'] = 'embedded'): Promise<Bus> {
  const target = busTargets.find((t) => t.kind === kind)!;
  const { config, cleanup } = await target.setup(randomUUID().slice(0, 8));
  cleanups.push(cleanup);
  const bus = await createBus(config);
  await bus.start();
  cleanups.push(() => bus.close());
  return bus;
}

function flip(flow: string, from: FlowMode, to: FlowMode, at = new Date()): FlipRecord {
  return { flow, from, to, reason: null, who: 'test@host', at: at.toISOString(), forced: false, report: null };
}

function flowConfig(name: string, mode: FlowMode = 'direct'): FlowConfig {
  return { name, match: { method: 'POST', path: '/x' }, topic: 'commands.agent.flipper.x', schemaVersion: '1', mode } as FlowConfig;
}

async function publishParity(bus: Bus, recs: ParityRecord[]): Promise<void> {
  await bus.publish(PARITY_TOPIC, recs.map((r) => ({ key: r.flow, event: buildEvent({ source: '/test', type: PARITY_EVENT_TYPE, data: r }) })));
}

describe('flip log', () => {
  it('appends flips durably and reads them back in order, filtered by flow', async () => {
    const bus = await openBus();
    await appendFlip(bus, flip('a', 'direct', 'shadow'));
    await appendFlip(bus, flip('b', 'direct', 'shadow'));
    await appendFlip(bus, flip('a', 'shadow', 'canary:10'));
    // Not a flip: skipped by readers.
    await bus.publish(FLIP_TOPIC, [{ key: 'a', event: buildEvent({ source: '/test', type: 'something.else', data: {} }) }]);
    const all = await readFlips(bus);
    expect(all.map((f) => `${f.flow}:${f.to}`)).toEqual(['a:shadow', 'b:shadow', 'a:canary:10']);
    const a = await readFlips(bus, { flow: 'a' });
    expect(a.map((f) => f.to)).toEqual(['shadow', 'canary:10']);
    expect(a[0]).toMatchObject({ who: 'test@host', forced: false, reason: null });
    const raw = [];
    for await (const d of bus.read(FLIP_TOPIC, { from: 'start', follow: false })) raw.push(d);
    expect(raw[0]!.event).toMatchObject({ type: 'cutover.flip.v1', source: '/cutover/control', subject: 'a' });
    expect(raw[0]!.key).toBe('a');
  });

  it('rejects an invalid record before publishing', async () => {
    const bus = await openBus();
    await expect(appendFlip(bus, { ...flip('a', 'direct', 'shadow'), to: 'canary:0' as FlowMode })).rejects.toMatchObject({ code: ErrorCodes.EVENT_INVALID });
    expect(await readFlips(bus)).toEqual([]);
  });

  it('canarySince is when the trailing run of canary modes began', () => {
    const entries = [flip('a', 'direct', 'shadow', new Date(1000)), flip('a', 'shadow', 'canary:5', new Date(2000)), flip('a', 'canary:5', 'canary:20', new Date(3000))].map((f, i) => ({ ...f, id: String(i), position: String(i) }));
    expect(canarySince(entries, 'a')).toBe(new Date(2000).toISOString());
    expect(canarySince(entries.slice(0, 1), 'a')).toBeNull();
  });
});

describe('flipFlow on a real bus', () => {
  function ctx(bus: Bus, flows: FlowConfig[]): ControlContext {
    return { bus, flows, readiness: readinessSchema.parse(TEST_READINESS) };
  }

  it('reads the current mode from the log, refuses NOT_READY, forces with a reason, rolls back at once', async () => {
    const bus = await openBus();
    const c = ctx(bus, [flowConfig('pay.charge', 'shadow')]);
    await publishParity(bus, records('pay.charge', 50, { mismatches: 25 }));
    await expect(flipFlow(c, { flow: 'pay.charge', to: 'canary:10' })).rejects.toMatchObject({ code: ErrorCodes.FLIP_REFUSED });
    await expect(flipFlow(c, { flow: 'nope', to: 'bus' })).rejects.toMatchObject({ code: ErrorCodes.FLOW_UNKNOWN });
    const forced = await flipFlow(c, { flow: 'pay.charge', to: 'canary:10', force: true, reason: 'demo', who: 'alice' });
    expect(forced).toMatchObject({ action: 'flip', record: { from: 'shadow', to: 'canary:10', forced: true, reason: 'demo', who: 'alice', report: { verdict: 'NOT_READY', samples: 50 } } });
    // The log, not the config, now says canary:10.
    expect(await flipFlow(c, { flow: 'pay.charge', to: 'canary:10' })).toMatchObject({ action: 'noop', mode: 'canary:10' });
    const back = await flipFlow(c, { flow: 'pay.charge', to: 'direct' });
    expect(back).toMatchObject({ action: 'flip', record: { from: 'canary:10', to: 'direct', forced: false, report: null } });
    const status = await flowStatus(c);
    expect(status.flows[0]).toMatchObject({ flow: 'pay.charge', mode: 'direct', lastFlip: { to: 'direct' } });
    expect(status.report.flows[0]!.mode).toBe('direct');
  });

  it('judges canary -> bus on canary records since the flow entered canary only', async () => {
    const bus = await openBus();
    const c = ctx(bus, [flowConfig('ship.label', 'shadow')]);
    // Good shadow evidence gets the flow into canary...
    await publishParity(bus, records('ship.label', 40, { at: new Date(Date.now() - 60_000) }));
    expect(await flipFlow(c, { flow: 'ship.label', to: 'canary:10' })).toMatchObject({ action: 'flip', record: { report: { verdict: 'READY', basis: 'all' } } });
    // ...but to bus only the canary's own calls count: none yet.
    const none = flipFlow(c, { flow: 'ship.label', to: 'bus' });
    await expect(none).rejects.toMatchObject({ code: ErrorCodes.FLIP_REFUSED });
    await expect(none).rejects.toThrow(/canary's own records/);
    // Bad canary records refuse it; canary records made before the flip do not count.
    await publishParity(bus, records('ship.label', 30, { mode: 'canary:10', mismatches: 30, at: new Date(Date.now() - 120_000) }));
    await publishParity(bus, records('ship.label', 30, { mode: 'canary:10' }));
    const ok = await flipFlow(c, { flow: 'ship.label', to: 'bus' });
    expect(ok).toMatchObject({ action: 'flip', record: { to: 'bus', forced: false, report: { verdict: 'READY', basis: 'canary', samples: 30, parity: 1 } } });
  });
});

describe('flip follower', () => {
  it('applies the existing log in order before start() resolves, skips unknown flows, then follows', async () => {
    const bus = await openBus();
    await appendFlip(bus, flip('a', 'direct', 'shadow'));
    await appendFlip(bus, flip('ghost', 'direct', 'bus'));
    await appendFlip(bus, flip('a', 'shadow', 'canary:10'));
    await appendFlip(bus, flip('b', 'direct', 'shadow'));
    const modes = new Map<string, FlowMode>([['a', 'direct'], ['b', 'direct']]);
    const seen: string[] = [];
    const table = { get: (n: string) => modes.get(n), setMode: (n: string, m: FlowMode) => (seen.push(`${n}:${m}`), modes.set(n, m)) };
    const follower = createFlipFollower({ bus, flows: table });
    cleanups.push(() => follower.close());
    await follower.start();
    expect(seen).toEqual(['a:shadow', 'a:canary:10', 'b:shadow']);
    expect(follower.applied).toBe(3);
    await appendFlip(bus, flip('a', 'canary:10', 'direct'));
    await waitFor(() => modes.get('a') === 'direct', { what: 'a followed to direct' });
    expect(seen.at(-1)).toBe('a:direct');
    await follower.close();
    await follower.close();
  });

  it('logs a flip of a flow it does not serve once, at debug level (normal with several sidecars), never as a warning', async () => {
    const bus = await openBus();
    await appendFlip(bus, flip('ghost', 'direct', 'shadow'));
    await appendFlip(bus, flip('ghost', 'shadow', 'bus'));
    await appendFlip(bus, flip('a', 'direct', 'shadow'));
    const lines: Array<{ level: number; msg: string; flow?: string }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const modes = new Map<string, FlowMode>([['a', 'direct']]);
    const follower = createFlipFollower({ bus, logger, flows: { get: (n) => modes.get(n), setMode: (n, m) => void modes.set(n, m) } });
    cleanups.push(() => follower.close());
    await follower.start();
    expect(modes.get('a')).toBe('shadow');
    const skipped = lines.filter((l) => l.flow === 'ghost');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ level: pino.levels.values.debug, msg: 'flip of a flow this sidecar does not serve: skipped' });
    expect(lines.filter((l) => l.level >= pino.levels.values.warn!)).toEqual([]);
  });

  it('starts on an empty log', async () => {
    const bus = await openBus();
    const follower = createFlipFollower({ bus, flows: { get: () => undefined, setMode: () => undefined } });
    cleanups.push(() => follower.close());
    await follower.start();
    expect(follower.applied).toBe(0);
  });
});
