import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isNonRetriable } from '../../src/bus/attempts.js';
import type { Delivery } from '../../src/bus/types.js';
import { CutoverError, ErrorCodes } from '../../src/errors.js';
import { ObservationTypes, type BusReplyData } from '../../src/events/wire.js';
import { AtLeastOnce, publishBusReply, type HandlingOutcome, type Work } from '../../src/handling/at-least-once.js';
import { MemoryDedupeStore } from '../../src/handling/dedupe/memory.js';
import { MemoryBus } from '../helpers/memory-bus.js';

const REPLIES = 'test.replies';

function delivery(id: string, attempt = 1): Delivery {
  return {
    topic: 'commands.agent.test.run',
    key: null,
    event: { specversion: '1.0', id, source: '/agents/caller', type: 'test.run', correlationid: id, replyto: REPLIES, cutoverflow: 'test.run' },
    headers: {},
    position: '0',
    publishedAt: Date.now(),
    attempt,
  };
}

/** A runner over a memory bus whose work answers `{ n }`, counting runs and outcomes. */
function setup() {
  const bus = new MemoryBus();
  const dedupe = new MemoryDedupeStore();
  const outcomes: HandlingOutcome[] = [];
  const runner = new AtLeastOnce<{ n: number }>({ dedupe, scope: `test.${randomUUID()}`, leaseMs: 1_000, onOutcome: (o) => outcomes.push(o) });
  let runs = 0;
  const work = (d: Delivery, overrides: Partial<Work<{ n: number }>> = {}): Work<{ n: number }> => ({
    maxAttempts: 3,
    run: async () => ({ n: ++runs }),
    reply: (r) => publishBusReply(d, { bus, source: '/agents/test', consumedAt: Date.now() }, { status: 200, body: r }),
    replyError: (err) => publishBusReply(d, { bus, source: '/agents/test', consumedAt: Date.now() }, { error: { code: (err as CutoverError).code ?? 'X' }, dlq: true }),
    ...overrides,
  });
  const replies = () => bus.messages(REPLIES).map((m) => m.event.data as BusReplyData);
  return { bus, runner, work, outcomes, replies, runs: () => runs };
}

describe('AtLeastOnce (memory bus)', () => {
  it('runs the work once and publishes its reply; a duplicate redelivery is not run again', async () => {
    const t = setup();
    const d = delivery(randomUUID());
    await t.runner.handle(d, t.work(d));
    await t.runner.handle({ ...d, attempt: 2 }, t.work(d));
    expect(t.runs()).toBe(1);
    expect(t.replies()).toHaveLength(1);
    expect(t.bus.messages(REPLIES)[0]!.event).toMatchObject({ type: ObservationTypes.bus, correlationid: d.event.id, source: '/agents/test' });
    expect(t.replies()[0]).toMatchObject({ status: 200, body: { n: 1 }, attempt: 1 });
    expect(t.outcomes).toEqual(['handled', 'duplicate']);
  });

  it('retries a reply that failed to publish from memory, without running the work again', async () => {
    const t = setup();
    const d = delivery(randomUUID());
    t.bus.down();
    await expect(t.runner.handle(d, t.work(d))).rejects.toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE });
    t.bus.up();
    await t.runner.handle({ ...d, attempt: 2 }, t.work(d));
    expect(t.runs()).toBe(1);
    expect(t.replies()).toEqual([expect.objectContaining({ body: { n: 1 } })]);
    expect(t.outcomes).toEqual(['handled']);
  });

  it('releases the claim on a retriable failure so that the retry runs the work again', async () => {
    const t = setup();
    const d = delivery(randomUUID());
    let fail = true;
    const flaky = (one: Delivery) =>
      t.work(one, {
        run: async () => {
          if (fail) throw new CutoverError(ErrorCodes.HANDLER_FAILED, 'not yet', { retriable: true });
          return { n: 7 };
        },
      });
    await expect(t.runner.handle(d, flaky(d))).rejects.toMatchObject({ code: ErrorCodes.HANDLER_FAILED });
    expect(t.replies()).toEqual([]);
    fail = false;
    const retry = { ...d, attempt: 2 };
    await t.runner.handle(retry, flaky(retry));
    expect(t.replies()).toEqual([expect.objectContaining({ status: 200, body: { n: 7 }, attempt: 2 })]);
    expect(t.outcomes).toEqual(['retry', 'handled']);
  });

  it('on the last attempt publishes the error reply (dlq) before the failure reaches the bus', async () => {
    const t = setup();
    const d = delivery(randomUUID(), 3);
    const failing = t.work(d, { run: async () => Promise.reject(new CutoverError(ErrorCodes.HANDLER_FAILED, 'broken', { retriable: true })) });
    const err = await t.runner.handle(d, failing).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.HANDLER_FAILED });
    expect(isNonRetriable(err)).toBe(false);
    expect(t.replies()).toEqual([expect.objectContaining({ error: { code: ErrorCodes.HANDLER_FAILED }, dlq: true, attempt: 3 })]);
    expect(t.outcomes).toEqual(['dead-letter']);
  });

  it('gives up at once on a failure not worth retrying, marking it nonRetriable for the bus', async () => {
    const t = setup();
    const d = delivery(randomUUID(), 1);
    const invalid = t.work(d, {
      run: async () => Promise.reject(new CutoverError(ErrorCodes.EVENT_INVALID, 'cannot replay')),
      retriable: (e) => (e as CutoverError).retriable,
    });
    const err = await t.runner.handle(d, invalid).catch((e: unknown) => e);
    expect(isNonRetriable(err)).toBe(true);
    expect(t.replies()).toEqual([expect.objectContaining({ error: { code: ErrorCodes.EVENT_INVALID }, dlq: true })]);
  });

  it('marks the id done only after a successful run: a work that replies nothing is still not run twice', async () => {
    const t = setup();
    const d = delivery(randomUUID());
    let runs = 0;
    const silent = t.work(d, { run: async () => void runs++ });
    await t.runner.handle(d, silent);
    await t.runner.handle(d, silent);
    expect(runs).toBe(1);
    expect(t.replies()).toEqual([]);
  });
});
