import type { Channel, ChannelModel } from 'amqplib';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import { Internal } from './codec.js';
import type { RabbitNames } from './names.js';

/** Runs `fn` on a channel of its own, closed afterwards: a refused declaration closes only that channel. */
export async function onChannel<T>(model: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await model.createChannel();
  // A refusal arrives as a rejected call and an 'error' event; the call's rejection is what we act on.
  ch.on('error', () => undefined);
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** x-max-age in seconds, the unit every RabbitMQ version since 3.9 accepts. */
function maxAge(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}

/**
 * Declares the exchanges and queues the adapter relies on. Every declaration is idempotent, so each process
 * makes what it needs without coordination.
 */
export class Topology {
  /** Every exchange and queue this process declared (durable ones), for a cleanup that cannot list them. */
  readonly declared = { exchanges: new Set<string>(), queues: new Set<string>() };

  constructor(
    private readonly config: RabbitmqBusConfig,
    private readonly names: RabbitNames,
    private readonly log: Logger,
  ) {}

  /**
   * The durable topic exchange all topics share, and the check that this process routes keys with the same
   * partition count as the rest of the installation: with another count its messages would reach no
   * partition queue of some groups, silently. The count is recorded as the `x-max-length` of an empty queue
   * (`<prefix>.partitions`, never published to), because RabbitMQ refuses to redeclare a queue with another
   * value (PRECONDITION_FAILED), which exchange arguments would not.
   */
  async exchange(model: ChannelModel): Promise<void> {
    const { names, config } = this;
    await onChannel(model, (ch) => ch.assertExchange(names.exchange, 'topic', { durable: true }));
    this.declared.exchanges.add(names.exchange);
    this.declared.queues.add(names.settings);
    await onChannel(model, (ch) => ch.assertQueue(names.settings, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-max-length': config.partitions } })).catch((err: { code?: number; message?: string }) => {
      if (err?.code !== 406) throw err;
      throw new BusError(
        ErrorCodes.BUS_MISCONFIGURED,
        `bus.partitions: ${config.partitions} differs from the count this installation (prefix ${JSON.stringify(config.prefix)}) was set up with, recorded as x-max-length of queue ${names.settings}; every process sharing the prefix must use the same count (${err.message ?? ''})`,
        { cause: err },
      );
    });
    await this.registry(model);
  }

  /**
   * The log stream of `topic`, bound to the topic exchange by the exact topic name. A stream that already
   * exists with other retention settings (another installation's config) is used as it is, with a warning:
   * RabbitMQ refuses to redeclare a queue with different arguments.
   */
  async logStream(model: ChannelModel, topic: string): Promise<void> {
    await this.stream(model, this.names.log(topic), topic);
    await onChannel(model, (ch) => ch.bindQueue(this.names.log(topic), this.names.exchange, topic));
  }

  private async stream(model: ChannelModel, queue: string, topic?: string): Promise<void> {
    this.declared.queues.add(queue);
    const args = { 'x-queue-type': 'stream', 'x-max-age': maxAge(this.config.retention), 'x-max-length-bytes': this.config.maxLogBytes };
    const declared = await onChannel(model, (ch) => ch.assertQueue(queue, { durable: true, arguments: args })).then(
      () => true,
      (err: { code?: number }) => {
        if (err?.code !== 406) throw err;
        return false;
      },
    );
    if (!declared) {
      this.log.warn({ queue, topic }, 'log stream exists with other arguments (retention); using it as it is');
      await onChannel(model, (ch) => ch.checkQueue(queue));
    }
  }

  /**
   * The registry stream: one entry per topic whose log stream a process declared (again every half
   * `retention`, so an entry outlives no log it names), read by a new `from: 'start'` group to find the topics
   * its wildcard patterns match.
   */
  async registry(model: ChannelModel): Promise<void> {
    await this.stream(model, this.names.registry);
  }

  /**
   * A group's headers exchange bound to the topic exchange by each subscribed topic or pattern (the topic
   * exchange's `*` and `#` are cutover's), its partition queues bound by partition number, and its members
   * queue. Partition queues are quorum queues: replicated in a cluster, and they count redeliveries.
   * Says whether the group is new: RabbitMQ routes to it only what is published from now on.
   */
  async group(model: ChannelModel, group: string, patterns: readonly string[]): Promise<{ created: boolean }> {
    const { names } = this;
    const existed = await this.groupExists(model, group);
    this.declared.exchanges.add(names.groupExchange(group));
    await onChannel(model, async (ch) => {
      await ch.assertExchange(names.groupExchange(group), 'headers', { durable: true });
      for (const pattern of patterns) await ch.bindExchange(names.groupExchange(group), names.exchange, pattern);
    });
    await this.partitionQueues(model, group, { history: false, purge: false });
    await this.members(model, group);
    return { created: !existed };
  }

  /** The members queue is declared last: when it exists, an earlier subscribe set the whole group up. */
  groupExists(model: ChannelModel, group: string): Promise<boolean> {
    return onChannel(model, (ch) => ch.checkQueue(this.names.members(group))).then(
      () => true,
      (err: { code?: number }) => {
        if (err?.code !== 404) throw err;
        return false;
      },
    );
  }

  /**
   * The group's partition queues bound to its headers exchange by partition number and, with `history`, its
   * history exchange and queues (quorum, single active consumer too: they keep a key's order the same way).
   * `purge` empties them (a new group's setup starting again).
   */
  async partitionQueues(model: ChannelModel, group: string, how: { history: boolean; purge: boolean }): Promise<void> {
    const { names, config } = this;
    this.declared.exchanges.add(names.groupExchange(group));
    if (how.history) this.declared.exchanges.add(names.historyExchange(group));
    for (let p = 0; p < config.partitions; p++) {
      this.declared.queues.add(names.partition(group, p));
      if (how.history) this.declared.queues.add(names.history(group, p));
    }
    const quorum = { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true } };
    await onChannel(model, async (ch) => {
      if (how.history) await ch.assertExchange(names.historyExchange(group), 'headers', { durable: true });
      for (let p = 0; p < config.partitions; p++) {
        const bind = { 'x-match': 'all', [Internal.partition]: String(p) };
        await ch.assertQueue(names.partition(group, p), quorum);
        await ch.bindQueue(names.partition(group, p), names.groupExchange(group), '', bind);
        if (how.purge) await ch.purgeQueue(names.partition(group, p));
        if (!how.history) continue;
        await ch.assertQueue(names.history(group, p), quorum);
        await ch.bindQueue(names.history(group, p), names.historyExchange(group), '', bind);
        if (how.purge) await ch.purgeQueue(names.history(group, p));
      }
    });
  }

  /** The queue whose consumers are the group's live members; its existence says the group is set up. */
  async members(model: ChannelModel, group: string): Promise<void> {
    this.declared.queues.add(this.names.members(group));
    await onChannel(model, (ch) => ch.assertQueue(this.names.members(group), { durable: true, arguments: { 'x-queue-type': 'classic' } }));
  }
}
