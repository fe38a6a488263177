import { describe, expect, it } from 'vitest';
import { deliverWithRetry, KeyedScheduler } from '../../src/bus/attempts.js';
import { ErrorCodes } from '../../src/errors.js';
import { backoffDelay, DEFAULT_BACKOFF } from '../../src/bus/retry.js';
import { DlqHeaders, type BusMessage, type Delivery } from '../../src/bus/types.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { silentLogger } from '../../src/logger.js';

function delivery(attempt = 1): Delivery {
  return { topic: 't.x', key: 'k', event: buildEvent({ source: '/s', type: 't' }), headers: { a: 'b' }, position: '1', publishedAt: Date.now(), attempt };
}

describe('KeyedScheduler', () => {
  it('runs one task per key at a time, in order, and different keys in parallel up to the limit', async () => {
    const s = new KeyedScheduler(2);
    const log: string[] = [];
    let running = 0;
    let peak = 0;
    const task = (name: string) => async () => {
      running += 1;
      peak = Math.max(peak, running);
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`end ${name}`);
      running -= 1;
    };
    const all = [s.push('a', task('a1')), s.push('a', task('a2')), s.push('b', task('b1')), s.push('c', task('c1')), s.push(null, task('n1'))];
    await Promise.all(all);
    await s.idle();
    expect(peak).toBe(2);
    expect(log.indexOf('end a1')).toBeLessThan(log.indexOf('start a2'));
    expect(s.size).toBe(0);
  });

  it('settles each push with its own task outcome and keeps going after a failure', async () => {
    const s = new KeyedScheduler(1);
    const failed = s.push('a', async () => {
      throw new Error('x');
    });
    const ok = s.push('a', async () => undefined);
    await expect(failed).rejects.toThrow('x');
    await expect(ok).resolves.toBeUndefined();
  });
});

describe('deliverWithRetry', () => {
  const policy = (handler: (d: Delivery) => Promise<void>, dead: BusMessage[], signal = new AbortController().signal) => ({
    handler,
    maxAttempts: 3,
    backoff: { initialMs: 1, maxMs: 2, multiplier: 2 },
    group: 'g',
    logger: silentLogger(),
    deadLetter: async (_topic: string, m: BusMessage) => void dead.push(m),
    signal,
  });

  it('retries until the handler succeeds', async () => {
    const seen: number[] = [];
    const outcome = await deliverWithRetry(delivery(), policy(async (d) => {
      seen.push(d.attempt);
      if (d.attempt < 2) throw new Error('once');
    }, []));
    expect(outcome).toBe('handled');
    expect(seen).toEqual([1, 2]);
  });

  it('dead-letters after maxAttempts with the error and attempt count, counting from a redelivered attempt', async () => {
    const dead: BusMessage[] = [];
    const seen: number[] = [];
    const outcome = await deliverWithRetry(delivery(2), policy(async (d) => {
      seen.push(d.attempt);
      throw Object.assign(new Error('nope'), { code: 'E_X' });
    }, dead));
    expect(outcome).toBe('dead-lettered');
    expect(seen).toEqual([2, 3]);
    expect(dead[0]!.headers).toMatchObject({ a: 'b', [DlqHeaders.attempts]: '3', [DlqHeaders.errorCode]: 'E_X', [DlqHeaders.errorMessage]: 'nope', [DlqHeaders.originalTopic]: 't.x', [DlqHeaders.group]: 'g' });
  });

  it('sends a message delivered more than maxAttempts times straight to the DLQ without running the handler', async () => {
    const dead: BusMessage[] = [];
    let ran = 0;
    const outcome = await deliverWithRetry(delivery(4), policy(async () => void ran++, dead));
    expect(outcome).toBe('dead-lettered');
    expect(ran).toBe(0);
    expect(dead[0]!.headers).toMatchObject({ [DlqHeaders.attempts]: '4', [DlqHeaders.errorCode]: ErrorCodes.HANDLER_FAILED });
    expect(dead[0]!.headers![DlqHeaders.errorMessage]).toMatch(/delivered 4 times without being acknowledged/);
  });

  it('gives up without acking when the subscription closes during backoff', async () => {
    const ac = new AbortController();
    const outcome = await deliverWithRetry(delivery(), {
      ...policy(async () => {
        ac.abort();
        throw new Error('x');
      }, []),
      signal: ac.signal,
    });
    expect(outcome).toBe('aborted');
  });

  it('propagates a failure to dead-letter so the message is not acked', async () => {
    await expect(deliverWithRetry(delivery(3), { ...policy(async () => { throw new Error('x'); }, []), deadLetter: async () => { throw new Error('bus down'); } })).rejects.toThrow('bus down');
  });

  it('grows backoff exponentially with jitter inside [nominal/2, nominal]', () => {
    expect(backoffDelay(DEFAULT_BACKOFF, 2, () => 0)).toBe(50);
    expect(backoffDelay(DEFAULT_BACKOFF, 2, () => 1)).toBe(100);
    expect(backoffDelay(DEFAULT_BACKOFF, 4, () => 1)).toBe(400);
    expect(backoffDelay(DEFAULT_BACKOFF, 30, () => 1)).toBe(DEFAULT_BACKOFF.maxMs);
  });
});
