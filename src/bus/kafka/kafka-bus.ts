import { BusError, ErrorCodes, ValidationError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { CreateBusOptions } from '../options.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import { assertTopicName, assertTopicPattern } from '../topics.js';
import type { Bus, BusHealth, BusMessage, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../types.js';
import { createKafkaClient, KafkaSockets, kafkaTlsOptions, type KafkaFactory } from './client.js';
import { encodeMessages, type OutgoingMessage } from './codec.js';
import { platformaticProducerFactory } from './platformatic-producer.js';
import { kafkajsProducerFactory } from './producer-client.js';
import { Publisher } from './publisher.js';
import { KafkaReader } from './reader.js';
import { KafkaSubscription } from './subscription.js';
import { TopicAdmin } from './topic-admin.js';

/** Upper bound on a health check round trip. */
const HEALTH_TIMEOUT_MS = 2_000;

/**
 * The Kafka adapter (kafkajs; the publisher's producer may be @platformatic/kafka, `client.producer`). Topics are created on demand with the configured partitions, replication
 * factor and min.insync.replicas; publishes are micro-batched into acks=all produce requests (sent again
 * whole after a retriable failure, until the publish deadline); each subscription is one consumer in a
 * Kafka consumer group, committing an offset only after its handler (or its dead letter) succeeded.
 *
 * Limitation: Kafka keeps no delivery count. `Delivery.attempt` counts the retries made within one
 * delivery, but a message redelivered after a crash or a rebalance starts at attempt 1 again, so a message
 * that crashes its consumer every time is never dead-lettered by the attempt limit (unlike on Redis and
 * the embedded bus).
 *
 * Order holds per partition (hence per key). `read()` interleaves partitions; logs that need one total
 * order are published with a single key.
 */
export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  private readonly log: Logger;
  /** Makes each kafkajs client (producer, admin, every consumer) with connections of its own. */
  private readonly newClient: KafkaFactory;
  /** Every client's connections not yet ended: close() ends whatever a client's own close left behind. */
  private readonly sockets = new Set<KafkaSockets>();
  private readonly admin: TopicAdmin;
  private readonly publisher: Publisher;
  private readonly subscriptions = new Set<KafkaSubscription>();
  private readonly readers = new Set<KafkaReader>();
  private started: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly config: KafkaBusConfig,
    logger: Logger,
    options: CreateBusOptions = {},
  ) {
    this.log = logger.child({ brokers: config.brokers.join(',') });
    const kafkaLog = this.log.child({ component: 'kafkajs' });
    // Read once here, so an unreadable certificate fails createBus() rather than every connection.
    const ssl = kafkaTlsOptions(config, this.log);
    this.newClient = () => {
      for (const s of this.sockets) if (s.destroyed) this.sockets.delete(s);
      const sockets = new KafkaSockets(options.connect);
      this.sockets.add(sockets);
      return { client: createKafkaClient(config, kafkaLog, sockets, ssl), sockets };
    };
    this.admin = new TopicAdmin(this.newClient, config, this.log);
    if (config.client.producer === 'platformatic' && options.connect) {
      // That client opens its sockets itself: connections made through `connect` would silently not be its.
      throw new BusError(ErrorCodes.BUS_MISCONFIGURED, 'bus.client.producer: platformatic takes no connection hook (options.connect); use the kafkajs producer where connections are injected');
    }
    const producers = config.client.producer === 'platformatic' ? platformaticProducerFactory(config, ssl) : kafkajsProducerFactory(this.newClient, config);
    this.publisher = new Publisher(producers, {
      config,
      logger: this.log,
      ensureTopic: (topic, timeoutMs) => this.admin.ensureTopic(topic, timeoutMs),
    });
  }

  /**
   * Connects the admin and producer clients (bounded by twice connectionTimeout). Rejects with
   * CUTOVER_BUS_UNAVAILABLE naming the brokers when none answers, and with CUTOVER_BUS_MISCONFIGURED when
   * the brokers would refuse the configured sessionTimeout (every subscription would fail to join).
   * Clients also connect lazily, and reconnect after an outage, so start() is the fail-fast check rather
   * than a precondition.
   */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError('start'));
    this.started ??= Promise.all([this.admin.connect(), this.publisher.connect()]).then(
      async () => {
        await this.checkSessionTimeout();
        this.log.info('kafka bus connected');
      },
      (err: unknown) => {
        // A later start() may try again (the broker may come up).
        this.started = undefined;
        throw err;
      },
    );
    return this.started;
  }

  private async checkSessionTimeout(): Promise<void> {
    const bounds = await this.admin.sessionTimeoutBounds();
    const { sessionTimeout } = this.config;
    if (bounds && (sessionTimeout < bounds.min || sessionTimeout > bounds.max)) {
      throw new BusError(
        ErrorCodes.BUS_MISCONFIGURED,
        `bus.sessionTimeout: ${sessionTimeout} ms is outside what the brokers accept (group.min.session.timeout.ms ${bounds.min}, group.max.session.timeout.ms ${bounds.max}); consumer groups could not be joined`,
      );
    }
  }

  async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw this.closedError(`publish to ${topic}`);
    return this.send(topic, messages);
  }

  /** publish() without the closed check: dead letters of a closing subscription still need writing. */
  private async send(topic: string, messages: readonly BusMessage[]): Promise<void> {
    assertTopicName(topic);
    if (!Array.isArray(messages)) throw new ValidationError(ErrorCodes.EVENT_INVALID, `publish to ${topic}: messages must be an array`);
    const records = encodeMessages(topic, messages, this.config.maxMessageBytes);
    if (records.length === 0) return;
    return this.publisher.publish(topic, records);
  }

  private publishRecords(topic: string, records: OutgoingMessage[]): Promise<void> {
    assertTopicName(topic);
    return this.publisher.publish(topic, records);
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.closed) throw this.closedError(`subscribe ${options.group}`);
    if (typeof options.group !== 'string' || options.group.length === 0) {
      throw new ValidationError(ErrorCodes.TOPIC_INVALID, 'subscribe: group must be a non-empty string');
    }
    if (!Array.isArray(options.topics) || options.topics.length === 0) {
      throw new ValidationError(ErrorCodes.TOPIC_INVALID, `subscribe ${options.group}: topics must list at least one topic or pattern`);
    }
    options.topics.forEach((t, i) => assertTopicPattern(t, `topics[${i}]`));
    const subscription = new KafkaSubscription(options, {
      kafka: this.newClient,
      config: this.config,
      logger: this.log,
      admin: this.admin,
      deadLetter: (topic, message) => this.send(topic, [message]),
      publishRecords: (topic, records) => this.publishRecords(topic, records),
      onClosed: () => this.subscriptions.delete(subscription),
    });
    this.subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (err) {
      this.subscriptions.delete(subscription);
      throw err;
    }
    return subscription;
  }

  read(topic: string, options: ReadOptions): ReadStream {
    assertTopicName(topic);
    if (this.closed) throw this.closedError(`read ${topic}`);
    const reader: KafkaReader = new KafkaReader(topic, options, {
      kafka: this.newClient,
      config: this.config,
      logger: this.log,
      admin: this.admin,
      onClosed: () => this.readers.delete(reader),
    });
    this.readers.add(reader);
    return reader;
  }

  async health(): Promise<BusHealth> {
    const began = Date.now();
    if (this.closed) return { ok: false, kind: this.kind, detail: 'closed' };
    try {
      const cluster = await this.admin.describeCluster(Math.min(HEALTH_TIMEOUT_MS, this.config.connectionTimeout * 2));
      return { ok: true, kind: this.kind, latencyMs: Date.now() - began, detail: `${cluster.brokers} broker(s), cluster ${cluster.clusterId}` };
    } catch (err) {
      return { ok: false, kind: this.kind, latencyMs: Date.now() - began, detail: err instanceof Error ? err.message : String(err) };
    }
  }

  /**
   * Closes subscriptions and readers (waiting, bounded, for handlers in flight), waits for publishes in
   * flight (each bounded by publishTimeout), then disconnects. Idempotent.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.allSettled([...this.subscriptions].map((s) => s.close()));
      await Promise.allSettled([...this.readers].map((r) => r.close()));
      await this.publisher.close();
      await this.admin.close();
      // A client whose disconnect timed out may still be reconnecting inside kafkajs.
      for (const s of this.sockets) s.destroy();
      this.sockets.clear();
      this.log.info('kafka bus closed');
    })();
    return this.closed;
  }

  private closedError(what: string): BusError {
    return new BusError(ErrorCodes.BUS_CLOSED, `${what}: the Kafka bus is closed`);
  }
}
