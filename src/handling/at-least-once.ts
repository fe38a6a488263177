import { nonRetriable } from '../bus/attempts.js';
import { sleep } from '../async.js';
import type { Bus, Delivery } from '../bus/types.js';
import { buildBusReply, type BusReplyResult } from '../events/reply.js';
import { CutoverError, ErrorCodes } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import type { DedupeStore } from './dedupe/types.js';

/** How long a handled event id is remembered by default: one day. */
export const DEFAULT_DEDUPE_TTL = 86_400_000;

/** How often a claim held by another consumer is tried again. */
const CLAIM_POLL_MS = 200;

/** Results kept for replies that failed to publish; past it the oldest is dropped (and redone on its retry). */
const MAX_UNPUBLISHED = 1_000;

/**
 * How one delivery ended, for counters: `handled` (replied if asked, marked done), `duplicate` (handled
 * before, skipped), `retry` (failed, released for the bus to redeliver), `dead-letter` (given up: the
 * error reply is out and the bus moves the event to its DLQ).
 */
export type HandlingOutcome = 'handled' | 'duplicate' | 'retry' | 'dead-letter';

export interface AtLeastOnceOptions {
  /** Where handled event ids are recorded; started and closed by its owner. */
  dedupe: DedupeStore;
  /** The dedupe scope: the consumer group, so that every group handles each event once. */
  scope: string;
  /** How long a claim lasts while the work runs, and how long to wait out another consumer's claim. */
  leaseMs: number;
  /** How long a handled event id is remembered. Default {@link DEFAULT_DEDUPE_TTL}. */
  ttlMs?: number;
  logger?: Logger;
  now?: () => number;
  /** Sees every outcome (metrics, stats). */
  onOutcome?: (outcome: HandlingOutcome, delivery: Delivery) => void;
}

/** The work for one delivery, as {@link AtLeastOnce.handle} runs it. */
export interface Work<R> {
  /** Attempts before giving up: on the last one a failure gets the error reply. */
  maxAttempts: number;
  /** Does the work; resolves with the result to reply with, or undefined when there is nothing to send. */
  run(): Promise<R | undefined>;
  /** Publishes the reply for `result`; when it rejects, the result is kept and the retry only publishes. */
  reply(result: R): Promise<void>;
  /** Publishes the error reply when giving up, so that nobody waits for this event in vain. */
  replyError(failure: unknown): Promise<void>;
  /**
   * Whether a failure is worth another attempt; one that is not is given up at once. Default: every
   * failure is (the bus still dead-letters those marked with `nonRetriable`).
   */
  retriable?(failure: unknown): boolean;
}

/**
 * At-least-once handling made effectively once per event id and consumer group, as both HTTP replay
 * consumers and SDK agents need it: claim the event id in the dedupe store (waiting out another
 * consumer's lease after a rebalance), run the work, publish its reply, then mark the id done. A failure
 * releases the claim so that the bus's retry may claim it again; on the last attempt (or a failure not
 * worth retrying) the error reply goes out before the bus dead-letters the event. A result whose reply
 * failed to publish is kept in memory, so the retry publishes it without running the work again.
 */
export class AtLeastOnce<R> {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly unpublished = new Map<string, R>();
  private readonly abort = new AbortController();

  constructor(private readonly options: AtLeastOnceOptions) {
    this.log = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
  }

  /**
   * Handles one delivery. Resolves when it is handled or was before; rejects to make the bus retry it,
   * or, after the error reply, dead-letter it (the rejection is then marked `nonRetriable` unless retriable).
   */
  async handle(d: Delivery, work: Work<R>): Promise<void> {
    const { dedupe, scope } = this.options;
    const id = d.event.id;
    const log = this.log.child({ eventId: id, attempt: d.attempt });
    if ((await this.claim(id)) === 'done') {
      log.debug('already handled; skipping the redelivery');
      this.options.onOutcome?.('duplicate', d);
      return;
    }
    let result = this.unpublished.get(id);
    if (result === undefined) {
      try {
        result = await work.run();
      } catch (failure) {
        await dedupe.release(scope, id).catch((err) => log.warn({ err }, 'could not release the dedupe lease'));
        const retriable = work.retriable ? work.retriable(failure) : true;
        if (retriable && d.attempt < work.maxAttempts) {
          log.debug({ err: failure }, 'handling failed; the bus retries it');
          this.options.onOutcome?.('retry', d);
          throw failure;
        }
        await work.replyError(failure);
        log.warn({ err: failure }, 'handling gave up; the event goes to the DLQ');
        this.options.onOutcome?.('dead-letter', d);
        throw retriable ? failure : nonRetriable(failure as object);
      }
    }
    if (result !== undefined) {
      try {
        await work.reply(result);
      } catch (err) {
        this.remember(id, result);
        await dedupe.release(scope, id).catch(() => undefined);
        throw err;
      }
      this.unpublished.delete(id);
    }
    await dedupe.complete(scope, id, this.options.ttlMs ?? DEFAULT_DEDUPE_TTL).catch((err) => log.warn({ err }, 'could not mark the event handled'));
    this.options.onOutcome?.('handled', d);
  }

  /** Stops waiting for claims held by others (their deliveries fail retriably). Idempotent. */
  close(): void {
    this.abort.abort();
  }

  private async claim(id: string): Promise<'acquired' | 'done'> {
    const { dedupe, scope, leaseMs } = this.options;
    const deadline = this.now() + leaseMs;
    for (;;) {
      const result = await dedupe.claim(scope, id, leaseMs);
      if (result !== 'busy') return result;
      if (this.now() > deadline || !(await sleep(CLAIM_POLL_MS, this.abort.signal))) {
        throw new CutoverError(ErrorCodes.HANDLER_FAILED, `event ${id} is being handled by another consumer`, { retriable: true });
      }
    }
  }

  private remember(id: string, result: R): void {
    if (this.unpublished.size >= MAX_UNPUBLISHED) {
      const oldest = this.unpublished.keys().next();
      if (!oldest.done) this.unpublished.delete(oldest.value);
    }
    this.unpublished.set(id, result);
  }
}

export interface ReplyContext {
  bus: Bus;
  /** `source` of the reply: `/agents/<agent>`, `/cutover/shadow`... */
  source: string;
  /** When handling began, epoch ms. */
  consumedAt: number;
  now?: () => number;
  /** Version of the code answering, stamped on replies that do not carry their own. */
  version?: string;
}

/** Publishes the bus reply to a delivered call event on its `replyto`; nothing when it has none. */
export async function publishBusReply(d: Delivery, ctx: ReplyContext, result: BusReplyResult): Promise<void> {
  const replyTo = d.event.replyto;
  if (!replyTo) return;
  const message = buildBusReply({
    call: d.event,
    eventPublishedAt: d.publishedAt,
    consumedAt: ctx.consumedAt,
    attempt: d.attempt,
    source: ctx.source,
    result: ctx.version !== undefined && result.version === undefined ? { ...result, version: ctx.version } : result,
    ...(ctx.now ? { now: ctx.now } : {}),
  });
  await ctx.bus.publish(replyTo, [message]);
}
