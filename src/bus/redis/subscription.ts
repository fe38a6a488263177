import { withTimeout } from '../../async.js';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { BusError, ErrorCodes, describeError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { sleep } from '../../async.js';
import { deliverWithRetry, KeyedScheduler, retryPolicy, type RetryPolicy } from '../attempts.js';
import type { RedisBusConfig } from '../../config/bus.js';
import { dlqTopic } from '../topics.js';
import { DlqHeaders, type BusMessage, type Delivery, type SubscribeOptions, type Subscription } from '../types.js';
import { AckBatcher } from './acks.js';
import { connect, disconnect, openConnection, toBusError, type RedisConnection } from './connection.js';
import { decodeEntry, rawFields, type EncodedMessage } from './entries.js';
import type { RedisKeys } from './keys.js';
import { GroupMembership } from './membership.js';
import type { Owned } from './partitions.js';
import { PendingRecovery } from './pending.js';
import { LOW_WATER, ReadLoop } from './read-loop.js';
import { Notifier } from '../../async.js';
import { TopicDiscovery } from './topic-discovery.js';

/*
 * Per-key order across the consumers of a group
 * ---------------------------------------------
 * A Redis consumer group hands each entry to whichever consumer reads next, so two consumers could work on
 * one key at the same time. We therefore do what Kafka does, on top of Redis:
 *
 * 1. Virtual partitions. A topic is N streams; a message goes to stream hash(key) % N (publisher.ts), so all
 *    messages of a key sit in one stream, in publish order (topic-discovery.ts finds the topics).
 * 2. Partition leases. Within a group, a stream is read by at most one consumer at a time: the one holding
 *    the lease key `<prefix>g:<group>:lease:<topic>:<p>` (PX claimIdle, renewed by a heartbeat every
 *    claimIdle/3 at most 1 s). Within that consumer, KeyedScheduler runs one message per key at a time.
 * 3. Fair share. Consumers heartbeat into a members zset; each plans its share with the group lease policy
 *    (leases.ts) and gives back what exceeds it only once its in-flight messages are handled and
 *    acknowledged (membership.ts), so the next owner never runs a key concurrently with us.
 * 4. Takeover and sweep. A consumer that takes a lease first claims everything still pending in that stream
 *    and queues it ahead of new entries; it also periodically claims idle entries of its streams
 *    (pending.ts).
 * 5. Reading (read-loop.ts) and acknowledging (acks.ts) only touch partitions whose lease is current.
 *
 * A consumer that stops heartbeating (crash, partition, long pause) loses its leases after claimIdle; it
 * stops starting handlers on partitions whose lease it cannot confirm in time.
 */

/** What a subscription needs from its bus. */
export interface SubscriptionContext {
  config: RedisBusConfig;
  keys: RedisKeys;
  main: RedisConnection;
  logger: Logger;
  publish(topic: string, messages: readonly BusMessage[]): Promise<void>;
  publishEncoded(topic: string, messages: EncodedMessage[]): Promise<void>;
  rememberPartitions(topic: string, partitions: number): void;
  onClosed(subscription: RedisSubscription): void;
}

export class RedisSubscription implements Subscription {
  readonly group: string;
  private readonly consumer = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly log: Logger;
  private readonly scheduler: KeyedScheduler;
  private readonly policy: RetryPolicy;
  private readonly abort = new AbortController();
  private readonly blocking: RedisConnection;
  private readonly touched = new Set<string>();
  private readonly wake = new Notifier();
  private readonly drained = new Notifier();
  private readonly discovery: TopicDiscovery;
  private readonly membership: GroupMembership;
  private readonly pending: PendingRecovery;
  private readonly reader: ReadLoop;
  private readonly acks: AckBatcher;
  private queued = 0;
  private nextSweep = 0;
  private lastCycleError: string | undefined;
  private loops: Promise<unknown>[] = [];
  private closing: Promise<void> | undefined;

  private readonly ttl: number;
  private readonly heartbeatEvery: number;
  private readonly sweepEvery: number;

  constructor(
    private readonly ctx: SubscriptionContext,
    options: SubscribeOptions,
  ) {
    this.group = options.group;
    this.log = ctx.logger.child({ group: options.group, consumer: this.consumer });
    this.scheduler = new KeyedScheduler(options.concurrency ?? 1);
    this.ttl = ctx.config.claimIdle;
    this.heartbeatEvery = Math.max(50, Math.min(1_000, Math.floor(this.ttl / 3)));
    this.sweepEvery = Math.max(100, Math.floor(this.ttl / 2));
    this.policy = { ...retryPolicy(options, this.log, (topic, message) => ctx.publish(topic, [message])), signal: this.abort.signal };
    // Blocking reads get a connection of their own: an XREADGROUP BLOCK would stall every publish behind it.
    this.blocking = openConnection(ctx.config, { role: `consumer:${options.group}`, socketTimeout: ctx.config.blockTime + 10_000 }, this.log);

    const member = { group: this.group, consumer: this.consumer };
    const { main, keys } = ctx;
    const signal = this.abort.signal;
    const dispatch = (state: Owned, id: string, fields: readonly string[], attempt: number): void => this.dispatch(state, id, fields, attempt);
    this.discovery = new TopicDiscovery({ config: ctx.config, keys, main, group: this.group, topics: options.topics, from: options.from, log: this.log, rememberPartitions: ctx.rememberPartitions });
    this.membership = new GroupMembership({ ...member, main, keys, ttl: this.ttl, log: this.log, signal, drained: this.drained, reading: (state) => this.reader.reading.has(state) });
    this.pending = new PendingRecovery({ ...member, main, keys, ttl: this.ttl, log: this.log, signal, touched: this.touched, isOwner: (state) => this.membership.isOwner(state), dispatch });
    this.reader = new ReadLoop({
      ...member,
      blocking: this.blocking,
      blockTime: ctx.config.blockTime,
      idleWait: this.heartbeatEvery,
      log: this.log,
      signal,
      wake: this.wake,
      drained: this.drained,
      queued: () => this.queued,
      readable: () => {
        const now = Date.now();
        return [...this.membership.owned.values()].filter((s) => s.ready && !s.releasing && s.validUntil > now);
      },
      ownerOf: (stream) => this.membership.owned.get(stream),
      touched: this.touched,
      createGroups: (refs, startId) => this.discovery.createGroups(refs, startId),
      dispatch,
    });
    this.acks = new AckBatcher(main, this.group, this.log, () => this.drained.notify());
  }

  /**
   * Joins the group: creates the groups on the streams, takes this consumer's share of the partitions and
   * queues their backlog. Resolves once reading has begun, so a publish right after it is delivered.
   */
  async start(): Promise<void> {
    try {
      await connect(this.blocking, this.ctx.config, this.ctx.config.publishTimeout);
      await this.cycle(true);
      // A joining consumer waits (bounded) for the others to hand over its share, so that "subscribed"
      // means "consuming" for it too.
      const deadline = Date.now() + Math.min(this.ttl + 3 * this.heartbeatEvery, 10_000);
      while (!this.membership.balanced && Date.now() < deadline && !this.abort.signal.aborted) {
        await sleep(Math.max(25, Math.floor(this.heartbeatEvery / 2)), this.abort.signal);
        await this.cycle(false);
      }
    } catch (err) {
      await this.close();
      throw toBusError(err, `subscribe ${this.group}`);
    }
    if (this.abort.signal.aborted) throw new BusError(ErrorCodes.BUS_CLOSED, `subscribe ${this.group}: the bus closed while joining the group`);
    this.loops = [this.reader.run(), this.cycleLoop()];
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- coordination -----------------------------------------------------------------------------------

  private async cycleLoop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      await sleep(this.heartbeatEvery, this.abort.signal);
      if (this.abort.signal.aborted) break;
      try {
        await this.cycle(false);
        if (this.lastCycleError) this.log.info('consumer group coordination recovered');
        this.lastCycleError = undefined;
      } catch (err) {
        const { message } = describeError(err);
        if (message !== this.lastCycleError) this.log.warn({ err }, 'consumer group coordination failed; retrying');
        this.lastCycleError = message;
      }
    }
  }

  /** Topics, heartbeat, rebalance, takeovers and (when due) the sweep of idle pending entries. */
  private async cycle(initial: boolean): Promise<void> {
    await this.discovery.refresh(initial);
    this.membership.dropLapsed();
    const members = await this.membership.heartbeat();
    // All taken partitions are recorded before any takeover, so a failing one leaves the rest heartbeated (and retried).
    const taken = await this.membership.rebalance(members, this.discovery.partitions());
    for (const state of taken) await this.takeOver(state);
    for (const state of this.membership.owned.values()) {
      if (!state.ready && !state.releasing) await this.takeOver(state);
    }
    if (Date.now() >= this.nextSweep) {
      this.nextSweep = Date.now() + this.sweepEvery;
      await this.pending.sweep([...this.membership.owned.values()].filter((s) => s.ready));
    }
  }

  /** Claims the partition's pending backlog (any consumer's) and queues it before reading new entries. */
  private async takeOver(state: Owned): Promise<void> {
    await this.pending.claimBacklog(state);
    if (!this.membership.isOwner(state)) return;
    state.ready = true;
    this.wake.notify();
  }

  // ---- handling ---------------------------------------------------------------------------------------

  private dispatch(state: Owned, id: string, fields: readonly string[], attempt: number): void {
    state.inflight.add(id);
    let delivery: Delivery;
    try {
      delivery = decodeEntry(state.ref.topic, id, fields, attempt);
    } catch (err) {
      void this.deadLetterRaw(state, id, fields, err);
      return;
    }
    this.queued += 1;
    void this.scheduler.push(delivery.key, () => this.handle(state, delivery));
  }

  /** Never throws: the outcome decides between ack and leaving the entry pending for redelivery. */
  private async handle(state: Owned, delivery: Delivery): Promise<void> {
    const id = delivery.position;
    try {
      if (!this.membership.isCurrent(state)) {
        state.inflight.delete(id);
        return;
      }
      // A message delivered more than maxAttempts times goes straight to the DLQ (deliverWithRetry).
      const outcome = await deliverWithRetry(delivery, this.policy);
      if (outcome === 'aborted') state.inflight.delete(id);
      else this.acks.ack(state, id);
    } catch (err) {
      // The dead letter could not be written: leave the entry pending; the sweep brings it back.
      this.log.error({ err, eventId: delivery.event.id, topic: delivery.topic }, 'could not move a message to the DLQ; it stays pending');
      state.inflight.delete(id);
    } finally {
      this.queued -= 1;
      if (this.queued <= LOW_WATER || state.releasing) this.drained.notify();
    }
  }

  /** An entry that is not a cutover message cannot reach a handler: keep it, raw, on the DLQ. */
  private async deadLetterRaw(state: Owned, id: string, fields: readonly string[], cause: unknown): Promise<void> {
    const raw = rawFields(fields);
    const { code, message } = describeError(cause);
    const headers = JSON.stringify({
      [DlqHeaders.originalTopic]: state.ref.topic,
      [DlqHeaders.errorCode]: code,
      [DlqHeaders.errorMessage]: message.slice(0, 2_000),
      [DlqHeaders.attempts]: '0',
      [DlqHeaders.failedAt]: new Date().toISOString(),
      [DlqHeaders.group]: this.group,
    });
    this.log.error({ id, topic: state.ref.topic, err: cause }, 'undecodable stream entry; moving it to the DLQ');
    try {
      await this.ctx.publishEncoded(dlqTopic(state.ref.topic), [{ key: raw.key, event: raw.event || '{}', headers }]);
      this.acks.ack(state, id);
    } catch (err) {
      this.log.error({ err, id }, 'could not dead-letter an undecodable entry; it stays pending');
      state.inflight.delete(id);
    }
  }

  // ---- shutdown ---------------------------------------------------------------------------------------

  private async shutdown(): Promise<void> {
    this.abort.abort();
    this.acks.stop();
    this.wake.notify();
    this.drained.notify();
    // Drops the blocking read at once; entries Redis already handed to it stay pending for the next owner.
    this.blocking.disconnect();
    await Promise.allSettled(this.loops);
    const grace = Math.min(this.ttl, 10_000);
    await withTimeout(this.scheduler.idle(), grace, () => new Error('handlers still running')).catch(() => {
      this.log.warn({ running: this.scheduler.size, graceMs: grace }, 'closing with handlers still running; their messages will be redelivered');
    });
    await this.membership.settle(2_000);
    const leases = this.membership.surrender();
    const bounded = <T>(p: Promise<T>): Promise<unknown> => withTimeout(p, 2_000, () => new Error('timed out')).catch((err: unknown) => this.log.debug({ err }, 'cleanup step failed on close'));
    if (this.ctx.main.status === 'ready') {
      await bounded(this.acks.flush());
      await this.membership.leave(leases, bounded);
      await bounded(this.pending.forgetSelf());
    }
    await disconnect(this.blocking, 0);
    this.ctx.onClosed(this);
  }
}
