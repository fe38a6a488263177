import { randomBytes } from 'node:crypto';
import type { Bus, Delivery, Subscription } from '../src/bus/types.js';
import { BusError, ErrorCodes, ProxyError } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import { REPLY_CHANNEL_PREFIX } from '../src/http/replay.js';
import { REPLY_STREAM_EVENT_TYPE } from '../src/events/wire.js';

// A bus reply's data is the wire format's; bus mode reads it under this name.

/**
 * The reply topic of one sidecar replica. Replay consumers answer only topics of this shape
 * (`isReplyChannel` in src/http/replay.ts), so the two must keep the same prefix.
 */
export function replyTopic(agent: string, instance: string): string {
  return `${REPLY_CHANNEL_PREFIX}${agent}.${instance}`;
}

/** A fresh instance id: 12 hex characters, unique enough for the replicas of one agent. */
export function newInstanceId(): string {
  return randomBytes(6).toString('hex');
}

interface Waiter {
  resolve(delivery: Delivery): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout;
  /** Events of a streamed reply, before the reply itself. */
  onStream: ((delivery: Delivery) => void) | undefined;
  arm(): void;
}

export interface ReplyChannelStats {
  /** Replies matched to a waiting call. */
  matched: number;
  /** Replies for no waiting call: late (after a timeout), duplicated, or for another replica's restart. */
  unmatched: number;
  timeouts: number;
}

/**
 * This replica's reply channel: its own topic, consumed in its own consumer group, so that several
 * replicas of one sidecar never take each other's replies. A call registers its correlation id with
 * `expect()` BEFORE the command is published, then awaits the returned promise; replies are matched by
 * `correlationid`, the first one wins, later ones are counted and dropped.
 */
export class ReplyChannel {
  readonly topic: string;
  readonly group: string;
  private readonly waiting = new Map<string, Waiter>();
  private subscription: Subscription | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;
  private readonly counts: ReplyChannelStats = { matched: 0, unmatched: 0, timeouts: 0 };

  constructor(
    agent: string,
    instance: string,
    private readonly logger: Logger,
  ) {
    this.topic = replyTopic(agent, instance);
    this.group = this.topic;
  }

  /** Whether the channel consumes its topic (a bus-mode call is only published when it does). */
  get ready(): boolean {
    return this.subscription !== undefined;
  }

  get pending(): number {
    return this.waiting.size;
  }

  get stats(): Readonly<ReplyChannelStats> {
    return this.counts;
  }

  /**
   * Subscribes on `bus`. The topic is this replica's alone and new, so the group reads it from the start:
   * a reply published between subscribing and the first fetch is not skipped.
   */
  start(bus: Bus): Promise<void> {
    this.starting ??= (async () => {
      const sub = await bus.subscribe({ group: this.group, topics: [this.topic], from: 'start', concurrency: 64, maxAttempts: 1, handler: async (d) => this.onReply(d) });
      if (this.closed) {
        await sub.close();
        return;
      }
      this.subscription = sub;
      this.logger.info({ topic: this.topic }, 'reply channel consuming');
    })().catch((err: unknown) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  /**
   * Registers a call waiting for the reply to `correlationId`. The promise rejects with
   * CUTOVER_REPLY_TIMEOUT after `timeoutMs`, or with `cancel()`'s error. `onStream` gets the events of a
   * streamed reply ({@link REPLY_STREAM_EVENT_TYPE}) as they come; each one restarts the timeout, which
   * then bounds the silence between events rather than the whole stream.
   */
  expect(correlationId: string, timeoutMs: number, onStream?: (delivery: Delivery) => void): Promise<Delivery> {
    return new Promise<Delivery>((resolve, reject) => {
      const expire = (): void => {
        this.waiting.delete(correlationId);
        this.counts.timeouts++;
        reject(new ProxyError(ErrorCodes.REPLY_TIMEOUT, `no reply on the bus within ${timeoutMs} ms`, { retriable: true, status: 504, details: { correlationId } }));
      };
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(expire, timeoutMs),
        onStream,
        arm() {
          clearTimeout(waiter.timer);
          waiter.timer = setTimeout(expire, timeoutMs);
        },
      };
      this.waiting.set(correlationId, waiter);
    });
  }

  /** Stops waiting for `correlationId` (its command was never published). */
  cancel(correlationId: string, err: unknown): void {
    const w = this.waiting.get(correlationId);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiting.delete(correlationId);
    w.reject(err);
  }

  private onReply(d: Delivery): void {
    const id = d.event.correlationid;
    const w = id === undefined ? undefined : this.waiting.get(id);
    if (!w || id === undefined) {
      this.counts.unmatched++;
      this.logger.debug({ correlationId: id, type: d.event.type }, 'reply for no waiting call; dropped');
      return;
    }
    if (d.event.type === REPLY_STREAM_EVENT_TYPE) {
      if (!w.onStream) {
        this.counts.unmatched++;
        return;
      }
      w.arm();
      w.onStream(d);
      return;
    }
    clearTimeout(w.timer);
    this.waiting.delete(id);
    this.counts.matched++;
    w.resolve(d);
  }

  /** Rejects every waiting call and leaves the group. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.waiting.keys()]) this.cancel(id, new BusError(ErrorCodes.BUS_CLOSED, 'the sidecar is closing'));
    await this.starting?.catch(() => undefined);
    await this.subscription?.close();
  }
}
