import { BusError, ErrorCodes } from '../../src/errors.js';
import { topicsMatcher } from '../../src/bus/topics.js';
import type { Bus, BusHealth, BusMessage, Delivery, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../../src/bus/types.js';

/**
 * An in-memory Bus for UNIT tests only (integration tests use the real adapters). Records every publish
 * call, and can be taken down, slowed or made to refuse messages to exercise the sidecar's fallbacks.
 */
export class MemoryBus implements Bus {
  readonly kind = 'embedded' as const;
  readonly topics = new Map<string, Delivery[]>();
  /** Every successful publish call, in order. */
  readonly calls: Array<{ topic: string; count: number }> = [];
  private isDown = false;
  private delayMs = 0;
  private hang = false;
  private refuse: ((message: BusMessage) => boolean) | undefined;
  private seq = 0;
  started = false;
  closed = false;

  down(): void {
    this.isDown = true;
  }
  up(): void {
    this.isDown = false;
  }
  /** Every publish takes this long. */
  slow(ms: number): void {
    this.delayMs = ms;
  }
  /** Publishes never settle (until `hangs(false)`). */
  hangs(on: boolean): void {
    this.hang = on;
  }
  /** Messages for which `predicate` holds are refused with CUTOVER_MESSAGE_TOO_LARGE. */
  refuseWhen(predicate: ((message: BusMessage) => boolean) | undefined): void {
    this.refuse = predicate;
  }

  messages(topic: string): Delivery[] {
    return this.topics.get(topic) ?? [];
  }

  all(): Delivery[] {
    return [...this.topics.values()].flat();
  }

  async start(): Promise<void> {
    this.started = true;
  }

  async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'closed');
    if (this.hang) return new Promise(() => undefined);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.isDown) throw new BusError(ErrorCodes.BUS_UNAVAILABLE, 'memory bus is down', { retriable: true });
    if (this.refuse && messages.some(this.refuse)) throw new BusError(ErrorCodes.MESSAGE_TOO_LARGE, 'refused');
    const list = this.topics.get(topic) ?? [];
    for (const m of messages) {
      // Round-trip through JSON like a real bus, so tests see what a consumer would.
      const copy = JSON.parse(JSON.stringify(m)) as BusMessage;
      list.push({ topic, key: copy.key, event: copy.event, headers: copy.headers ?? {}, position: String(this.seq++), publishedAt: Date.now(), attempt: 1 });
    }
    this.topics.set(topic, list);
    this.calls.push({ topic, count: messages.length });
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const matches = topicsMatcher(options.topics);
    for (const d of this.all()) if (matches(d.topic)) await options.handler(d);
    return { group: options.group, close: async () => undefined };
  }

  read(topic: string, _options: ReadOptions): ReadStream {
    const list = [...this.messages(topic)];
    return {
      async *[Symbol.asyncIterator]() {
        yield* list;
      },
      close: async () => undefined,
    };
  }

  async health(): Promise<BusHealth> {
    return { ok: !this.isDown && !this.closed, kind: 'embedded', ...(this.isDown ? { detail: 'down' } : {}) };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
