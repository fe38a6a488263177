import { withTimeout } from '../../async.js';
import { randomUUID } from 'node:crypto';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { CutoverError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import type { Delivery, ReadOptions, ReadStream } from '../types.js';
import type { KafkaFactory, KafkaSockets } from './client.js';
import { decodeMessage } from './codec.js';
import { toBusError } from './errors.js';
import { connectConsumer, consumerTiming, newConsumer, type ConsumerTiming } from './subscription.js';
import type { PartitionOffsets, TopicAdmin } from './topic-admin.js';

/** Within the brokers' default group.min/max.session.timeout.ms (6 s to 30 min). */
const READER_SESSION_TIMEOUT = 10_000;
/** Deliveries buffered ahead of the caller before fetching pauses. */
const HIGH_WATER = 2_000;

export interface ReaderDeps {
  kafka: KafkaFactory;
  config: KafkaBusConfig;
  logger: Logger;
  admin: TopicAdmin;
  /** Called once the reader released everything, so the bus can forget it. */
  onClosed?: () => void;
}

/**
 * Reads a topic outside any real consumer group: a consumer in a throwaway group that never commits and
 * is deleted on close. `from: 'start'` begins at each partition's first record; `from: 'end'` at the first
 * record published after read() was called (see TopicAdmin.offsetsSince). With `follow: false` the stream
 * ends once every partition reached the high watermark it had when reading began.
 *
 * Order holds per partition only: a multi-partition topic interleaves. Logs that need one total order
 * (the flip log) are published with a single key, so all of it sits on one partition.
 */
export class KafkaReader implements ReadStream {
  private readonly log: Logger;
  private readonly timing: ConsumerTiming;
  private readonly groupId: string;
  private readonly follow: boolean;
  private readonly buffer: Delivery[] = [];
  private waiter: (() => void) | undefined;
  private drained: (() => void) | undefined;
  private failure: CutoverError | undefined;
  private ended = false;
  private consumer: Consumer | undefined;
  private consumerSockets: KafkaSockets | undefined;
  /** Partitions still short of their snapshot high watermark (follow: false). */
  private readonly pendingPartitions = new Map<number, number>();
  private readonly started: Promise<void>;
  private closed: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly topic: string,
    private readonly options: ReadOptions,
    private readonly deps: ReaderDeps,
  ) {
    this.follow = options.follow ?? true;
    // The throwaway group has one member and nothing to hand over, so its session timeout only has to be
    // one every broker accepts, whatever the subscriptions use.
    this.timing = consumerTiming({ ...deps.config, sessionTimeout: Math.max(deps.config.sessionTimeout, READER_SESSION_TIMEOUT) });
    this.groupId = `${deps.config.clientId}.read.${randomUUID()}`;
    this.log = deps.logger.child({ reader: topic, group: this.groupId });
    const since = Date.now();
    this.started = this.start(since).catch((err: unknown) => this.fail(toBusError(err, `read ${topic}`, deps.config.brokers)));
  }

  /** `since`: when read() was called; `from: 'end'` means messages published after that. */
  private async start(since: number): Promise<void> {
    const { admin, config, kafka } = this.deps;
    if (!this.follow) {
      // Nothing lies between the end and the end.
      if (this.options.from === 'end') return this.finish();
      const snapshot: PartitionOffsets[] = await admin.topicOffsets(this.topic);
      for (const p of snapshot) if (p.high > p.low) this.pendingPartitions.set(p.partition, p.high);
      if (this.pendingPartitions.size === 0) return this.finish();
    }
    await admin.ensureTopic(this.topic);
    const startAt = this.options.from === 'end' ? await admin.offsetsSince(this.topic, since) : new Map<number, number>();
    if (this.stopping.signal.aborted) return;
    const { client, sockets } = kafka();
    const consumer = newConsumer(client, config, this.groupId, this.timing, this.stopping.signal);
    this.consumer = consumer;
    this.consumerSockets = sockets;
    consumer.on(consumer.events.CRASH, (e) => {
      if (e.payload.restart || this.stopping.signal.aborted) return;
      this.fail(toBusError(e.payload.error, `read ${this.topic}`, config.brokers));
    });
    await connectConsumer(consumer, config, `read ${this.topic}`);
    await consumer.subscribe({ topics: [this.topic], fromBeginning: this.options.from === 'start' });
    consumer
      .run({
        // The group is throwaway: positions live in memory only.
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.eachBatch(payload),
      })
      .catch((err: unknown) => this.fail(toBusError(err, `read ${this.topic}`, config.brokers)));
    // Start where read() began rather than at whatever "latest" is by the first fetch, so a message
    // published right after read() returned is not skipped. The group has one member: every partition is ours.
    for (const [partition, offset] of startAt) consumer.seek({ topic: this.topic, partition, offset: String(offset) });
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || this.ended) return;
      const offset = Number(message.offset);
      const high = this.pendingPartitions.get(batch.partition);
      if (!this.follow && (high === undefined || offset >= high)) break;
      const decoded = decodeMessage(batch.topic, batch.partition, message);
      if (decoded.ok) this.push(decoded.delivery);
      else this.log.warn({ err: decoded.error, partition: batch.partition, offset: message.offset }, 'skipping a record that is not a CloudEvent');
      resolveOffset(message.offset);
      if (this.buffer.length >= HIGH_WATER) await this.waitForRoom(heartbeat);
    }
    if (!this.follow) {
      const high = this.pendingPartitions.get(batch.partition);
      // lastOffset() also covers control records that never reach us as messages.
      if (high !== undefined && Number(batch.lastOffset()) + 1 >= high) {
        this.pendingPartitions.delete(batch.partition);
        if (this.pendingPartitions.size === 0) this.finish();
      }
    }
  }

  private async waitForRoom(heartbeat: () => Promise<void>): Promise<void> {
    while (this.buffer.length >= HIGH_WATER && !this.ended) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        timer = setTimeout(resolve, this.timing.heartbeatInterval);
      });
      clearTimeout(timer);
      this.drained = undefined;
      await heartbeat();
    }
  }

  private push(delivery: Delivery): void {
    this.buffer.push(delivery);
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private finish(): void {
    this.ended = true;
    this.wake();
    // Nothing more to fetch: release the consumer now rather than when the caller closes.
    void this.release();
  }

  private fail(err: CutoverError): void {
    if (this.ended) return;
    this.failure = err;
    this.finish();
  }

  async next(): Promise<IteratorResult<Delivery>> {
    for (;;) {
      const item = this.buffer.shift();
      if (item) {
        if (this.buffer.length < HIGH_WATER / 2) this.drained?.();
        return { value: item, done: false };
      }
      if (this.failure) {
        const err = this.failure;
        this.failure = undefined;
        throw err;
      }
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return {
      next: () => this.next(),
      // Breaking out of `for await` lands here: release the consumer.
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  private releasing: Promise<void> | undefined;

  private release(): Promise<void> {
    this.releasing ??= (async () => {
      this.stopping.abort();
      await this.started;
      const consumer = this.consumer;
      this.consumer = undefined;
      if (consumer) {
        const bound = this.timing.maxWaitTimeInMs + this.deps.config.connectionTimeout * 2 + 1_000;
        await withTimeout(consumer.disconnect(), bound, () => new Error('reader consumer did not stop in time')).catch((err: unknown) =>
          this.log.warn({ err }, 'kafka reader did not disconnect cleanly'),
        );
        this.consumerSockets?.destroy();
        await this.deps.admin.deleteGroups([this.groupId]);
      }
      this.deps.onClosed?.();
    })();
    return this.releasing;
  }

  /** Ends the stream (a pending next() resolves done) and releases the consumer. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.ended = true;
      this.drained?.();
      this.wake();
      await this.release();
    })();
    return this.closed;
  }
}

