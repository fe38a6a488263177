import type { Logger } from '../../logger.js';
import type { RedisBusConfig } from '../../config/bus.js';
import { isPattern, topicsMatcher } from '../topics.js';
import type { RedisConnection } from './connection.js';
import type { RedisKeys } from './keys.js';
import type { PartitionRef } from './partitions.js';

export interface DiscoveryContext {
  config: RedisBusConfig;
  keys: RedisKeys;
  main: RedisConnection;
  group: string;
  /** Exact topic names and patterns the subscription asked for. */
  topics: readonly string[];
  from: 'start' | 'end' | undefined;
  log: Logger;
  rememberPartitions(topic: string, partitions: number): void;
}

/**
 * The topics a subscription consumes: its exact names, and the registry's topics matching its patterns,
 * found again as the registry grows. Creates the consumer group on each partition stream it finds.
 */
export class TopicDiscovery {
  readonly topics = new Map<string, PartitionRef[]>();
  private readonly matches: (topic: string) => boolean;
  private readonly exactTopics: string[];
  private readonly hasPatterns: boolean;
  private registrySize = -1;

  constructor(private readonly ctx: DiscoveryContext) {
    this.matches = topicsMatcher(ctx.topics);
    this.exactTopics = ctx.topics.filter((t) => !isPattern(t));
    this.hasPatterns = this.exactTopics.length < ctx.topics.length;
  }

  /** Every partition of every topic found so far. */
  partitions(): PartitionRef[] {
    return [...this.topics.values()].flat();
  }

  /** Looks for topics not consumed yet and creates the group on their streams. */
  async refresh(initial: boolean): Promise<void> {
    const missingExact = this.exactTopics.filter((t) => !this.topics.has(t));
    if (!this.hasPatterns && missingExact.length === 0) return;
    const { main, keys, config, group } = this.ctx;
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
      const startId = initial && this.ctx.from === 'end' ? '$' : '0';
      const refs: PartitionRef[] = [];
      for (let p = 0; p < n; p++) refs.push({ topic, partition: p, stream: keys.stream(topic, p), lease: keys.lease(group, topic, p) });
      await this.createGroups(refs, startId);
      this.ctx.rememberPartitions(topic, n);
      this.topics.set(topic, refs);
      if (!initial) this.ctx.log.info({ topic, partitions: n }, 'subscribed to a new matching topic');
    }
    // Only once every new topic has its groups: a failure above makes the next cycle look again.
    this.registrySize = Object.keys(registry).length;
  }

  /** Creates the group on each stream (and the stream), where it is missing. */
  async createGroups(refs: readonly PartitionRef[], startId: string): Promise<void> {
    await Promise.all(
      refs.map((ref) =>
        this.ctx.main.call('XGROUP', 'CREATE', ref.stream, this.ctx.group, startId, 'MKSTREAM').catch((err: Error) => {
          if (!/BUSYGROUP/.test(err.message)) throw err;
        }),
      ),
    );
  }
}
