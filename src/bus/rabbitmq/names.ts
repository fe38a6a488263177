import { createHash } from 'node:crypto';

/** AMQP 0.9.1 short strings (exchange and queue names, routing keys) hold at most 255 bytes. */
const MAX_NAME_BYTES = 255;

/**
 * A name cut to fit: names that fit are kept as they are (readable in `rabbitmqctl list_queues`); longer
 * ones keep their start and end a hash of the whole, so two long names never collide.
 */
function fit(name: string): string {
  if (Buffer.byteLength(name) <= MAX_NAME_BYTES) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${name.slice(0, MAX_NAME_BYTES - 17)}~${hash}`;
}

/** Every exchange and queue the RabbitMQ adapter declares, named from the configured prefix. */
export interface RabbitNames {
  /** The topic exchange every message is published to, with its topic as routing key. */
  readonly exchange: string;
  /** An empty queue recording the installation's partition count (see Topology.exchange). */
  readonly settings: string;
  /** The stream queue that keeps a topic's whole log, for read(). */
  log(topic: string): string;
  /** The headers exchange of a group, bound to the topic exchange once per subscribed topic or pattern. */
  groupExchange(group: string): string;
  /** Partition queue `p` of a group: one consumer at a time, which keeps each key in order. */
  partition(group: string, p: number): string;
  /** The exclusive queue whose existence says a live member of the group holds partition `p`. */
  lock(group: string, p: number): string;
  /** The queue every live member of a group consumes from, so its consumer count is the group's size. */
  members(group: string): string;
  /** The stream that records every topic a log stream was declared for (what `from: 'start'` patterns replay). */
  readonly registry: string;
  /** The headers exchange that routes a new group's history into its history queues by partition number. */
  historyExchange(group: string): string;
  /** The history of partition `p` of a new `from: 'start'` group, consumed before the partition queue. */
  history(group: string, p: number): string;
  /** The exclusive queue held by the one member setting a new group up (with its history). */
  setupLock(group: string): string;
}

export function rabbitNames(prefix: string): RabbitNames {
  return {
    exchange: `${prefix}.topics`,
    settings: `${prefix}.partitions`,
    log: (topic) => fit(`${prefix}.log.${topic}`),
    groupExchange: (group) => fit(`${prefix}.group.${group}`),
    partition: (group, p) => fit(`${prefix}.group.${group}.p${p}`),
    lock: (group, p) => fit(`${prefix}.group.${group}.p${p}.lock`),
    members: (group) => fit(`${prefix}.group.${group}.members`),
    registry: `${prefix}.registry`,
    historyExchange: (group) => fit(`${prefix}.group.${group}.history`),
    history: (group, p) => fit(`${prefix}.group.${group}.p${p}.history`),
    setupLock: (group) => fit(`${prefix}.group.${group}.setup.lock`),
  };
}
