import { withTimeout } from '../../async.js';
import { setMaxListeners } from 'node:events';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { describeError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { deliverWithRetry, KeyedScheduler, retryPolicy, type DeliveryOutcome, type RetryPolicy } from '../attempts.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import { dlqTopic, isPattern, topicsMatcher } from '../topics.js';
import { DlqHeaders, type BusMessage, type SubscribeOptions, type Subscription } from '../types.js';
import { clientRetry, type KafkaFactory, type KafkaSockets } from './client.js';
import { decodeHeaders, decodeMessage, type OutgoingMessage } from './codec.js';
import { timeoutError, toBusError } from './errors.js';
import type { TopicAdmin } from './topic-admin.js';

/** Longest stretch of handled-but-uncommitted messages within one long batch. */
const COMMIT_EVERY_MS = 1_000;

/** Timing derived from `sessionTimeout`, shared by subscriptions and readers. */
export interface ConsumerTiming {
  sessionTimeout: number;
  /** About a third of the session timeout, as Kafka recommends. */
  heartbeatInterval: number;
  /**
   * Longest a fetch waits on the broker. kafkajs heartbeats between fetches, so it must stay well under
   * the session timeout; it also bounds how long stopping a consumer takes.
   */
  maxWaitTimeInMs: number;
  /** How long handlers in flight may finish after a rebalance or close() before they are abandoned. */
  handlerGrace: number;
  /** How long the coordinator waits for members to rejoin during a rebalance. */
  rebalanceTimeout: number;
  /** Upper bound on joining the group. */
  joinTimeout: number;
}

/**
 * A kafkajs consumer with cutover's timing and retry settings (topics are never auto-created; kafkajs
 * restarts a crashed consumer until `stopped` aborts).
 */
export function newConsumer(kafka: Kafka, config: KafkaBusConfig, groupId: string, t: ConsumerTiming, stopped: AbortSignal): Consumer {
  return kafka.consumer({
    groupId,
    sessionTimeout: t.sessionTimeout,
    heartbeatInterval: t.heartbeatInterval,
    rebalanceTimeout: t.rebalanceTimeout,
    maxWaitTimeInMs: t.maxWaitTimeInMs,
    allowAutoTopicCreation: false,
    retry: { ...clientRetry(config), retries: 5, restartOnFailure: async () => !stopped.aborted },
  });
}

/** Connects `consumer`, rejecting with CUTOVER_BUS_UNAVAILABLE when the brokers do not answer in time. */
export function connectConsumer(consumer: Consumer, config: KafkaBusConfig, what: string): Promise<void> {
  const ms = config.connectionTimeout * 2;
  return withTimeout(consumer.connect(), ms, () => timeoutError(what, ms, true, config.brokers));
}

export function consumerTiming(config: KafkaBusConfig): ConsumerTiming {
  const sessionTimeout = config.sessionTimeout;
  const heartbeatInterval = Math.max(100, Math.floor(sessionTimeout / 3));
  const handlerGrace = Math.min(sessionTimeout, 10_000);
  const rebalanceTimeout = Math.max(sessionTimeout, 2 * handlerGrace + 5_000);
  return {
    sessionTimeout,
    heartbeatInterval,
    maxWaitTimeInMs: Math.min(1_000, Math.max(100, heartbeatInterval)),
    handlerGrace,
    rebalanceTimeout,
    joinTimeout: rebalanceTimeout + 2 * config.connectionTimeout + 5_000,
  };
}

export interface SubscriptionDeps {
  kafka: KafkaFactory;
  config: KafkaBusConfig;
  logger: Logger;
  admin: TopicAdmin;
  /** Publishes a dead letter; resolves once Kafka holds it. */
  deadLetter: (topic: string, message: BusMessage) => Promise<void>;
  /** Publishes records as they are (for records that are not CloudEvents and cannot be re-encoded). */
  publishRecords: (topic: string, records: OutgoingMessage[]) => Promise<void>;
  /** Called once the subscription closed, so the bus can forget it. */
  onClosed?: () => void;
}

/** Resolves 'abandoned' when `signal` aborts, else settles like `work`. */
function unlessAbandoned<T>(work: Promise<T>, signal: AbortSignal): Promise<T | 'abandoned'> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.resolve('abandoned');
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      // The handler keeps running detached; its outcome no longer matters (the offset stays unresolved).
      work.catch(() => undefined);
      resolve('abandoned');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/**
 * One subscription: one kafkajs consumer in group `group` at a time. kafkajs cannot add topics to a
 * running consumer, so when a pattern starts matching a new topic (checked every topicRefreshInterval) the
 * consumer is replaced by one subscribed to the new set; the same tick restarts a consumer that crashed
 * for good.
 *
 * Up to `concurrency` keys are handled in parallel, within a partition as across partitions, one message
 * at a time per key (so per-key order holds): a partition is not one lane, or a topic with few partitions
 * would cap throughput at a few handlers whatever the concurrency. An offset is resolved only once its
 * handler succeeded or its dead letter was written AND every earlier offset of the partition was; resolved
 * offsets are committed after each batch and at least every second within one.
 *
 * The commit after a batch is not waited for before the next fetch (kafkajs would, with its autoCommit):
 * it goes out first (on one connection with the fetch when one broker is coordinator and leader, so that
 * broker handles it first), and the next batch starts only once it was answered. That takes a round trip off every fetch cycle, which a message
 * arriving during a batch waits through. A batch that gives its partitions up (a rebalance, close(), a
 * failure kafkajs restarts from) waits for its commit as before.
 */
export class KafkaSubscription implements Subscription {
  readonly group: string;
  private readonly log: Logger;
  private readonly timing: ConsumerTiming;
  private readonly matches: (topic: string) => boolean;
  private readonly exact: string[];
  private readonly hasPatterns: boolean;
  private readonly policy: Omit<RetryPolicy, 'signal'>;
  private readonly closing = new AbortController();
  /** Shared by every partition's batches, so at most `concurrency` handlers run at once in this subscription. */
  private readonly scheduler: KeyedScheduler;
  /** Aborted per batch to abandon handlers still running after the grace period. */
  private readonly abandons = new Set<AbortController>();
  private consumer: Consumer | undefined;
  private consumerSockets: KafkaSockets | undefined;
  private consumerDead = false;
  private topics: string[] = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  /** The commit after the last batch, while in flight: the next batch starts once it is answered. */
  private committing: Promise<void> | undefined;
  /** A batch ended while a commit was in flight: commit again once it is answered. */
  private commitAgain: (() => Promise<void>) | undefined;
  /** Serializes consumer swaps (refresh, restart, close). */
  private op: Promise<void> = Promise.resolve();
  private closed: Promise<void> | undefined;

  constructor(
    private readonly options: SubscribeOptions,
    private readonly deps: SubscriptionDeps,
  ) {
    this.group = options.group;
    this.timing = consumerTiming(deps.config);
    this.matches = topicsMatcher(options.topics);
    // Sorted and unique, like resolveTopics(), so a tick compares like with like.
    this.exact = [...new Set(options.topics.filter((t) => !isPattern(t)))].sort();
    this.hasPatterns = options.topics.some(isPattern);
    this.scheduler = new KeyedScheduler(Math.max(1, options.concurrency ?? 1));
    this.log = deps.logger.child({ group: options.group, subscription: options.topics.join(',') });
    this.policy = retryPolicy(options, this.log, deps.deadLetter);
  }

  /** Resolves once the consumer joined the group and got its assignment (or no topic matches yet). */
  async start(): Promise<void> {
    try {
      // An exact topic that does not exist yet is created, so the group can join it now.
      await Promise.all(this.exact.map((t) => this.deps.admin.ensureTopic(t)));
      const topics = await this.resolveTopics();
      if (topics.length > 0) await this.startConsumer(topics);
      else this.log.info('no topic matches the subscription yet; looking again every %d ms', this.deps.config.topicRefreshInterval);
    } catch (err) {
      await this.close();
      throw toBusError(err, `subscribe ${this.group}`, this.deps.config.brokers);
    }
    this.scheduleTick();
  }

  private async resolveTopics(): Promise<string[]> {
    const found = new Set(this.exact);
    if (this.hasPatterns) {
      for (const topic of await this.deps.admin.listTopics()) if (this.matches(topic)) found.add(topic);
    }
    return [...found].sort();
  }

  private scheduleTick(): void {
    if (this.closing.signal.aborted) return;
    this.refreshTimer = setTimeout(() => {
      this.op = this.op.then(() => this.tick()).finally(() => this.scheduleTick());
    }, this.deps.config.topicRefreshInterval);
    // Supervision alone must not keep the process alive.
    this.refreshTimer.unref();
  }

  private async tick(): Promise<void> {
    if (this.closing.signal.aborted) return;
    try {
      const topics = this.hasPatterns ? await this.resolveTopics() : this.exact;
      const changed = topics.length !== this.topics.length || topics.some((t, i) => t !== this.topics[i]);
      if (!changed && !this.consumerDead) return;
      if (changed) this.log.info({ topics }, 'subscribed topic set changed; restarting the consumer on the new set');
      else this.log.warn('consumer stopped after a failure; restarting it');
      await this.stopConsumer();
      if (topics.length > 0) await this.startConsumer(topics);
    } catch (err) {
      // The next tick tries again; until then the group simply has one consumer fewer.
      this.log.warn({ err }, 'could not refresh the subscription; retrying on the next tick');
    }
  }

  private async startConsumer(topics: string[]): Promise<void> {
    const { kafka, config } = this.deps;
    const t = this.timing;
    const { client, sockets } = kafka();
    const consumer = newConsumer(client, config, this.group, this.timing, this.closing.signal);
    this.consumer = consumer;
    this.consumerSockets = sockets;
    this.consumerDead = false;
    this.topics = topics;
    const waitFetch = this.options.from === 'end';
    let onClosing = (): void => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      let joined = false;
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        this.log.debug({ memberId: e.payload.memberId, assignment: e.payload.memberAssignment }, 'joined consumer group');
        joined = true;
        if (!waitFetch) resolve();
      });
      // With `from: 'end'` a new group's start offsets are fixed by the first fetch after joining (kafkajs
      // resolves "latest" then); waiting for it means a message published after subscribe() resolved is seen.
      consumer.on(consumer.events.FETCH, () => {
        if (joined) resolve();
      });
      consumer.on(consumer.events.CRASH, (e) => {
        const error = toBusError(e.payload.error, `consumer of group ${this.group}`, config.brokers);
        if (e.payload.restart) {
          this.log.warn({ err: error }, 'kafka consumer failed; kafkajs restarts it');
          return;
        }
        if (this.consumer === consumer) this.consumerDead = true;
        if (!this.closing.signal.aborted) this.log.error({ err: error }, 'kafka consumer stopped; restarting it on the next tick');
        reject(error);
      });
      onClosing = () => resolve();
      this.closing.signal.addEventListener('abort', onClosing, { once: true });
    });
    ready.catch(() => undefined);
    try {
      await connectConsumer(consumer, config, `consumer connect (group ${this.group})`);
      await consumer.subscribe({ topics, fromBeginning: this.options.from !== 'end' });
      consumer
        .run({
          eachBatchAutoResolve: false,
          // eachBatch commits itself after each batch (see afterBatch): kafkajs's autoCommit would hold the
          // next fetch until the commit is answered.
          autoCommit: false,
          // Bounds the gap between the commits inside a long batch (commitOffsetsIfNecessary).
          autoCommitInterval: COMMIT_EVERY_MS,
          partitionsConsumedConcurrently: Math.max(1, this.options.concurrency ?? 1),
          eachBatch: (payload) => this.eachBatch(payload),
        })
        .catch((err: unknown) => this.log.error({ err }, 'kafka consumer run failed'));
      await withTimeout(ready, t.joinTimeout, () => timeoutError(`join group ${this.group}`, t.joinTimeout, false, config.brokers));
      this.log.info({ topics }, 'consuming');
    } catch (err) {
      this.consumerDead = true;
      await this.stopConsumer();
      throw err;
    } finally {
      this.closing.signal.removeEventListener('abort', onClosing);
    }
  }

  private async stopConsumer(): Promise<void> {
    const consumer = this.consumer;
    const sockets = this.consumerSockets;
    this.consumer = undefined;
    this.consumerSockets = undefined;
    this.topics = [];
    if (!consumer) return;
    const bound = this.timing.handlerGrace + this.timing.maxWaitTimeInMs + this.deps.config.connectionTimeout * 2 + 1_000;
    await withTimeout(consumer.disconnect(), bound, () => new Error(`consumer of group ${this.group} did not stop within ${bound} ms`)).catch((err: unknown) =>
      this.log.warn({ err }, 'kafka consumer did not disconnect cleanly'),
    );
    // A consumer that failed to start (a silent broker, a slow join) may still be retrying inside kafkajs.
    sockets?.destroy();
  }

  /**
   * Commits what the batches resolved. `wait`: the batch gives its partitions up (or kafkajs restarts it),
   * so the commit must be answered before it returns; otherwise the commit is sent now and answered while
   * the next fetch is under way. Commits never overlap: one ending while another is in flight is sent once
   * that one was answered. A failed commit is logged; the next one carries its offsets too.
   */
  private async afterBatch(payload: EachBatchPayload, wait: boolean): Promise<void> {
    const commit = (): Promise<void> =>
      payload.commitOffsetsIfNecessary(payload.uncommittedOffsets()).catch((err: unknown) => this.log.debug({ err }, 'offset commit failed; the next commit carries these offsets'));
    if (this.committing) {
      this.commitAgain = commit;
      if (wait) await this.committing;
      return;
    }
    const run = async (): Promise<void> => {
      await commit();
      // Batches that ended meanwhile: their offsets (all resolved ones) in one more commit.
      while (this.commitAgain) {
        const again = this.commitAgain;
        this.commitAgain = undefined;
        await again();
      }
    };
    const committing = run().finally(() => {
      if (this.committing === committing) this.committing = undefined;
    });
    this.committing = committing;
    if (wait) await committing;
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    // The previous batch's commit went out before this batch's fetch, so it is (nearly always) answered.
    if (this.committing) await this.committing;
    const { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale } = payload;
    // Stops retries on rebalance or close. Not AbortSignal.any: each call registers its result on the
    // long-lived closing signal until GC collects it, one entry per batch on a busy consumer.
    const stopRetries = new AbortController();
    const onClosing = (): void => stopRetries.abort();
    if (this.closing.signal.aborted) stopRetries.abort();
    else this.closing.signal.addEventListener('abort', onClosing, { once: true });
    const abandon = new AbortController();
    this.abandons.add(abandon);
    const signal = stopRetries.signal;
    // Every handler in flight (up to `concurrency`) listens on both: that many listeners is expected.
    const listeners = Math.max(1, this.options.concurrency ?? 1) + 8;
    setMaxListeners(listeners, stopRetries.signal, abandon.signal);
    let lost: unknown;
    let nextCommit = Date.now() + COMMIT_EVERY_MS;
    let graceTimer: NodeJS.Timeout | undefined;
    // kafkajs heartbeats only between fetches; a slow handler (or a retry backoff) must not cost the session.
    const beat = setInterval(() => {
      heartbeat().catch((err: unknown) => {
        if (lost !== undefined) return;
        // Usually a rebalance: stop retrying, let the handlers in flight finish within the grace period,
        // then give the partition up with its offsets unresolved (they will be redelivered).
        lost = err;
        stopRetries.abort();
        graceTimer = setTimeout(() => abandon.abort(), this.timing.handlerGrace);
      });
    }, this.timing.heartbeatInterval);
    const messages = batch.messages;
    /** Set once a message could not be acked: nothing after it may start (its key's order would break). */
    let broken = false;
    const done = new Array<boolean>(messages.length).fill(false);
    /** Index of the first message not yet known handled: offsets below it are resolved. */
    let next = 0;
    let committing: Promise<void> | undefined;
    const advance = (): void => {
      const from = next;
      while (next < messages.length && done[next]) next += 1;
      if (next === from) return;
      resolveOffset(messages[next - 1]!.offset);
      // kafkajs commits after each batch; inside a long one, at most once per COMMIT_EVERY_MS.
      if (!committing && Date.now() >= nextCommit) {
        nextCommit = Date.now() + COMMIT_EVERY_MS;
        committing = commitOffsetsIfNecessary()
          .catch((err: unknown) => this.log.debug({ err }, 'intermediate offset commit failed; the batch end commits again'))
          .finally(() => (committing = undefined));
      }
    };
    try {
      // Keys of one partition run in parallel (up to `concurrency`), one message at a time per key, like the
      // other adapters; offsets are resolved only up to the first message not yet handled, so a crash or a
      // rebalance redelivers from there (at least once, never a gap).
      const lanePrefix = `${batch.topic}\u0000${batch.partition}\u0000`;
      const tasks = messages.map((message, i) =>
        this.scheduler.push(message.key === null ? null : lanePrefix + message.key.toString('latin1'), async () => {
          if (broken || lost !== undefined || signal.aborted || !isRunning() || isStale()) {
            broken = true;
            return;
          }
          let outcome: DeliveryOutcome | 'abandoned';
          try {
            outcome = await unlessAbandoned(this.handle(batch.topic, batch.partition, message, signal), abandon.signal);
          } catch (err) {
            broken = true;
            throw err;
          }
          if (outcome !== 'handled' && outcome !== 'dead-lettered') {
            broken = true;
            return;
          }
          done[i] = true;
          advance();
        }),
      );
      const results = await Promise.allSettled(tasks);
      await committing;
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      const rethrow = failed !== undefined && lost === undefined && !this.closing.signal.aborted;
      // Before giving the partitions up (or the restart below) the resolved offsets must be committed.
      await this.afterBatch(payload, rethrow || lost !== undefined || this.closing.signal.aborted || !isRunning());
      // A dead letter that could not be written: kafkajs restarts the partition from the last committed offset.
      if (rethrow) throw failed.reason;
    } finally {
      clearInterval(beat);
      clearTimeout(graceTimer);
      this.abandons.delete(abandon);
      this.closing.signal.removeEventListener('abort', onClosing);
    }
    if (lost !== undefined && !this.closing.signal.aborted) throw lost;
  }

  private async handle(topic: string, partition: number, message: KafkaMessage, signal: AbortSignal): Promise<DeliveryOutcome> {
    const decoded = decodeMessage(topic, partition, message);
    if (decoded.ok) return deliverWithRetry(decoded.delivery, { ...this.policy, signal });
    // Not a CloudEvent: no handler can make sense of it and retrying cannot help; park it as it is.
    const { code, message: text } = describeError(decoded.error);
    this.log.warn({ err: decoded.error, topic, partition, offset: message.offset }, 'record is not a CloudEvent; moving it to the DLQ as it is');
    const headers = {
      ...decodeHeaders(message.headers, false),
      [DlqHeaders.originalTopic]: topic,
      [DlqHeaders.errorCode]: code,
      [DlqHeaders.errorMessage]: text.slice(0, 2_000),
      [DlqHeaders.attempts]: '1',
      [DlqHeaders.failedAt]: new Date().toISOString(),
      [DlqHeaders.group]: this.group,
    };
    const value = message.value ?? Buffer.alloc(0);
    await this.deps.publishRecords(dlqTopic(topic), [{ message: { key: message.key, value, headers }, bytes: value.length }]);
    return 'dead-lettered';
  }

  /** Stops fetching, waits (bounded) for handlers in flight, commits and leaves the group. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing.abort();
    clearTimeout(this.refreshTimer);
    const grace = setTimeout(() => {
      for (const a of this.abandons) a.abort();
    }, this.timing.handlerGrace);
    try {
      // A swap in progress ends quickly once `closing` aborted (its join wait resolves on abort).
      await withTimeout(this.op, this.timing.handlerGrace, () => new Error('swap did not finish')).catch(() => undefined);
      await this.stopConsumer();
    } finally {
      clearTimeout(grace);
      this.deps.onClosed?.();
    }
  }
}
