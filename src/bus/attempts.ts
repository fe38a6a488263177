import { sleep } from '../async.js';
import { BusError, describeError, ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';
import { backoffDelay, DEFAULT_MAX_ATTEMPTS, resolveBackoff, type ResolvedBackoff } from './retry.js';
import { DlqHeaders, type BusMessage, type Delivery, type Handler, type SubscribeOptions } from './types.js';
import { dlqTopic } from './topics.js';

/** The headers of a dead letter: the original ones plus where it came from, why it failed and when. */
export function dlqHeaders(original: Record<string, string>, failure: { topic: string; error: unknown; attempts: number; group: string }): Record<string, string> {
  const { code, message } = describeError(failure.error);
  return {
    ...original,
    [DlqHeaders.originalTopic]: failure.topic,
    [DlqHeaders.errorCode]: code,
    [DlqHeaders.errorMessage]: message.slice(0, 2_000),
    [DlqHeaders.attempts]: String(failure.attempts),
    [DlqHeaders.failedAt]: new Date().toISOString(),
    [DlqHeaders.group]: failure.group,
  };
}

export type DeliveryOutcome = 'handled' | 'dead-lettered' | 'aborted';

export interface RetryPolicy {
  handler: Handler;
  maxAttempts: number;
  backoff: ResolvedBackoff;
  group: string;
  logger: Logger;
  /** Publishes the dead letter; must resolve only once the bus holds it. */
  deadLetter: (topic: string, message: BusMessage) => Promise<void>;
  /** Aborts waiting between attempts when the subscription closes. */
  signal: AbortSignal;
}

/** The retry policy a subscription's options ask for (without the abort signal, which the adapter owns). */
export function retryPolicy(options: SubscribeOptions, logger: Logger, deadLetter: RetryPolicy['deadLetter']): Omit<RetryPolicy, 'signal'> {
  return { handler: options.handler, maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, backoff: resolveBackoff(options.backoff), group: options.group, logger, deadLetter };
}

/**
 * Runs one delivery through the handler with retries and backoff, shared by every adapter so the three
 * buses behave alike. `delivery.attempt` on entry is the attempt this delivery starts at (above 1 when
 * the bus redelivered it after a crash). Returns:
 * - `handled`: ack it;
 * - `dead-lettered`: the DLQ holds it now, ack it;
 * - `aborted`: the subscription closed between attempts; do not ack, the bus will redeliver.
 * Throws only when the dead letter itself could not be published (do not ack either).
 */
export async function deliverWithRetry(delivery: Delivery, policy: RetryPolicy): Promise<DeliveryOutcome> {
  const deadLetter = async (failure: unknown, attempt: number): Promise<'dead-lettered'> => {
    policy.logger.child({ eventId: delivery.event.id, topic: delivery.topic, attempt }).warn({ err: failure }, 'handler failed on its last attempt; moving the message to the DLQ');
    await policy.deadLetter(dlqTopic(delivery.topic), {
      key: delivery.key,
      event: delivery.event,
      headers: dlqHeaders(delivery.headers, { topic: delivery.topic, error: failure, attempts: attempt, group: policy.group }),
    });
    return 'dead-lettered';
  };
  let attempt = Math.max(1, delivery.attempt);
  // Redelivered more often than maxAttempts without an ack: its consumers crashed (or stalled) on it.
  // Straight to the DLQ without running the handler, or a message that kills its consumer would do so forever.
  if (attempt > policy.maxAttempts) {
    if (policy.signal.aborted) return 'aborted';
    return deadLetter(new BusError(ErrorCodes.HANDLER_FAILED, `delivered ${attempt} times without being acknowledged (its consumers crashed or stalled)`), attempt);
  }
  for (;;) {
    if (policy.signal.aborted) return 'aborted';
    let failure: unknown;
    try {
      await policy.handler({ ...delivery, attempt });
      return 'handled';
    } catch (err) {
      failure = err;
    }
    if (attempt >= policy.maxAttempts || isNonRetriable(failure)) return deadLetter(failure, attempt);
    policy.logger.child({ eventId: delivery.event.id, topic: delivery.topic, attempt }).debug({ err: failure }, 'handler failed; retrying after backoff');
    const waited = await sleep(backoffDelay(policy.backoff, attempt + 1), policy.signal);
    if (!waited) return 'aborted';
    attempt += 1;
  }
}

const NON_RETRIABLE = Symbol.for('cutover.nonRetriable');

/**
 * Marks `err` so that deliverWithRetry moves the message to the DLQ at once instead of retrying: for
 * poison messages (an unsupported schema version, say) where another attempt cannot succeed. Other
 * handler errors keep the retry-then-DLQ behaviour. Returns `err` so it reads `throw nonRetriable(e)`.
 */
export function nonRetriable<E extends object>(err: E): E {
  Object.defineProperty(err, NON_RETRIABLE, { value: true, enumerable: false });
  return err;
}

/** Whether `err` was marked with {@link nonRetriable}. */
export function isNonRetriable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[NON_RETRIABLE] === true;
}

/**
 * Runs tasks with at most `concurrency` in flight, one at a time per key, in push order per key.
 * Null keys carry no order, so each such task gets a lane of its own.
 */
export class KeyedScheduler {
  private readonly lanes = new Map<unknown, Array<() => Promise<void>>>();
  private readonly ready: unknown[] = [];
  private running = 0;
  private pending = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly concurrency: number) {}

  /** Number of tasks queued or running. */
  get size(): number {
    return this.pending;
  }

  /** Queues `task` behind earlier tasks of the same key. The returned promise settles with the task. */
  push(key: string | null, task: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const lane = key === null ? Symbol('unkeyed') : key;
      const wrapped = (): Promise<void> => task().then(resolve, reject);
      const queue = this.lanes.get(lane);
      this.pending += 1;
      if (queue) {
        queue.push(wrapped);
      } else {
        this.lanes.set(lane, [wrapped]);
        this.ready.push(lane);
        this.pump();
      }
    });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running < this.concurrency && this.ready.length > 0) {
      const lane = this.ready.shift();
      const queue = this.lanes.get(lane)!;
      const task = queue[0]!;
      this.running += 1;
      void task().finally(() => {
        this.running -= 1;
        this.pending -= 1;
        queue.shift();
        if (queue.length > 0) this.ready.push(lane);
        else this.lanes.delete(lane);
        if (this.pending === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          waiters.forEach((w) => w());
        }
        this.pump();
      });
    }
  }
}
