import { afterEach, describe, expect, it } from 'vitest';
import { DlqHeaders, type Delivery } from '../../src/bus/types.js';
import { ErrorCodes } from '../../src/errors.js';
import { publishBusReply } from '../../src/handling/at-least-once.js';
import { createRegistry } from '../../src/metrics.js';
import { defineSaga } from '../../src/saga/model.js';
import { SagaOrchestrator } from '../../src/saga/orchestrator.js';
import { SagaProjection } from '../../src/saga/projection.js';
import { outcomeResponse, plan } from '../../src/saga/state.js';
import { SagaEventTypes, type SagaCommandData } from '../../src/saga/types.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { AgentBus } from '../../src/sdk/agent-bus.js';
import { serveSagaStep } from '../../src/sdk/saga-step.js';

/**
 * The orchestrator's failure paths on the in-memory bus, with participants written against the raw bus
 * (no dedupe) so that every send is seen: reply timeouts and re-sends, a step that never answers, a
 * compensation that keeps failing, a failure after the point of no return.
 */

const cmd = (agent: string, action: string): string => `commands.agent.${agent}.${action}`;

function saga(overrides: Record<string, unknown> = {}) {
  return defineSaga({
    name: 'order',
    steps: [
      { name: 'reserve', command: cmd('inventory', 'reserve'), compensation: cmd('inventory', 'release'), timeout: '150ms', retry: { attempts: 2, backoff: '10ms' } },
      { name: 'pay', command: cmd('payments', 'charge'), compensation: cmd('payments', 'refund'), timeout: '150ms', retry: { attempts: 2, backoff: '10ms' } },
      { name: 'ship', command: cmd('logistics', 'ship'), timeout: '150ms', retry: { attempts: 2, backoff: '10ms' } },
    ],
    pointOfNoReturn: 'pay',
    ...overrides,
  });
}

type Answer = (d: Delivery, send: number) => { status: number; body?: unknown } | undefined;

describe('SagaOrchestrator', () => {
  const closers: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  /** A participant on the raw bus: answers each send as `answer` says (undefined: no reply). Returns what it saw. */
  async function participant(bus: MemoryBus, topic: string, answer: Answer): Promise<string[]> {
    const seen: string[] = [];
    const sub = await bus.subscribe({
      group: `p.${topic}`,
      topics: [topic],
      handler: async (d) => {
        seen.push(`${(d.event.data as SagaCommandData).phase} ${d.event.id}`);
        const a = answer(d, seen.length);
        if (a) await publishBusReply(d, { bus, source: '/agents/test', consumedAt: Date.now() }, { status: a.status, body: a.body });
      },
    });
    closers.push(() => sub.close());
    return seen;
  }

  async function orchestrator(bus: MemoryBus, def = saga()) {
    const registry = createRegistry();
    const o = new SagaOrchestrator({ bus, sagas: [def], registry, tickMs: 10 });
    await o.start();
    closers.push(() => o.close());
    return { o, registry };
  }

  const ok: Answer = () => ({ status: 200, body: { ok: true } });

  it('re-sends a step whose reply did not come in time, with the same command id', async () => {
    const bus = new MemoryBus();
    await bus.start();
    const reserve = await participant(bus, cmd('inventory', 'reserve'), (_d, send) => (send === 1 ? undefined : { status: 200 }));
    await participant(bus, cmd('payments', 'charge'), ok);
    await participant(bus, cmd('logistics', 'ship'), ok);
    const { o } = await orchestrator(bus);
    const id = await o.begin('order', {});
    expect(await o.outcome('order', id, 10_000)).toMatchObject({ status: 'completed' });
    expect(reserve).toEqual([`forward ${id}.0.forward`, `forward ${id}.0.forward`]);
    const failed = o.get('order', id)!.history.find((h) => h.type === SagaEventTypes.stepFailed);
    expect(failed).toMatchObject({ applied: true, data: { step: 'reserve', attempt: 1, failure: { code: ErrorCodes.REPLY_TIMEOUT }, refused: false } });
  });

  it('takes a reply that came after its send timed out as the answer to the re-send, which the participant skips', async () => {
    const bus = new MemoryBus();
    await bus.start();
    const seen: number[] = [];
    // Like an SDK participant: the first send is handled slowly (its reply comes after the timeout), the
    // re-send has the same event id and is skipped as handled, so it gets no reply of its own.
    const sub = await bus.subscribe({
      group: 'p.reserve',
      topics: [cmd('inventory', 'reserve')],
      concurrency: 4,
      handler: async (d) => {
        seen.push(d.attempt);
        if (seen.length > 1) return;
        await new Promise((r) => setTimeout(r, 250));
        await publishBusReply(d, { bus, source: '/agents/test', consumedAt: Date.now() }, { status: 200, body: { late: true } });
      },
    });
    closers.push(() => sub.close());
    await participant(bus, cmd('payments', 'charge'), ok);
    await participant(bus, cmd('logistics', 'ship'), ok);
    const { o } = await orchestrator(bus, saga({ steps: saga().steps.map((s) => (s.name === 'reserve' ? { ...s, retry: { attempts: 2, backoff: 150 } } : s)) }));
    const id = await o.begin('order', {});
    expect(await o.outcome('order', id, 10_000)).toMatchObject({ status: 'completed', results: { reserve: { late: true } } });
    expect(seen).toHaveLength(2);
    const reserve = o.get('order', id)!.history.filter((h) => (h.data as { step?: string }).step === 'reserve').map((h) => `${h.type.replace('cutover.saga.', '')} ${(h.data as { attempt: number }).attempt}`);
    expect(reserve).toEqual(['step.sent 1', 'step.failed 1', 'step.sent 2', 'step.succeeded 2']);
  });

  it('compensates a step that never answered as well as the steps before it, last first', async () => {
    const bus = new MemoryBus();
    await bus.start();
    const inventory = await participant(bus, cmd('inventory', 'reserve'), ok);
    const release = await participant(bus, cmd('inventory', 'release'), ok);
    const charge = await participant(bus, cmd('payments', 'charge'), () => undefined);
    const refund = await participant(bus, cmd('payments', 'refund'), ok);
    const { o } = await orchestrator(bus);
    const id = await o.begin('order', {});
    const outcome = await o.outcome('order', id, 10_000);
    expect(outcome).toMatchObject({ status: 'compensated', failure: { step: 'pay', code: ErrorCodes.REPLY_TIMEOUT } });
    expect(charge).toHaveLength(2);
    expect(refund).toEqual([`compensate ${id}.1.compensate`]);
    expect(release).toEqual([`compensate ${id}.0.compensate`]);
    expect(inventory).toHaveLength(1);
    const order = o.get('order', id)!.history.filter((h) => h.type === SagaEventTypes.stepSent).map((h) => { const d = h.data as { step: string; phase: string; attempt: number }; return `${d.phase} ${d.step} ${d.attempt}`; });
    expect(order).toEqual(['forward reserve 1', 'forward pay 1', 'forward pay 2', 'compensate pay 1', 'compensate reserve 1']);
  });

  it('dead-letters a refused compensation at once and marks the saga stuck with the reason', async () => {
    const bus = new MemoryBus();
    await bus.start();
    await participant(bus, cmd('inventory', 'reserve'), ok);
    await participant(bus, cmd('inventory', 'release'), () => ({ status: 500, body: { error: 'ledger down' } }));
    await participant(bus, cmd('payments', 'charge'), () => ({ status: 402, body: { error: 'declined' } }));
    const refund = await participant(bus, cmd('payments', 'refund'), ok);
    const { o, registry } = await orchestrator(bus);
    const id = await o.begin('order', {});
    const outcome = await o.outcome('order', id, 10_000);
    expect(outcome).toMatchObject({ status: 'stuck', reason: { step: 'reserve', phase: 'compensate', code: ErrorCodes.SAGA_STEP_REFUSED, status: 500 }, failure: { step: 'pay', status: 402 } });
    expect((outcome as { reason: { message: string } }).reason.message).toMatch(/^compensation refused: /);
    expect(refund).toEqual([]); // a refused step is not undone
    const dlq = bus.topics.get(`${cmd('inventory', 'release')}.dlq`) ?? [];
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.event.id).toBe(`${id}.0.compensate`);
    expect(dlq[0]!.headers).toMatchObject({ [DlqHeaders.originalTopic]: cmd('inventory', 'release'), [DlqHeaders.errorCode]: ErrorCodes.SAGA_STEP_REFUSED, [DlqHeaders.attempts]: '1' });
    const metrics = await registry.metrics();
    expect(metrics).toContain('cutover_sagas{saga="order",status="stuck"} 1');
    expect(metrics).toContain('cutover_saga_ended_total{saga="order",outcome="stuck"} 1');
    expect(metrics).toMatch(/cutover_saga_step_duration_seconds_count\{saga="order",step="reserve",phase="forward"\} 1/);
  });

  it('only goes forward after the point of no return: a failing later step leaves the saga stuck, nothing undone', async () => {
    const bus = new MemoryBus();
    await bus.start();
    await participant(bus, cmd('inventory', 'reserve'), ok);
    const release = await participant(bus, cmd('inventory', 'release'), ok);
    await participant(bus, cmd('payments', 'charge'), ok);
    const refund = await participant(bus, cmd('payments', 'refund'), ok);
    const ship = await participant(bus, cmd('logistics', 'ship'), () => ({ status: 503 }));
    const { o } = await orchestrator(bus);
    const id = await o.begin('order', {});
    const outcome = await o.outcome('order', id, 10_000);
    expect(outcome).toMatchObject({ status: 'stuck', reason: { step: 'ship', status: 503 } });
    expect((outcome as { reason: { message: string } }).reason.message).toContain('after the point of no return (pay)');
    expect(ship).toHaveLength(1); // a refusal is an answer: not re-sent
    expect([...release, ...refund]).toEqual([]);
  });

  it('is begun once per id, and stamps its mode on every command (shadow: participants see ctx.shadow)', async () => {
    const bus = new MemoryBus();
    await bus.start();
    const agents = new AgentBus({ bus, agent: 'shop' });
    closers.push(() => agents.close());
    const shadow: boolean[] = [];
    for (const step of saga().steps) {
      await serveSagaStep(agents, { command: step.command, run: ({ ctx }) => (shadow.push(ctx.shadow), { body: {} }) });
    }
    const { o } = await orchestrator(bus);
    await o.begin('order', { n: 1 }, { id: 'shadow-1', mode: 'shadow' });
    await o.begin('order', { n: 2 }, { id: 'shadow-1', mode: 'shadow' });
    expect(await o.outcome('order', 'shadow-1', 10_000)).toMatchObject({ status: 'completed' });
    expect(shadow).toEqual([true, true, true]);
    expect(o.get('order', 'shadow-1')!.input).toEqual({ n: 1 });
    expect(o.list('order')).toHaveLength(1);
  });

  it('refuses an unknown saga name with a typed error', async () => {
    const bus = new MemoryBus();
    await bus.start();
    const { o } = await orchestrator(bus);
    await expect(o.begin('invoice', {})).rejects.toMatchObject({ code: ErrorCodes.SAGA_UNKNOWN });
  });
});

describe('SagaProjection', () => {
  it('applies an event id once, keeps a reply that came after its timeout for the re-send, records a stray reply without applying it', () => {
    const def = saga();
    const projection = new SagaProjection(def);
    const event = (type: string, id: string, data: object) => ({ specversion: '1.0' as const, id, source: '/cutover/saga', type, time: new Date().toISOString(), data: { sagaId: 's1', saga: 'order', ...data } });
    const reply = (id: string, cause: string) => ({ specversion: '1.0' as const, id, source: '/agents/x', type: 'cutover.observation.bus', correlationid: 's1', causationid: cause, data: { status: 200 } });
    projection.apply(event(SagaEventTypes.started, 's1.started', { input: { n: 1 } }));
    const sent = event(SagaEventTypes.stepSent, 's1.0.forward.1.sent', { step: 'reserve', index: 0, phase: 'forward', attempt: 1, deadline: Date.now() + 1000 });
    projection.apply(sent);
    expect(projection.apply(sent)).toBeUndefined();
    projection.apply(event(SagaEventTypes.stepFailed, 's1.0.forward.1.failed', { step: 'reserve', index: 0, phase: 'forward', attempt: 1, failure: { code: ErrorCodes.REPLY_TIMEOUT }, refused: false }));
    projection.apply(reply('r1', 's1.0.forward'));
    projection.apply(reply('r2', 's1.1.forward'));
    const state = projection.sagas.get('s1')!;
    expect(state.steps[0]!.forward).toMatchObject({ status: 'failed', attempt: 1 });
    expect([...state.replies.keys()]).toEqual(['s1.0.forward']);
    expect(plan(state, def)).toMatchObject({ action: { kind: 'send', index: 0, phase: 'forward', attempt: 2 } });
    projection.apply(event(SagaEventTypes.stepSent, 's1.0.forward.2.sent', { step: 'reserve', index: 0, phase: 'forward', attempt: 2, deadline: Date.now() + 1000 }));
    expect(plan(state, def)).toMatchObject({ action: { kind: 'resolve', index: 0, attempt: 2, reply: { status: 200 } }, at: 0 });
    expect(state.history.map((h) => [h.type, h.applied])).toEqual([
      [SagaEventTypes.started, true],
      [SagaEventTypes.stepSent, true],
      [SagaEventTypes.stepFailed, true],
      ['cutover.observation.bus', true],
      ['cutover.observation.bus', false],
      [SagaEventTypes.stepSent, true],
    ]);
    expect(projection.counts).toMatchObject({ running: 1, completed: 0 });
  });
});

describe('outcomeResponse', () => {
  const base = { sagaId: 's1', saga: 'order' };
  it('stands for the HTTP answer of the chain: last reply, refusing reply, or a typed error', () => {
    expect(outcomeResponse({ status: 'completed', ...base, result: { status: 201, body: { tracking: 't1' } }, results: {} })).toEqual({ status: 201, body: { tracking: 't1' } });
    expect(outcomeResponse({ status: 'compensated', ...base, failure: { step: 'pay', phase: 'forward', code: ErrorCodes.SAGA_STEP_REFUSED, message: 'pay answered 402', status: 402, body: { error: 'declined' } } })).toEqual({ status: 402, body: { error: 'declined' } });
    expect(outcomeResponse({ status: 'compensated', ...base, failure: { step: 'pay', phase: 'forward', code: ErrorCodes.REPLY_TIMEOUT, message: 'no reply' } })).toMatchObject({ status: 504, body: { error: { code: ErrorCodes.REPLY_TIMEOUT, step: 'pay' } } });
    expect(outcomeResponse({ status: 'compensated', ...base, failure: { step: 'pay', phase: 'forward', code: 'E_LEDGER', message: 'down' } })).toMatchObject({ status: 502, body: { error: { code: 'E_LEDGER' } } });
    expect(outcomeResponse({ status: 'stuck', ...base, reason: { step: 'reserve', phase: 'compensate', code: ErrorCodes.REPLY_TIMEOUT, message: 'compensation failed 3 times' } })).toMatchObject({ status: 500, body: { error: { code: ErrorCodes.SAGA_STUCK, step: 'reserve' } } });
  });
});
