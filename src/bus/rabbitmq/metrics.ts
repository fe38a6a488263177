import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Broker-side figures of the RabbitMQ adapter's consumer groups, seen by each member: the ready messages
 * of the partition queues it holds (its backlog), the group's size, and redeliveries (messages RabbitMQ
 * hands out again after a consumer died or gave a partition up unacknowledged). One set per registry.
 */
export interface RabbitMetrics {
  depth: Gauge<'group' | 'partition'>;
  members: Gauge<'group'>;
  redeliveries: Counter<'group' | 'topic'>;
}

const sets = new WeakMap<Registry, RabbitMetrics>();

export function rabbitMetrics(registry: Registry): RabbitMetrics {
  let set = sets.get(registry);
  if (!set) {
    set = {
      depth: new Gauge({ name: 'cutover_rabbitmq_partition_depth', help: 'Messages ready in a consumer group partition queue this process holds (sampled every rebalance round)', labelNames: ['group', 'partition'], registers: [registry] }),
      members: new Gauge({ name: 'cutover_rabbitmq_group_members', help: 'Members of a consumer group, as counted by its members queue', labelNames: ['group'], registers: [registry] }),
      redeliveries: new Counter({ name: 'cutover_rabbitmq_redeliveries_total', help: 'Messages RabbitMQ delivered again to this process (after a consumer died or released a partition unacknowledged)', labelNames: ['group', 'topic'], registers: [registry] }),
    };
    sets.set(registry, set);
  }
  return set;
}
