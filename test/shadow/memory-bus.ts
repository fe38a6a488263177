import { deliverWithRetry, KeyedScheduler } from '../../src/bus/attempts.js';
import { resolveBackoff } from '../../src/bus/retry.js';
import { topicsMatcher } from '../../src/bus/topics.js';
import type { Bus, BusHealth, BusMessage, Delivery, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../../src/bus/types.js';
import { BusError, ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';

/**
 * An in-memory Bus for UNIT tests only (the pairing, diff and SDK logic): one process, groups share
 * work, retries and DLQ go through the real deliverWithRetry. Integration tests use real Redis and Kafka.
 */
export class MemoryBus implements Bus {
  readonly kind = 'embedded' as const;
  readonly log = new Map<string, Delivery[]>();
  private readonly groups = new Map<string, { matcher: (t: string) => boolean; offsets: Map<string, number>; subs: Set<MemorySub> }>();
  private seq = 0;
  private closed = false;
  /** Make publish fail while set (fault injection). */
  failPublish: BusError | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  async start(): Promise<void> {}

  async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'closed');
    if (this.failPublish) throw this.failPublish;
    const list = this.log.get(topic) ?? [];
    this.log.set(topic, list);
    for (const m of messages) {
      list.push({
        topic,
        key: m.key,
        event: JSON.parse(JSON.stringify(m.event)),
        headers: { ...(m.headers ?? {}) },
        position: String(++this.seq),
        publishedAt: this.now(),
        attempt: 1,
      });
    }
    for (const g of this.groups.values()) this.pump(g);
  }

  /** Puts one delivery again (a redelivery as after a crash), to every group on its topic. */
  redeliver(d: Delivery): void {
    for (const g of this.groups.values()) {
      if (!g.matcher(d.topic)) continue;
      const sub = [...g.subs][0];
      sub?.dispatch({ ...d, attempt: d.attempt + 1 });
    }
  }

  messages(topic: string): Delivery[] {
    return this.log.get(topic) ?? [];
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    let g = this.groups.get(options.group);
    if (!g) {
      g = { matcher: topicsMatcher(options.topics), offsets: new Map(), subs: new Set() };
      if (options.from === 'end') for (const [t, l] of this.log) g.offsets.set(t, l.length);
      this.groups.set(options.group, g);
    }
    const sub = new MemorySub(this, options, () => g!.subs.delete(sub));
    g.subs.add(sub);
    this.pump(g);
    return sub;
  }

  private pump(g: { matcher: (t: string) => boolean; offsets: Map<string, number>; subs: Set<MemorySub> }): void {
    const subs = [...g.subs];
    if (subs.length === 0) return;
    for (const [topic, list] of this.log) {
      if (!g.matcher(topic)) continue;
      // The offset moves before each dispatch: a handler that publishes re-enters pump synchronously.
      for (let off = g.offsets.get(topic) ?? 0; off < list.length; off = g.offsets.get(topic)!) {
        g.offsets.set(topic, off + 1);
        subs[off % subs.length]!.dispatch(list[off]!);
      }
    }
  }

  read(topic: string, _options: ReadOptions): ReadStream {
    const items = [...this.messages(topic)];
    return {
      async *[Symbol.asyncIterator]() {
        yield* items;
      },
      async close() {},
    };
  }

  async health(): Promise<BusHealth> {
    return { ok: !this.closed, kind: 'embedded' };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const g of this.groups.values()) for (const s of g.subs) await s.close();
  }
}

class MemorySub implements Subscription {
  readonly group: string;
  private readonly scheduler: KeyedScheduler;
  private readonly abort = new AbortController();
  private closed = false;

  constructor(
    private readonly bus: MemoryBus,
    private readonly options: SubscribeOptions,
    private readonly onClose: () => void,
  ) {
    this.group = options.group;
    this.scheduler = new KeyedScheduler(options.concurrency ?? 1);
  }

  dispatch(d: Delivery): void {
    if (this.closed) return;
    void this.scheduler
      .push(d.key, async () => {
        await deliverWithRetry(d, {
          handler: this.options.handler,
          maxAttempts: this.options.maxAttempts ?? 5,
          backoff: resolveBackoff(this.options.backoff),
          group: this.group,
          logger: silentLogger(),
          deadLetter: (topic, m) => this.bus.publish(topic, [m]),
          signal: this.abort.signal,
        });
      })
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.onClose();
    await this.scheduler.idle();
  }
}
