import { deliverWithRetry, KeyedScheduler, retryPolicy, type RetryPolicy } from '../../src/bus/attempts.js';
import { partitionOf } from '../../src/bus/hash.js';
import { assertEvent } from '../../src/events/cloudevent.js';
import { assertTopicName, assertTopicPattern, topicsMatcher } from '../../src/bus/topics.js';
import type { Bus, BusHealth, BusMessage, Delivery, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../../src/bus/types.js';
import { BusError, ErrorCodes, ValidationError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';

/**
 * What buses sharing one broker share, as processes share one server: the topic logs and the consumer
 * groups. Each MemoryBus gets a broker of its own unless it is given one.
 */
export class MemoryBroker {
  readonly topics = new Map<string, Delivery[]>();
  readonly groups = new Map<string, MemoryGroup>();
  isDown = false;
  private seq = 0;
  private appendedSignal = deferred();

  append(topic: string, deliveries: Array<Omit<Delivery, 'position'>>): void {
    const list = this.topics.get(topic) ?? [];
    this.topics.set(topic, list);
    for (const d of deliveries) list.push({ ...d, position: String(++this.seq) });
    const signal = this.appendedSignal;
    this.appendedSignal = deferred();
    signal.resolve();
    for (const g of this.groups.values()) g.pump();
  }

  /** Resolves on the next append. */
  appended(): Promise<void> {
    return this.appendedSignal.promise;
  }
}

export interface MemoryBusOptions {
  broker?: MemoryBroker;
  /** Largest serialized message accepted (bytes), as bus.maxMessageBytes. */
  maxMessageBytes?: number;
}

/**
 * An in-memory Bus for UNIT tests (integration tests use the real adapters). It keeps the Bus contract
 * (test/bus/memory.conformance.test.ts): consumer groups share work with per-key order, retries and the
 * DLQ go through the real deliverWithRetry, wildcards pick up new topics, readers follow. It records every
 * publish call, and can be taken down, slowed or made to refuse messages to exercise fallbacks.
 */
export class MemoryBus implements Bus {
  readonly kind = 'embedded' as const;
  readonly broker: MemoryBroker;
  /** Every successful publish call, in order. */
  readonly calls: Array<{ topic: string; count: number }> = [];
  /** Make publish fail with this error while set. */
  failPublish: BusError | undefined;
  started = false;
  closed = false;
  private delayMs = 0;
  private hang = false;
  private refuse: ((message: BusMessage) => boolean) | undefined;
  private readonly maxMessageBytes: number;
  private readonly subscriptions = new Set<MemorySubscription>();
  private readonly closeSignal = deferred();

  constructor(
    private readonly now: () => number = Date.now,
    options: MemoryBusOptions = {},
  ) {
    this.broker = options.broker ?? new MemoryBroker();
    this.maxMessageBytes = options.maxMessageBytes ?? 1_000_000;
  }

  get topics(): Map<string, Delivery[]> {
    return this.broker.topics;
  }

  /** Publishes fail with CUTOVER_BUS_UNAVAILABLE and health is not ok until {@link up}. */
  down(): void {
    this.broker.isDown = true;
  }
  up(): void {
    this.broker.isDown = false;
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
    return this.broker.topics.get(topic) ?? [];
  }

  all(): Delivery[] {
    return [...this.broker.topics.values()].flat();
  }

  async start(): Promise<void> {
    this.started = true;
  }

  async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'closed');
    assertTopicName(topic);
    messages.forEach((m, i) => {
      // What every adapter checks before publishing anything of the batch.
      assertEvent(m?.event, `messages[${i}].event`);
      const size = Buffer.byteLength(JSON.stringify({ key: m.key, event: m.event, headers: m.headers ?? {} }));
      if (size > this.maxMessageBytes) throw new ValidationError(ErrorCodes.MESSAGE_TOO_LARGE, `messages[${i}]: ${size} bytes serialized, over the limit of ${this.maxMessageBytes}`);
    });
    if (this.hang) return new Promise(() => undefined);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failPublish) throw this.failPublish;
    if (this.broker.isDown) throw new BusError(ErrorCodes.BUS_UNAVAILABLE, 'memory bus is down', { retriable: true });
    if (this.refuse && messages.some(this.refuse)) throw new BusError(ErrorCodes.MESSAGE_TOO_LARGE, 'refused');
    const publishedAt = this.now();
    this.broker.append(
      topic,
      messages.map((m) => {
        // Round-trip through JSON like a real bus, so tests see what a consumer would.
        const copy = JSON.parse(JSON.stringify(m)) as BusMessage;
        return { topic, key: copy.key, event: copy.event, headers: copy.headers ?? {}, publishedAt, attempt: 1 };
      }),
    );
    this.calls.push({ topic, count: messages.length });
  }

  /** Hands one delivery over again (a redelivery, as after a crash) to every group reading its topic. */
  redeliver(d: Delivery): void {
    for (const g of this.broker.groups.values()) if (g.matches(d.topic)) g.dispatch({ ...d, attempt: d.attempt + 1 });
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'closed');
    if (typeof options?.group !== 'string' || options.group.length === 0) throw new ValidationError(ErrorCodes.CONFIG_INVALID, 'group: expected a non-empty string');
    options.topics.forEach((t, i) => assertTopicPattern(t, `topics[${i}]`));
    let group = this.broker.groups.get(options.group);
    if (!group) {
      group = new MemoryGroup(this.broker, topicsMatcher(options.topics), options.from ?? 'start');
      this.broker.groups.set(options.group, group);
    }
    const sub = new MemorySubscription(group, options, (topic, message) => this.publish(topic, [message]), () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    group.join(sub);
    return sub;
  }

  read(topic: string, options: ReadOptions): ReadStream {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'closed');
    assertTopicName(topic);
    const broker = this.broker;
    const follow = options.follow ?? true;
    const length = (): number => broker.topics.get(topic)?.length ?? 0;
    let index = options.from === 'end' ? length() : 0;
    const end = follow ? Infinity : length();
    const closed = deferred();
    let isClosed = false;
    const bus = this;
    return {
      async *[Symbol.asyncIterator]() {
        while (!isClosed && !bus.closed) {
          if (index < Math.min(length(), end)) {
            yield broker.topics.get(topic)![index++]!;
            continue;
          }
          if (!follow) return;
          await Promise.race([broker.appended(), closed.promise, bus.closeSignal.promise]);
        }
      },
      async close() {
        isClosed = true;
        closed.resolve();
      },
    };
  }

  async health(): Promise<BusHealth> {
    const down = this.broker.isDown;
    return { ok: !down && !this.closed, kind: 'embedded', ...(down ? { detail: 'down' } : {}) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closeSignal.resolve();
    for (const s of [...this.subscriptions]) await s.close();
  }
}

/**
 * A consumer group: a position per topic, and the members sharing its messages. A keyed message goes to
 * the member its key hashes to among the current members, after every earlier message of its key (on
 * whichever member) is done, so per-key order holds while members join and leave.
 */
class MemoryGroup {
  private readonly offsets = new Map<string, number>();
  private readonly members: MemorySubscription[] = [];
  private readonly keyTails = new Map<string, Promise<void>>();
  private unkeyed = 0;
  private pumping = false;

  constructor(
    private readonly broker: MemoryBroker,
    readonly matches: (topic: string) => boolean,
    from: 'start' | 'end',
  ) {
    // Topics that appear later start at their beginning: everything in them is newer than the group.
    if (from === 'end') for (const [topic, list] of broker.topics) this.offsets.set(topic, list.length);
  }

  join(member: MemorySubscription): void {
    this.members.push(member);
    this.pump();
  }

  leave(member: MemorySubscription): void {
    const i = this.members.indexOf(member);
    if (i >= 0) this.members.splice(i, 1);
  }

  /** Dispatches everything past the group's positions to its members. */
  pump(): void {
    // A handler that publishes re-enters through append: the outer loop picks up what it added.
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (const [topic, list] of this.broker.topics) {
        if (!this.matches(topic)) continue;
        for (let off = this.offsets.get(topic) ?? 0; off < list.length && this.members.length > 0; off += 1) {
          this.offsets.set(topic, off + 1);
          this.dispatch(list[off]!, off);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** `index` is the message's place in its topic, to rewind to when it was not handled. */
  dispatch(d: Delivery, index = -1): void {
    const member = d.key === null ? this.members[this.unkeyed++ % this.members.length] : this.members[partitionOf(d.key, this.members.length)];
    if (!member) return;
    const before = d.key === null ? undefined : this.keyTails.get(d.key);
    const done = member.handle(d, before).then((handled) => {
      if (!handled && index >= 0) this.rewind(d.topic, index);
    });
    if (d.key === null) return;
    const key = d.key;
    this.keyTails.set(key, done);
    void done.finally(() => {
      if (this.keyTails.get(key) === done) this.keyTails.delete(key);
    });
  }

  /** Not handled (its member left, or the dead letter failed): the group reads from there again. */
  private rewind(topic: string, index: number): void {
    this.offsets.set(topic, Math.min(this.offsets.get(topic) ?? 0, index));
    setTimeout(() => this.pump(), 20);
  }
}

class MemorySubscription implements Subscription {
  readonly group: string;
  private readonly scheduler: KeyedScheduler;
  private readonly abort = new AbortController();
  private readonly policy: RetryPolicy;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly owner: MemoryGroup,
    options: SubscribeOptions,
    deadLetter: (topic: string, message: BusMessage) => Promise<void>,
    private readonly onClosed: () => void,
  ) {
    this.group = options.group;
    this.scheduler = new KeyedScheduler(Math.max(1, options.concurrency ?? 1));
    this.policy = { ...retryPolicy(options, silentLogger(), deadLetter), signal: this.abort.signal };
  }

  /** Runs `d` after `before` settles; resolves true once it is handled or dead-lettered. */
  handle(d: Delivery, before: Promise<void> | undefined): Promise<boolean> {
    let handled = false;
    return this.scheduler
      .push(d.key, async () => {
        // Only when there is an earlier message of the key to wait for: a delivery starts at once otherwise.
        if (before) await before;
        handled = (await deliverWithRetry(d, this.policy)) !== 'aborted';
      })
      .then(
        () => handled,
        () => false,
      );
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.owner.leave(this);
      this.abort.abort();
      await this.scheduler.idle();
      this.onClosed();
    })();
    return this.closing;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
