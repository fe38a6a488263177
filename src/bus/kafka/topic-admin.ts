import kafkajs, { type Admin, type ITopicConfig } from 'kafkajs';
import type { Logger } from '../../logger.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import { ClientHandle } from './client-handle.js';
import type { KafkaFactory } from './client.js';

export interface PartitionOffsets {
  partition: number;
  /** First offset still present. */
  low: number;
  /** Offset the next message will get (high watermark). */
  high: number;
}

// kafkajs is CommonJS and Node cannot see every one of its named exports from ESM; the default import has them all.

/**
 * Polls the topic's metadata until every partition has a leader, or rethrows the last error at `deadline`.
 * Retriable errors (metadata not propagated yet) are polled through; others end the wait at once.
 */
async function waitForLeaders(admin: Admin, topic: string, deadline: number, first: unknown): Promise<void> {
  let last = first;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = topics.find((t) => t.name === topic)?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
    } catch (err) {
      if ((err as { retriable?: boolean }).retriable !== true) throw err;
      last = err;
    }
  }
  throw last;
}

/**
 * How cutover creates a topic: its partitions, and its replication factor and min.insync.replicas when the
 * config gives them (the broker's defaults otherwise; kafkajs sends -1 for "broker default").
 */
export function topicSpec(topic: string, config: KafkaBusConfig): ITopicConfig {
  return {
    topic,
    numPartitions: config.partitions,
    ...(config.replicationFactor !== undefined ? { replicationFactor: config.replicationFactor } : {}),
    ...(config.minInsyncReplicas !== undefined ? { configEntries: [{ name: 'min.insync.replicas', value: String(config.minInsyncReplicas) }] } : {}),
  };
}

/** Broker-internal topics (`__consumer_offsets`, `__transaction_state`) are never cutover's to consume. */
export function isInternalTopic(topic: string): boolean {
  return topic.startsWith('__');
}

/**
 * The admin side of the adapter: creates topics on demand (never relying on broker auto-create), lists
 * them for pattern subscriptions, reads watermarks, checks health. Every call is time-bounded.
 */
export class TopicAdmin {
  private readonly admin: ClientHandle<Admin>;
  /** Topics known to exist (or being created): creation is one round trip per topic per process. */
  private readonly ensured = new Map<string, Promise<void>>();

  constructor(
    kafka: KafkaFactory,
    private readonly config: KafkaBusConfig,
    logger: Logger,
  ) {
    this.admin = new ClientHandle<Admin>({
      create: () => {
        const { client, sockets } = kafka();
        return { client: client.admin(), release: () => sockets?.destroy() };
      },
      connectTimeout: config.connectionTimeout * 2,
      retireTimeout: config.publishTimeout + 1_000,
      what: 'admin',
      brokers: config.brokers,
      logger,
    });
  }

  /** Bound on an admin round trip; creating a topic also waits for its leaders. */
  private get opTimeout(): number {
    return Math.max(this.config.publishTimeout, this.config.connectionTimeout * 2);
  }

  connect(): Promise<void> {
    return this.admin.connect();
  }

  recentlyUnreachable(windowMs: number): boolean {
    return this.admin.recentlyUnreachable(windowMs);
  }

  /**
   * Makes sure `topic` exists with the configured partitions, and that its leaders are elected, before
   * anyone produces to or joins a group on it. An existing topic is left as it is.
   */
  ensureTopic(topic: string, timeoutMs = this.opTimeout): Promise<void> {
    let pending = this.ensured.get(topic);
    if (!pending) {
      pending = this.admin.run(`create topic ${topic}`, timeoutMs, async (admin) => {
        const deadline = Date.now() + timeoutMs;
        try {
          await admin.createTopics({
            topics: [topicSpec(topic, this.config)],
            waitForLeaders: true,
            timeout: timeoutMs,
          });
        } catch (err) {
          // kafkajs waits out LEADER_NOT_AVAILABLE only; a busy broker may answer UNKNOWN_TOPIC_OR_PARTITION
          // for a moment after creating the topic (seen in CI). The topic exists then: wait for its leaders.
          if ((err as { retriable?: boolean }).retriable !== true) throw err;
          await waitForLeaders(admin, topic, deadline, err);
        }
      });
      this.ensured.set(topic, pending);
      // A failure must not be cached: the next publish tries again.
      pending.catch(() => this.ensured.delete(topic));
    }
    return pending;
  }

  /** Non-internal topics on the cluster. */
  async listTopics(timeoutMs = this.opTimeout): Promise<string[]> {
    const topics = await this.admin.run('list topics', timeoutMs, (admin) => admin.listTopics());
    return topics.filter((t) => !isInternalTopic(t));
  }

  /** Low and high watermarks per partition; empty when the topic does not exist. */
  async topicOffsets(topic: string, timeoutMs = this.opTimeout): Promise<PartitionOffsets[]> {
    const topics = await this.listTopics(timeoutMs);
    if (!topics.includes(topic)) return [];
    const offsets = await this.admin.run(`fetch offsets of ${topic}`, timeoutMs, (admin) => admin.fetchTopicOffsets(topic));
    return offsets.map((o) => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) })).sort((a, b) => a.partition - b.partition);
  }

  /**
   * Where "from now on" starts in each partition, for a reader that began at `since` (epoch ms): the
   * earlier of the high watermark now and the first record stamped at or after `since`. The timestamp
   * covers records published between `since` and this call; the watermark covers records from other
   * clocks. A record stamped in the very millisecond of `since` counts as newer: a publish that follows
   * read() within the same millisecond is common, and delivering one record too many beats skipping one.
   */
  async offsetsSince(topic: string, since: number, timeoutMs = this.opTimeout): Promise<Map<number, number>> {
    const high = await this.topicOffsets(topic, timeoutMs);
    const out = new Map(high.map((p) => [p.partition, p.high]));
    if (high.length === 0) return out;
    const stamped = await this.admin.run(`fetch offsets of ${topic} by time`, timeoutMs, (admin) => admin.fetchTopicOffsetsByTimestamp(topic, since));
    for (const p of stamped) {
      const offset = Number(p.offset);
      const current = out.get(p.partition);
      if (offset >= 0 && (current === undefined || offset < current)) out.set(p.partition, offset);
    }
    return out;
  }

  /** Round trip to the cluster; rejects with a BusError when it does not answer within `timeoutMs`. */
  async describeCluster(timeoutMs: number): Promise<{ brokers: number; clusterId: string }> {
    const cluster = await this.admin.run('describe cluster', timeoutMs, (admin) => admin.describeCluster());
    return { brokers: cluster.brokers.length, clusterId: cluster.clusterId };
  }

  /**
   * The session timeouts the brokers accept (group.min/max.session.timeout.ms), or undefined when the
   * cluster will not say (DescribeConfigs may be denied by ACLs).
   */
  async sessionTimeoutBounds(timeoutMs = this.opTimeout): Promise<{ min: number; max: number } | undefined> {
    try {
      return await this.admin.run('describe broker config', timeoutMs, async (admin) => {
        const cluster = await admin.describeCluster();
        const broker = cluster.brokers[0];
        if (!broker) return undefined;
        const { resources } = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: kafkajs.ConfigResourceTypes.BROKER, name: String(broker.nodeId), configNames: ['group.min.session.timeout.ms', 'group.max.session.timeout.ms'] }],
        });
        const entries = resources[0]?.configEntries ?? [];
        const value = (name: string): number => Number(entries.find((e) => e.configName === name)?.configValue);
        const bounds = { min: value('group.min.session.timeout.ms'), max: value('group.max.session.timeout.ms') };
        return Number.isFinite(bounds.min) && Number.isFinite(bounds.max) ? bounds : undefined;
      });
    } catch {
      return undefined;
    }
  }

  /** Deletes consumer groups, ignoring every error (used for throwaway reader groups). */
  async deleteGroups(groupIds: string[], timeoutMs = this.opTimeout): Promise<void> {
    if (groupIds.length === 0) return;
    await this.admin.run('delete groups', timeoutMs, (admin) => admin.deleteGroups(groupIds)).catch(() => undefined);
  }

  close(): Promise<void> {
    return this.admin.close();
  }
}
