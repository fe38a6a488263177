import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { Notifier, sleep, withTimeout } from '../../async.js';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import type { RabbitMetrics } from './metrics.js';
import { deliverWithRetry, dlqHeaders, KeyedScheduler, retryPolicy, type RetryPolicy } from '../attempts.js';
import { fairShare } from '../leases.js';
import { partitionOf } from '../hash.js';
import { dlqTopic, topicsMatcher } from '../topics.js';
import type { BusMessage, SubscribeOptions, Subscription } from '../types.js';
import { callerHeaders, decodeMessage, headerString, Internal, rawOutgoing, topicOf, type OutgoingMessage } from './codec.js';
import { RabbitConnection, toBusError } from './connection.js';
import type { RabbitNames } from './names.js';
import { onChannel, type Topology } from './topology.js';
import { HistorySetup } from './backfill.js';

/** How long close() and a give-back wait for handlers in flight before closing the channel (which requeues). */
const HANDLER_GRACE_MS = 5_000;

export interface SubscriptionDeps {
  config: RabbitmqBusConfig;
  names: RabbitNames;
  topology: Topology;
  logger: Logger;
  /** Publishes a dead letter; resolves once RabbitMQ confirmed it. */
  deadLetter(topic: string, message: BusMessage): Promise<void>;
  /** Publishes an already encoded message (the dead letter of a body that is not a CloudEvent). */
  publishRaw(topic: string, message: OutgoingMessage): Promise<void>;
  onClosed(): void;
  /** Partition depth, group size and redeliveries, when the bus was given a registry. */
  metrics?: RabbitMetrics | undefined;
}

/** A partition queue this member consumes: it holds the partition's lock queue while it does. */
interface Held {
  partition: number;
  channel: Channel;
  consumerTag: string;
  /** Aborted when the partition is lost or given back: retries stop, nothing more is acknowledged. */
  abort: AbortController;
  inFlight: number;
  drained: Notifier;
  /** Ids of a new group's history that the partition queue also holds: skipped there once (backfill.ts). */
  seam?: Set<string>;
  /** Set when the history queue's end marker arrived: its consumer is being replaced, a cancel is expected. */
  historyDone?: boolean;
}

/**
 * One member of a consumer group. The group's messages sit in `partitions` quorum queues (a key always
 * lands in the same one); each is consumed by one member at a time, which keeps every key in order while
 * the members share the work.
 *
 * Who consumes which partition is decided with exclusive queues as locks: a member may consume partition
 * `p` only while it holds the exclusive queue `<prefix>.group.<group>.p<p>.lock`, which RabbitMQ lets one
 * connection declare at a time and deletes when that connection dies. So a crashed or cut-off member's
 * partitions free up as soon as RabbitMQ notices (at once for a killed process, within the heartbeat for
 * a silent network), and its unacknowledged messages go back to their queue, counted in x-delivery-count.
 * The partition queues are also single-active-consumer, so a second consumer could never overlap anyway.
 *
 * Every `rebalanceInterval` a member counts the group (consumers of the group's members queue) and moves
 * towards ceil(partitions / members): it claims free locks, or gives back its extra partitions after their
 * messages in flight are handled and acknowledged.
 */
export class RabbitSubscription implements Subscription {
  readonly group: string;
  private readonly member = randomUUID();
  private readonly log: Logger;
  private readonly conn: RabbitConnection;
  private readonly scheduler: KeyedScheduler;
  private readonly policy: Omit<RetryPolicy, 'signal'>;
  private readonly matches: (topic: string) => boolean;
  private readonly held = new Map<number, Held>();
  private readonly closing = new AbortController();
  private readonly history: HistorySetup;
  /** Connection epoch the group's topology and members consumer were set up on. */
  private readyEpoch = -1;
  private membersChannel: Channel | undefined;
  private members = 1;
  private loop: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly options: SubscribeOptions,
    private readonly deps: SubscriptionDeps,
  ) {
    this.group = options.group;
    this.log = deps.logger.child({ group: options.group, subscription: options.topics.join(','), member: this.member.slice(0, 8) });
    this.conn = new RabbitConnection(deps.config, `cutover consumer ${options.group}`, this.log);
    this.conn.onLost(() => this.loseAll('connection lost'));
    const concurrency = Math.max(1, options.concurrency ?? 1);
    this.scheduler = new KeyedScheduler(concurrency);
    this.policy = retryPolicy(options, this.log, deps.deadLetter);
    this.matches = topicsMatcher(options.topics);
    this.history = new HistorySetup(deps.config, deps.names, deps.topology, this.log, this.closing.signal);
  }

  /**
   * Declares the group's queues, joins it, and resolves once this member holds its fair share (the floor
   * of partitions / members) or a few rebalance rounds passed: the members already there give back their
   * extra partitions within a round.
   */
  async start(): Promise<void> {
    const { config } = this.deps;
    try {
      await this.tick();
    } catch (err) {
      await this.close();
      throw toBusError(err, `subscribe ${this.group}`, config.url);
    }
    this.loop = this.run();
    const bound = Math.max(5_000, config.rebalanceInterval * 5);
    const deadline = Date.now() + bound;
    while (Date.now() < deadline && !this.closing.signal.aborted && this.held.size < fairShare(config.partitions, this.members).min) {
      await sleep(Math.min(50, config.rebalanceInterval), this.closing.signal);
    }
    this.log.info({ partitions: [...this.held.keys()], members: this.members }, 'consuming');
  }

  private async run(): Promise<void> {
    while (await sleep(this.deps.config.rebalanceInterval, this.closing.signal)) {
      await this.tick().catch((err: unknown) => this.log.warn({ err: toBusError(err, `rebalance ${this.group}`, this.deps.config.url) }, 'rebalance failed; retrying next round'));
    }
  }

  /** One rebalance round: (re)connect and declare if needed, count the group, claim or give back. */
  private async tick(): Promise<void> {
    if (this.closing.signal.aborted) return;
    const { config, names, topology } = this.deps;
    const model = await this.conn.get();
    if (this.readyEpoch !== this.conn.epoch) {
      // A new group that starts from the start gets the topics' history first (backfill.ts); while another
      // member sets that up, this one waits: consuming before the history is in place would reorder keys.
      if (this.options.from !== 'end' && !(await topology.groupExists(model, this.group))) {
        if (!(await this.history.run(model, this.group, this.options.topics))) return;
      }
      await topology.group(model, this.group, this.options.topics);
      const ch = await model.createChannel();
      ch.on('error', (err: Error) => this.log.warn({ err }, 'members channel closed by the broker'));
      ch.on('close', () => {
        if (this.membersChannel === ch) this.membersChannel = undefined;
      });
      // Nothing is ever published to the members queue: consuming it is how a member is counted.
      await ch.consume(names.members(this.group), () => undefined, { noAck: true });
      this.membersChannel = ch;
      this.readyEpoch = this.conn.epoch;
    }
    if (!this.membersChannel) {
      this.readyEpoch = -1;
      return;
    }
    this.members = Math.max(1, (await this.membersChannel.checkQueue(names.members(this.group))).consumerCount);
    if (this.closing.signal.aborted) return;
    await this.sample(this.membersChannel);
    const target = Math.ceil(config.partitions / this.members);
    if (this.held.size > target) {
      // Give back the partitions with the least work in flight first, the highest numbered on a tie.
      const extra = [...this.held.values()].sort((a, b) => a.inFlight - b.inFlight || b.partition - a.partition).slice(0, this.held.size - target);
      await Promise.all(extra.map((h) => this.giveBack(h, model)));
      return;
    }
    // Claim in a rotation of this member's own, so members joining together rarely race for the same lock.
    const start = partitionOf(this.member, config.partitions);
    for (let i = 0; i < config.partitions && this.held.size < target && !this.closing.signal.aborted; i++) {
      const p = (start + i) % config.partitions;
      if (!this.held.has(p)) await this.claim(model, p);
    }
  }

  /** Samples the group's size and the backlog of the partitions held (passive declares on the members channel). */
  private async sample(ch: Channel): Promise<void> {
    const metrics = this.deps.metrics;
    if (!metrics) return;
    metrics.members.set({ group: this.group }, this.members);
    for (const p of this.held.keys()) {
      const { messageCount } = await ch.checkQueue(this.deps.names.partition(this.group, p));
      metrics.depth.set({ group: this.group, partition: String(p) }, messageCount);
    }
  }

  /** Takes partition `p` if its lock is free: declares the lock queue, then consumes the partition queue. */
  private async claim(model: ChannelModel, p: number): Promise<void> {
    const { names, config } = this.deps;
    const ch = await model.createChannel();
    ch.on('error', () => undefined);
    try {
      await ch.assertQueue(names.lock(this.group, p), { exclusive: true, durable: false, arguments: { 'x-queue-type': 'classic' } });
    } catch (err) {
      // 405 RESOURCE_LOCKED: another live member holds it. The failed declaration closed the channel.
      if ((err as { code?: number }).code !== 405) throw err;
      return;
    }
    const abort = new AbortController();
    setMaxListeners(Math.max(1, this.options.concurrency ?? 1) + 8, abort.signal);
    const held: Held = { partition: p, channel: ch, consumerTag: '', abort, inFlight: 0, drained: new Notifier() };
    ch.on('close', () => this.lose(held, 'channel closed'));
    try {
      await ch.prefetch(config.prefetch);
      const history = await this.historyPending(model, p);
      const { consumerTag } = history
        ? await ch.consume(names.history(this.group, p), (m) => this.onHistory(held, m, model), { noAck: false })
        : await ch.consume(names.partition(this.group, p), (m) => this.onMessage(held, m), { noAck: false });
      held.consumerTag = consumerTag;
    } catch (err) {
      // The lock stays with this connection; the next round claims the partition again.
      abort.abort();
      await ch.close().catch(() => undefined);
      throw err;
    }
    this.held.set(p, held);
    this.log.debug({ partition: p }, 'claimed a partition');
  }

  /**
   * Whether partition `p` still has a history queue to consume first. One with neither messages nor
   * consumers had its end marker handled by a member that lost the partition before deleting it: it is
   * deleted now. A consumer still counted is a dead member's that RabbitMQ has not removed yet: the messages
   * it held come back to the queue, so the history is consumed, not deleted. (Quorum queues refuse
   * `ifEmpty` deletes with a connection error; the counts stand in for it, as this member holds the lock.)
   */
  private async historyPending(model: ChannelModel, p: number): Promise<boolean> {
    const queue = this.deps.names.history(this.group, p);
    const found = await onChannel(model, (ch) => ch.checkQueue(queue)).then(
      (q) => q,
      (err: { code?: number }) => {
        if (err?.code !== 404) throw err;
        return undefined;
      },
    );
    if (!found) return false;
    if (found.messageCount > 0 || found.consumerCount > 0) return true;
    await onChannel(model, (ch) => ch.deleteQueue(queue));
    return false;
  }

  /** A delivery from a history queue: handled like any other, until the end marker hands over to the partition queue. */
  private onHistory(held: Held, m: ConsumeMessage | null, model: ChannelModel): void {
    // Deleting the drained history queue may reach its consumer as a broker cancel: expected, not a loss.
    if (m === null && held.historyDone) return;
    if (m !== null && headerString(m, Internal.historyEnd) !== undefined) {
      held.historyDone = true;
      void this.endHistory(held, m, model).catch((err: unknown) => {
        this.log.warn({ err, partition: held.partition }, 'could not switch from the history to the partition queue; releasing the partition');
        this.lose(held, 'history hand-over failed');
        void held.channel.close().catch(() => undefined);
      });
      return;
    }
    this.onMessage(held, m);
  }

  /**
   * The history of a partition is handled: once every earlier message is acknowledged, acknowledge the marker,
   * delete the history queue and consume the partition queue, skipping the ids the marker lists (they were
   * both copied into the history and routed live).
   */
  private async endHistory(held: Held, marker: ConsumeMessage, model: ChannelModel): Promise<void> {
    while (held.inFlight > 0 && !held.abort.signal.aborted) await held.drained.wait(1_000, held.abort.signal);
    if (held.abort.signal.aborted) return;
    let seam: string[] = [];
    try {
      const parsed: unknown = JSON.parse(marker.content.toString('utf8'));
      if (Array.isArray(parsed)) seam = parsed.filter((id): id is string => typeof id === 'string');
    } catch {
      // A marker without a readable list: the overlap is redelivered (at least once), never lost.
    }
    const { names } = this.deps;
    await held.channel.cancel(held.consumerTag);
    held.channel.ack(marker);
    await onChannel(model, (ch) => ch.deleteQueue(names.history(this.group, held.partition)));
    held.seam = new Set(seam);
    const { consumerTag } = await held.channel.consume(names.partition(this.group, held.partition), (m) => this.onMessage(held, m), { noAck: false });
    held.consumerTag = consumerTag;
    this.log.debug({ partition: held.partition, seam: seam.length }, 'history handled; consuming the partition queue');
  }

  private onMessage(held: Held, m: ConsumeMessage | null): void {
    if (m === null) {
      this.lose(held, 'consumer cancelled by the broker (queue deleted?)');
      return;
    }
    const ack = (): void => {
      if (held.abort.signal.aborted) return;
      try {
        held.channel.ack(m);
      } catch {
        // Channel gone: RabbitMQ requeues the message, which is redelivered (at least once).
      }
    };
    const topic = topicOf(m);
    // `#` patterns on the topic exchange also match dead-letter topics, which cutover's wildcards exclude.
    if (!this.matches(topic)) return ack();
    if (held.seam?.size && m.properties.messageId !== undefined && held.seam.delete(String(m.properties.messageId))) return ack();
    held.inFlight += 1;
    if (m.fields.redelivered) this.deps.metrics?.redeliveries.inc({ group: this.group, topic });
    const position = `${held.partition}:${m.fields.deliveryTag}`;
    const decoded = decodeMessage(m, position);
    const key = decoded.ok ? decoded.delivery.key : null;
    void this.scheduler
      .push(key, async () => {
        if (held.abort.signal.aborted) return;
        try {
          const outcome = decoded.ok ? await deliverWithRetry(decoded.delivery, { ...this.policy, signal: held.abort.signal }) : await this.deadLetterRaw(m, decoded.error);
          if (outcome !== 'aborted') ack();
        } catch (err) {
          // The dead letter could not be written: give the partition up unacknowledged, so that the message
          // and the ones behind it are redelivered in order once the partition is claimed again.
          this.log.error({ err, topic, partition: held.partition }, 'could not write a dead letter; releasing the partition');
          this.lose(held, 'dead letter failed');
          await held.channel.close().catch(() => undefined);
        }
      })
      .finally(() => {
        held.inFlight -= 1;
        if (held.inFlight === 0) held.drained.notify();
      });
  }

  private async deadLetterRaw(m: ConsumeMessage, error: unknown): Promise<'dead-lettered'> {
    const topic = topicOf(m);
    this.log.warn({ err: error, topic }, 'message is not a CloudEvent; moving it to the DLQ as it is');
    await this.deps.publishRaw(dlqTopic(topic), rawOutgoing(m, dlqHeaders(callerHeaders(m), { topic, error, attempts: 1, group: this.group })));
    return 'dead-lettered';
  }

  /** Forgets a partition at once (its channel or connection is gone, or it failed): nothing more is acked. */
  private lose(held: Held, why: string): void {
    if (this.held.get(held.partition) !== held) return;
    this.held.delete(held.partition);
    this.deps.metrics?.depth.remove({ group: this.group, partition: String(held.partition) });
    held.abort.abort();
    if (!this.closing.signal.aborted) this.log.warn({ partition: held.partition, why }, 'lost a partition');
  }

  private loseAll(why: string): void {
    this.readyEpoch = -1;
    this.membersChannel = undefined;
    for (const held of [...this.held.values()]) this.lose(held, why);
  }

  /**
   * Gives a partition back: stops its consumer, lets the messages already delivered finish (bounded), then
   * closes its channel (requeueing whatever is left, in order) and deletes the lock, so the next member
   * starts exactly where this one stopped.
   */
  private async giveBack(held: Held, model: ChannelModel | undefined): Promise<void> {
    if (this.held.get(held.partition) !== held) return;
    await held.channel.cancel(held.consumerTag).catch(() => undefined);
    if (held.inFlight > 0) {
      const deadline = Date.now() + HANDLER_GRACE_MS;
      while (held.inFlight > 0 && Date.now() < deadline) await held.drained.wait(deadline - Date.now());
    }
    this.held.delete(held.partition);
    this.deps.metrics?.depth.remove({ group: this.group, partition: String(held.partition) });
    held.abort.abort();
    await held.channel.close().catch(() => undefined);
    if (model) await onChannel(model, (ch) => ch.deleteQueue(this.deps.names.lock(this.group, held.partition))).catch(() => undefined);
    this.log.debug({ partition: held.partition }, 'gave a partition back');
  }

  /** Stops consuming, waits (bounded) for handlers in flight, then leaves the group. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing.abort();
      await this.loop?.catch(() => undefined);
      await withTimeout(
        Promise.all([...this.held.values()].map((h) => this.giveBack(h, undefined))),
        HANDLER_GRACE_MS + 1_000,
        () => new Error('give-back timed out'),
      ).catch(() => undefined);
      // Closing the connection drops the locks and the members consumer.
      await this.conn.close();
      this.deps.onClosed();
    })();
    return this.closed;
  }
}
