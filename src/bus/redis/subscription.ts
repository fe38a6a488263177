import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { BusError, ErrorCodes, describeError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { deliverWithRetry, KeyedScheduler, retryPolicy, sleep, type RetryPolicy } from '../attempts.js';
import type { RedisBusConfig } from '../options.js';
import { dlqTopic, topicsMatcher, isPattern } from '../topics.js';
import { DlqHeaders, type BusMessage, type Delivery, type SubscribeOptions, type Subscription } from '../types.js';
import { connect, disconnect, openConnection, toBusError, withTimeout, type RedisConnection } from './connection.js';
import { decodeEntry, rawFields, streamsOf, type EncodedMessage, type RawEntry } from './entries.js';
import { partitionOf, type RedisKeys } from './keys.js';
import { Notifier } from './signal.js';

/*
 * Per-key order across the consumers of a group
 * ---------------------------------------------
 * A Redis consumer group hands each entry to whichever consumer reads next, so two consumers could work on
 * one key at the same time. We therefore do what Kafka does, on top of Redis:
 *
 * 1. Virtual partitions. A topic is N streams; a message goes to stream hash(key) % N (publisher.ts), so all
 *    messages of a key sit in one stream, in publish order.
 * 2. Partition leases. Within a group, a stream is read by at most one consumer at a time: the one holding
 *    the lease key `<prefix>g:<group>:lease:<topic>:<p>` (SET NX PX claimIdle, renewed by a heartbeat every
 *    claimIdle/3 at most 1 s). Within that consumer, KeyedScheduler runs one message per key at a time.
 * 3. Fair share. Consumers heartbeat into a members zset (scored by expiry); each computes
 *    share = ceil(partitions / live members), takes free leases up to its share and gives back what exceeds
 *    it. A partition is given back only after its in-flight messages are handled and acknowledged (bounded by
 *    claimIdle, like Kafka's rebalance timeout), so the next owner never runs a key concurrently with us.
 * 4. Takeover. A consumer that takes a lease first claims everything still pending in that stream
 *    (XAUTOCLAIM, min-idle 0: the lease proves the previous owner is gone or has given up) and queues it
 *    ahead of new entries, so a dead consumer's messages are redone in order. XAUTOCLAIM bumps the delivery
 *    count Redis keeps; XPENDING reads it back as `attempt` (>= 2 after a crash), so a message that kills
 *    its consumer every time still reaches the DLQ after maxAttempts deliveries.
 * 5. Sweep. Every claimIdle/2 the owner also claims (XPENDING IDLE + XCLAIM) entries of its streams idle
 *    longer than claimIdle that it is not working on: entries whose dead letter could not be written, and
 *    entries a consumer read just as it lost the lease (a zombie whose blocking read returned after the
 *    takeover). The latter are redone late, the one case where per-key order can break, as with Kafka
 *    zombies.
 *
 * A consumer that stops heartbeating (crash, partition, long pause) loses its leases after claimIdle; it
 * stops starting handlers on partitions whose lease it cannot confirm in time.
 */

const READ_COUNT = 128;
/** Messages queued in one consumer above which it stops reading (exported for tests). */
export const HIGH_WATER = 2_048;
const LOW_WATER = 1_024;
const CLAIM_COUNT = 128;
const ACK_BATCH = 256;

interface PartitionRef {
  topic: string;
  partition: number;
  stream: string;
  lease: string;
}

/** A partition this consumer holds the lease of. A new object per acquisition. */
interface Owned {
  ref: PartitionRef;
  /** Entries dispatched and not yet acknowledged (the sweep leaves them alone). */
  inflight: Set<string>;
  /** Being given back: no more reads; the lease goes once inflight is empty. */
  releasing: boolean;
  /** Its backlog was claimed and queued: new entries may be read. */
  ready: boolean;
  /** Local deadline of the lease (set from the time the last renewal was sent). */
  validUntil: number;
}

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
  private readonly matches: (topic: string) => boolean;
  private readonly exactTopics: string[];
  private readonly hasPatterns: boolean;
  private readonly scheduler: KeyedScheduler;
  private readonly policy: RetryPolicy;
  private readonly abort = new AbortController();
  private readonly blocking: RedisConnection;

  private readonly topics = new Map<string, PartitionRef[]>();
  private readonly owned = new Map<string, Owned>();
  private readonly touched = new Set<string>();
  private reading = new Set<Owned>();
  private readonly wake = new Notifier();
  private readonly drained = new Notifier();
  private queued = 0;
  private acks: Array<[Owned, string]> = [];
  private ackScheduled = false;
  private ackFlush: Promise<void> | undefined;
  private readonly releases = new Set<Promise<void>>();
  private balanced = false;
  private registrySize = -1;
  private nextSweep = 0;
  private lastCycleError: string | undefined;
  private loops: Promise<unknown>[] = [];
  private closing: Promise<void> | undefined;

  private readonly ttl: number;
  private readonly heartbeatEvery: number;
  private readonly sweepEvery: number;

  constructor(
    private readonly ctx: SubscriptionContext,
    private readonly options: SubscribeOptions,
  ) {
    this.group = options.group;
    this.log = ctx.logger.child({ group: options.group, consumer: this.consumer });
    this.matches = topicsMatcher(options.topics);
    this.exactTopics = options.topics.filter((t) => !isPattern(t));
    this.hasPatterns = this.exactTopics.length < options.topics.length;
    this.scheduler = new KeyedScheduler(options.concurrency ?? 1);
    this.ttl = ctx.config.claimIdle;
    this.heartbeatEvery = Math.max(50, Math.min(1_000, Math.floor(this.ttl / 3)));
    this.sweepEvery = Math.max(100, Math.floor(this.ttl / 2));
    this.policy = { ...retryPolicy(options, this.log, (topic, message) => ctx.publish(topic, [message])), signal: this.abort.signal };
    // Blocking reads get a connection of their own: an XREADGROUP BLOCK would stall every publish behind it.
    this.blocking = openConnection(ctx.config, { role: `consumer:${options.group}`, socketTimeout: ctx.config.blockTime + 10_000 }, this.log);
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
      while (!this.balanced && Date.now() < deadline && !this.abort.signal.aborted) {
        await sleep(Math.max(25, Math.floor(this.heartbeatEvery / 2)), this.abort.signal);
        await this.cycle(false);
      }
    } catch (err) {
      await this.close();
      throw toBusError(err, `subscribe ${this.group}`);
    }
    if (this.abort.signal.aborted) throw new BusError(ErrorCodes.BUS_CLOSED, `subscribe ${this.group}: the bus closed while joining the group`);
    this.loops = [this.readLoop(), this.cycleLoop()];
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- membership, leases, discovery ------------------------------------------------------------------

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

  private async cycle(initial: boolean): Promise<void> {
    await this.refreshTopics(initial);
    this.dropLapsed();
    const members = await this.heartbeat();
    await this.rebalance(members);
    for (const state of this.owned.values()) {
      if (!state.ready && !state.releasing) await this.takeOver(state);
    }
    if (Date.now() >= this.nextSweep) {
      this.nextSweep = Date.now() + this.sweepEvery;
      await this.sweep();
    }
  }

  /** Finds the topics to consume (exact names, registry entries matching the patterns) and creates groups. */
  private async refreshTopics(initial: boolean): Promise<void> {
    const missingExact = this.exactTopics.filter((t) => !this.topics.has(t));
    if (!this.hasPatterns && missingExact.length === 0) return;
    const { main, keys, config } = this.ctx;
    // The registry only grows: an unchanged size means no new topic, and spares reading it every cycle.
    const size = await main.hlen(keys.registry);
    if (missingExact.length === 0 && size === this.registrySize) return;
    const registry = (await main.hgetall(keys.registry)) as Record<string, string>;
    const found = new Map<string, number>();
    for (const topic of missingExact) {
      let n = registry[topic];
      if (n === undefined) {
        // Subscribing first creates the topic, as Kafka's auto-create would; publishers adopt its count.
        await main.hsetnx(keys.registry, topic, config.partitions);
        n = (await main.hget(keys.registry, topic)) ?? String(config.partitions);
      }
      found.set(topic, Number(n));
    }
    if (this.hasPatterns) {
      for (const [topic, n] of Object.entries(registry)) {
        if (!this.topics.has(topic) && !found.has(topic) && this.matches(topic)) found.set(topic, Number(n));
      }
    }
    for (const [topic, n] of found) {
      // Topics present when we subscribe start where the caller asked; a topic that appears later is new,
      // so all of it comes after the subscription: read it from its start.
      const startId = initial && this.options.from === 'end' ? '$' : '0';
      const refs: PartitionRef[] = [];
      for (let p = 0; p < n; p++) refs.push({ topic, partition: p, stream: keys.stream(topic, p), lease: keys.lease(this.group, topic, p) });
      await this.createGroups(refs, startId);
      this.ctx.rememberPartitions(topic, n);
      this.topics.set(topic, refs);
      if (!initial) this.log.info({ topic, partitions: n }, 'subscribed to a new matching topic');
    }
    // Only once every new topic has its groups: a failure above makes the next cycle look again.
    this.registrySize = Object.keys(registry).length;
  }

  private async createGroups(refs: readonly PartitionRef[], startId: string): Promise<void> {
    await Promise.all(
      refs.map((ref) =>
        this.ctx.main.call('XGROUP', 'CREATE', ref.stream, this.group, startId, 'MKSTREAM').catch((err: Error) => {
          if (!/BUSYGROUP/.test(err.message)) throw err;
        }),
      ),
    );
  }

  /** A partition whose lease we could not confirm in time is treated as lost (another may hold it now). */
  private dropLapsed(): void {
    const now = Date.now();
    for (const state of [...this.owned.values()]) {
      if (state.validUntil <= now) {
        this.lose(state, 'lease not confirmed in time');
        void this.ctx.main.cutoverRelease(1, state.ref.lease, this.consumer).catch(() => undefined);
      }
    }
  }

  private async heartbeat(): Promise<number> {
    const states = [...this.owned.values()];
    const keys = [this.ctx.keys.members(this.group), ...states.map((s) => s.ref.lease)];
    const sentAt = Date.now();
    const reply = await withTimeout(this.ctx.main.cutoverHeartbeat(keys.length, ...keys, this.consumer, this.ttl), Math.max(100, Math.floor(this.ttl / 2)), () => new BusError(ErrorCodes.BUS_TIMEOUT, 'heartbeat timed out', { retriable: true }));
    states.forEach((state, i) => {
      if (reply[i + 1] === 1) state.validUntil = sentAt + this.ttl;
      else this.lose(state, 'lease taken over');
    });
    return Math.max(1, Number(reply[0]));
  }

  private lose(state: Owned, why: string): void {
    if (this.owned.get(state.ref.stream) !== state) return;
    this.owned.delete(state.ref.stream);
    this.log.warn({ topic: state.ref.topic, partition: state.ref.partition, why }, 'lost a partition');
  }

  private async rebalance(members: number): Promise<void> {
    const all = [...this.topics.values()].flat();
    if (all.length === 0) {
      this.balanced = true;
      return;
    }
    const share = Math.ceil(all.length / members);
    const active = [...this.owned.values()].filter((s) => !s.releasing);
    if (active.length > share) {
      const extra = active.sort((a, b) => a.inflight.size - b.inflight.size).slice(0, active.length - share);
      for (const state of extra) this.release(state);
    } else if (active.length < share) {
      // Each consumer tries the partitions in its own rotation, so joiners rarely race for the same lease.
      const offset = partitionOf(this.consumer, all.length);
      const candidates = [...all.slice(offset), ...all.slice(0, offset)].filter((ref) => !this.owned.has(ref.stream));
      if (candidates.length > 0) {
        const sentAt = Date.now();
        const got = await this.ctx.main.cutoverAcquire(candidates.length, ...candidates.map((c) => c.lease), this.consumer, this.ttl, share - active.length);
        // All recorded before any takeover, so a failing one leaves the rest heartbeated (and retried).
        const taken = got.map((index) => {
          const ref = candidates[index - 1]!;
          const state: Owned = { ref, inflight: new Set(), releasing: false, ready: false, validUntil: sentAt + this.ttl };
          this.owned.set(ref.stream, state);
          this.log.debug({ topic: ref.topic, partition: ref.partition }, 'took a partition');
          return state;
        });
        for (const state of taken) await this.takeOver(state);
      }
    }
    const mine = [...this.owned.values()].filter((s) => !s.releasing).length;
    this.balanced = mine >= Math.floor(all.length / members);
  }

  /** Claims the partition's pending backlog (any consumer's) and queues it before reading new entries. */
  private async takeOver(state: Owned): Promise<void> {
    await this.claimBacklog(state);
    if (this.owned.get(state.ref.stream) !== state) return;
    state.ready = true;
    this.wake.notify();
  }

  /** Gives a partition back once its in-flight messages are done (bounded by claimIdle). */
  private release(state: Owned): void {
    state.releasing = true;
    const done = (async () => {
      const deadline = Date.now() + this.ttl;
      while ((state.inflight.size > 0 || this.reading.has(state)) && Date.now() < deadline && !this.abort.signal.aborted) {
        await this.drained.wait(50, this.abort.signal);
      }
      if (this.abort.signal.aborted) return; // shutdown releases everything itself
      if (state.inflight.size > 0) this.log.warn({ topic: state.ref.topic, partition: state.ref.partition, inflight: state.inflight.size }, 'giving a partition back with handlers still running');
      if (this.owned.get(state.ref.stream) === state) this.owned.delete(state.ref.stream);
      await this.ctx.main.cutoverRelease(1, state.ref.lease, this.consumer);
      this.log.debug({ topic: state.ref.topic, partition: state.ref.partition }, 'gave a partition back');
    })().catch((err: unknown) => this.log.debug({ err }, 'releasing a partition failed; its lease will expire'));
    this.releases.add(done);
    void done.finally(() => this.releases.delete(done));
  }

  private async sweep(): Promise<void> {
    const states = [...this.owned.values()].filter((s) => s.ready);
    if (states.length === 0) return;
    for (const state of states) await this.claimIdle(state);
    await this.forgetDeadConsumers(states);
  }

  /**
   * The periodic sweep: claims entries of an owned stream idle longer than claimIdle that this consumer is
   * not working on. Not XAUTOCLAIM here: it would also claim (and bump the delivery count of) entries
   * still queued locally behind a slow backlog, and an inflated count sends a message to the DLQ without a
   * handler ever seeing it if this consumer then dies. XPENDING lists candidates with their counts; XCLAIM
   * (same min-idle, so a concurrent claim wins cleanly) takes only the ones we want.
   */
  private async claimIdle(state: Owned): Promise<void> {
    const { main } = this.ctx;
    let start = '-';
    for (;;) {
      const rows = (await main.call('XPENDING', state.ref.stream, this.group, 'IDLE', this.ttl, start, '+', CLAIM_COUNT)) as Array<[string, string, number, number]>;
      const wanted = rows.filter(([id]) => !state.inflight.has(id));
      if (wanted.length > 0) {
        const counts = new Map(wanted.map(([id, , , deliveries]) => [id, Number(deliveries) + 1]));
        const entries = (await main.call('XCLAIM', state.ref.stream, this.group, this.consumer, this.ttl, ...counts.keys())) as RawEntry[];
        if (this.owned.get(state.ref.stream) !== state) return;
        const fresh = entries.filter(([id, fields]) => fields !== null && !state.inflight.has(id));
        for (const [id, fields] of fresh) this.dispatch(state, id, fields!, counts.get(id) ?? 2);
        if (fresh.length > 0) this.log.info({ topic: state.ref.topic, partition: state.ref.partition, count: fresh.length }, 'claimed idle pending messages');
      }
      if (rows.length < CLAIM_COUNT || this.abort.signal.aborted || this.owned.get(state.ref.stream) !== state) return;
      start = `(${rows[rows.length - 1]![0]}`;
    }
  }

  /**
   * Removes from the group's streams consumers that are no longer members and own nothing, so crashed and
   * closed consumers (each subscription has a fresh name) do not pile up in XINFO.
   */
  private async forgetDeadConsumers(states: readonly Owned[]): Promise<void> {
    const { main } = this.ctx;
    const live = new Set(await main.zrange(this.ctx.keys.members(this.group), '0', '-1'));
    for (const state of states) {
      const rows = (await main.call('XINFO', 'CONSUMERS', state.ref.stream, this.group)) as unknown[][];
      for (const row of rows) {
        const info: Record<string, unknown> = {};
        for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
        const name = String(info.name);
        if (name !== this.consumer && !live.has(name) && Number(info.pending) === 0 && Number(info.idle) > this.ttl) {
          await main.call('XGROUP', 'DELCONSUMER', state.ref.stream, this.group, name);
        }
      }
    }
  }

  /**
   * On taking a partition: XAUTOCLAIMs every entry pending in the stream, whoever it was delivered to (the
   * lease proves they are gone or gave up), and dispatches them with the delivery count Redis keeps (read
   * back with XPENDING) as their attempt.
   */
  private async claimBacklog(state: Owned): Promise<void> {
    const { main } = this.ctx;
    let cursor = '0-0';
    for (;;) {
      const reply = (await main.call('XAUTOCLAIM', state.ref.stream, this.group, this.consumer, 0, cursor, 'COUNT', CLAIM_COUNT)) as [string, RawEntry[], string[]?];
      this.touched.add(state.ref.stream);
      const [next, entries] = reply;
      const fresh = entries.filter(([id, fields]) => fields !== null && !state.inflight.has(id));
      if (fresh.length > 0) {
        const counts = await this.deliveryCounts(state, fresh, entries.length);
        if (this.owned.get(state.ref.stream) !== state) return;
        for (const [id, fields] of fresh) this.dispatch(state, id, fields!, counts.get(id) ?? 2);
        this.log.info({ topic: state.ref.topic, partition: state.ref.partition, count: fresh.length }, 'claimed pending messages');
      }
      if (next === '0-0' || this.abort.signal.aborted || this.owned.get(state.ref.stream) !== state) return;
      cursor = next;
    }
  }

  private async deliveryCounts(state: Owned, entries: readonly RawEntry[], claimed: number): Promise<Map<string, number>> {
    const first = entries[0]![0];
    const last = entries[entries.length - 1]![0];
    const rows = (await this.ctx.main.call('XPENDING', state.ref.stream, this.group, first, last, claimed + state.inflight.size + 16, this.consumer)) as Array<[string, string, number, number]>;
    const counts = new Map<string, number>();
    for (const [id, , , deliveries] of rows) counts.set(id, Number(deliveries));
    return counts;
  }

  // ---- reading and handling ---------------------------------------------------------------------------

  private async readLoop(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      if (this.queued >= HIGH_WATER) {
        await this.drained.wait(1_000, this.abort.signal);
        continue;
      }
      const now = Date.now();
      const states = [...this.owned.values()].filter((s) => s.ready && !s.releasing && s.validUntil > now);
      if (states.length === 0) {
        await this.wake.wait(this.heartbeatEvery, this.abort.signal);
        continue;
      }
      this.reading = new Set(states);
      const streams = states.map((s) => s.ref.stream);
      let reply: unknown;
      try {
        reply = await this.blocking.call('XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', READ_COUNT, 'BLOCK', this.ctx.config.blockTime, 'STREAMS', ...streams, ...streams.map(() => '>'));
        failures = 0;
      } catch (err) {
        this.reading = new Set();
        this.drained.notify();
        if (this.abort.signal.aborted) break;
        failures += 1;
        const message = (err as Error)?.message ?? '';
        if (/NOGROUP/.test(message)) {
          // The stream or group was deleted under us (by hand, or a test cleaning up): make it again.
          await this.createGroups(states.map((s) => s.ref), '0').catch(() => undefined);
        } else if (failures === 1) {
          this.log.warn({ err }, 'reading from the group failed; retrying');
        }
        await sleep(Math.min(1_000, 50 * 2 ** Math.min(failures, 5)), this.abort.signal);
        continue;
      }
      for (const s of states) this.touched.add(s.ref.stream);
      for (const [stream, entries] of streamsOf(reply)) {
        const state = this.owned.get(stream);
        // Entries of a partition lost during the read stay pending; its new owner claims them.
        if (!state || !this.reading.has(state)) continue;
        for (const [id, fields] of entries) if (fields) this.dispatch(state, id, fields, 1);
      }
      this.reading = new Set();
      this.drained.notify();
    }
  }

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
      if (!this.isCurrent(state)) {
        state.inflight.delete(id);
        return;
      }
      // A message delivered more than maxAttempts times goes straight to the DLQ (deliverWithRetry).
      const outcome = await deliverWithRetry(delivery, this.policy);
      if (outcome === 'aborted') state.inflight.delete(id);
      else this.ack(state, id);
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
      this.ack(state, id);
    } catch (err) {
      this.log.error({ err, id }, 'could not dead-letter an undecodable entry; it stays pending');
      state.inflight.delete(id);
    }
  }

  private isCurrent(state: Owned): boolean {
    return this.owned.get(state.ref.stream) === state && Date.now() < state.validUntil;
  }

  // ---- acknowledgements -------------------------------------------------------------------------------

  private ack(state: Owned, id: string): void {
    this.acks.push([state, id]);
    if (this.acks.length >= ACK_BATCH) void this.flushAcks();
    else if (!this.ackScheduled) {
      this.ackScheduled = true;
      setImmediate(() => {
        this.ackScheduled = false;
        void this.flushAcks();
      });
    }
  }

  /** XACKs everything handled so far, one command per stream. Failed acks are kept and retried. */
  private flushAcks(): Promise<void> {
    if (this.ackFlush) return this.ackFlush.then(() => (this.acks.length > 0 ? this.flushAcks() : undefined));
    if (this.acks.length === 0) return Promise.resolve();
    const batch = this.acks;
    this.acks = [];
    this.ackFlush = (async () => {
      const byStream = new Map<string, Array<[Owned, string]>>();
      for (const item of batch) {
        const list = byStream.get(item[0].ref.stream);
        if (list) list.push(item);
        else byStream.set(item[0].ref.stream, [item]);
      }
      await Promise.all(
        [...byStream].map(async ([stream, items]) => {
          try {
            await this.ctx.main.call('XACK', stream, this.group, ...items.map(([, id]) => id));
            for (const [state, id] of items) state.inflight.delete(id);
          } catch (err) {
            this.log.debug({ err, stream, count: items.length }, 'XACK failed; will retry');
            this.acks.push(...items);
          }
        }),
      );
    })().finally(() => {
      this.ackFlush = undefined;
      this.drained.notify();
      if (this.acks.length > 0 && !this.ackScheduled && !this.closing) {
        this.ackScheduled = true;
        setTimeout(() => {
          this.ackScheduled = false;
          void this.flushAcks();
        }, 250);
      }
    });
    return this.ackFlush;
  }

  // ---- shutdown ---------------------------------------------------------------------------------------

  private async shutdown(): Promise<void> {
    this.abort.abort();
    this.wake.notify();
    this.drained.notify();
    // Drops the blocking read at once; entries Redis already handed to it stay pending for the next owner.
    this.blocking.disconnect();
    await Promise.allSettled(this.loops);
    const grace = Math.min(this.ttl, 10_000);
    await withTimeout(this.scheduler.idle(), grace, () => new Error('handlers still running')).catch(() => {
      this.log.warn({ running: this.scheduler.size, graceMs: grace }, 'closing with handlers still running; their messages will be redelivered');
    });
    await withTimeout(Promise.allSettled([...this.releases]), 2_000, () => new Error('release timed out')).catch(() => undefined);
    const { main, keys } = this.ctx;
    const leases = [...this.owned.values()].map((s) => s.ref.lease);
    this.owned.clear();
    const bounded = <T>(p: Promise<T>): Promise<unknown> => withTimeout(p, 2_000, () => new Error('timed out')).catch((err: unknown) => this.log.debug({ err }, 'cleanup step failed on close'));
    if (main.status === 'ready') {
      await bounded(this.flushAcks());
      if (leases.length > 0) await bounded(main.cutoverRelease(leases.length, ...leases, this.consumer));
      await bounded(main.zrem(keys.members(this.group), this.consumer));
      await bounded(this.forgetSelf());
    }
    await disconnect(this.blocking, 0);
    this.ctx.onClosed(this);
  }

  /** Removes this consumer's name from the streams it used, where it owns nothing any more. */
  private async forgetSelf(): Promise<void> {
    const { main } = this.ctx;
    await Promise.all(
      [...this.touched].map(async (stream) => {
        const pending = (await main.call('XPENDING', stream, this.group, '-', '+', 1, this.consumer)) as unknown[];
        if (pending.length === 0) await main.call('XGROUP', 'DELCONSUMER', stream, this.group, this.consumer);
      }),
    );
  }
}
