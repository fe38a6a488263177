import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes, ValidationError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import type { CreateBusOptions } from '../options.js';
import { rabbitMetrics, type RabbitMetrics } from './metrics.js';
import { assertTopicName, validateSubscribe } from '../topics.js';
import type { Bus, BusHealth, BusMessage, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../types.js';
import { encodeMessages, Internal, type OutgoingMessage } from './codec.js';
import { RabbitConnection, redactUrl, toBusError } from './connection.js';
import { rabbitNames, type RabbitNames } from './names.js';
import { Publisher } from './publisher.js';
import { RabbitReadStream } from './reader.js';
import { RabbitSubscription } from './subscription.js';
import { onChannel, Topology } from './topology.js';

/** Room for the DLQ headers (error text up to 2,000 characters) on a message accepted at the size limit. */
const DLQ_HEADROOM = 8 * 1024;
const HEALTH_TIMEOUT_MS = 1_000;

/**
 * The RabbitMQ adapter (AMQP 0.9.1 via amqplib). Every topic is a routing key on one topic exchange, whose
 * `*` and `#` are cutover's wildcards; each topic also has a log stream (a stream queue) that read() replays;
 * each consumer group has partition queues that its members share (subscription.ts). See docs/bus.md.
 *
 * The bus keeps one connection for publishing and declarations; every subscription and every reader has a
 * connection of its own, so that losing one (and the locks tied to it) never disturbs the others.
 */
export class RabbitmqBus implements Bus {
  readonly kind = 'rabbitmq' as const;
  private readonly log: Logger;
  private readonly names: RabbitNames;
  private readonly topology: Topology;
  private readonly conn: RabbitConnection;
  private readonly publisher: Publisher;
  private readonly subscriptions = new Set<RabbitSubscription>();
  private readonly readers = new Set<RabbitReadStream>();
  private nextUnkeyed = 0;
  private started: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  private readonly metrics: RabbitMetrics | undefined;

  constructor(
    private readonly config: RabbitmqBusConfig,
    logger: Logger,
    // Connection-level fault injection goes through `config.url` (a relay), as for Redis.
    options: CreateBusOptions = {},
  ) {
    this.metrics = options.registry ? rabbitMetrics(options.registry) : undefined;
    this.log = logger.child({ url: redactUrl(config.url), prefix: config.prefix });
    this.names = rabbitNames(config.prefix);
    this.topology = new Topology(config, this.names, this.log);
    this.conn = new RabbitConnection(config, 'cutover', this.log);
    this.publisher = new Publisher(this.conn, config, this.names, this.topology, this.log);
  }

  /**
   * Connects and declares the topic exchange. Rejects with CUTOVER_BUS_UNAVAILABLE naming the URL (password
   * hidden) when RabbitMQ does not answer, CUTOVER_BUS_REJECTED when it refuses the credentials or vhost.
   */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError('start'));
    this.started ??= (async () => {
      try {
        const model = await this.conn.get();
        await this.topology.exchange(model);
      } catch (err) {
        this.started = undefined;
        throw toBusError(err, 'start', this.config.url);
      }
      this.log.info('rabbitmq bus started');
    })();
    return this.started;
  }

  async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw this.closedError(`publish to ${topic}`);
    return this.send(topic, messages, this.config.maxMessageBytes);
  }

  /** publish() without the closed check: dead letters of a closing subscription still need writing. */
  private async send(topic: string, messages: readonly BusMessage[], maxBytes: number): Promise<void> {
    assertTopicName(topic);
    if (!Array.isArray(messages)) throw new ValidationError(ErrorCodes.EVENT_INVALID, `publish to ${topic}: messages must be an array`);
    const encoded = encodeMessages(topic, messages, this.config.partitions, maxBytes, () => this.nextUnkeyed++);
    if (encoded.length === 0) return;
    return this.publisher.publish(topic, encoded);
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.closed) throw this.closedError(`subscribe ${options?.group}`);
    validateSubscribe(options);
    const subscription: RabbitSubscription = new RabbitSubscription(options, {
      config: this.config,
      names: this.names,
      topology: this.topology,
      logger: this.log,
      deadLetter: (topic, message) => this.send(topic, [message], this.config.maxMessageBytes + DLQ_HEADROOM),
      publishRaw: (topic, message) => this.publishRaw(topic, message),
      onClosed: () => this.subscriptions.delete(subscription),
      metrics: this.metrics,
    });
    this.subscriptions.add(subscription);
    // A start that fails closes the subscription, whose onClosed takes it out of the set.
    await subscription.start();
    return subscription;
  }

  private publishRaw(topic: string, message: OutgoingMessage): Promise<void> {
    assertTopicName(topic);
    return this.publisher.publish(topic, [message]);
  }

  read(topic: string, options: ReadOptions): ReadStream {
    assertTopicName(topic);
    if (this.closed) throw this.closedError(`read ${topic}`);
    const reader: RabbitReadStream = new RabbitReadStream(
      {
        config: this.config,
        names: this.names,
        logger: this.log,
        ensureLog: (t) => this.publisher.ensureLog(t, this.config.connectionTimeout),
        writeMarker: (queue, id) => this.publisher.publishToQueue(queue, { content: Buffer.from('{}'), bytes: 2, options: { persistent: true, headers: { [Internal.marker]: id } } }),
        onClosed: () => this.readers.delete(reader),
      },
      topic,
      options,
    );
    this.readers.add(reader);
    return reader;
  }

  /**
   * The durable exchanges and queues this bus (its publisher, readers and subscriptions) declared so far:
   * what a throw-away run deletes afterwards with deleteRabbitObjects (AMQP cannot list a vhost).
   */
  declaredNames(): { exchanges: string[]; queues: string[] } {
    return { exchanges: [...this.topology.declared.exchanges], queues: [...this.topology.declared.queues] };
  }

  /** Connected, and the topic exchange answers a passive declare within a second. Never throws. */
  async health(): Promise<BusHealth> {
    if (this.closed) return { ok: false, kind: this.kind, detail: 'closed' };
    if (!this.started) return { ok: false, kind: this.kind, detail: 'not started' };
    const began = performance.now();
    try {
      await withTimeout(
        this.conn.get(HEALTH_TIMEOUT_MS).then((model) => onChannel(model, (ch) => ch.checkExchange(this.names.exchange))),
        HEALTH_TIMEOUT_MS,
        () => new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`),
      );
      return { ok: true, kind: this.kind, latencyMs: Math.round((performance.now() - began) * 100) / 100 };
    } catch (err) {
      return { ok: false, kind: this.kind, detail: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Closes subscriptions and readers (waiting, bounded, for handlers in flight), publishes in flight, then the connection. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.started?.catch(() => undefined);
      await Promise.allSettled([...this.subscriptions].map((s) => s.close()));
      await Promise.allSettled([...this.readers].map((r) => r.close()));
      await this.publisher.close(2_000);
      await this.conn.close();
      this.log.debug('rabbitmq bus closed');
    })();
    return this.closed;
  }

  private closedError(what: string): BusError {
    return new BusError(ErrorCodes.BUS_CLOSED, this.closed ? `${what}: the RabbitMQ bus is closed` : `${what}: the RabbitMQ bus is not started (call start() first)`);
  }
}
