import type { ConfirmChannel } from 'amqplib';
import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import { Internal, type OutgoingMessage } from './codec.js';
import { toBusError, type RabbitConnection } from './connection.js';
import type { RabbitNames } from './names.js';
import type { Topology } from './topology.js';

/** Why the broker closed a publish channel, for the publishes it failed. */
const closeErrors = new WeakMap<ConfirmChannel, Error>();

/**
 * Publishes on one confirm channel. A call resolves once RabbitMQ confirmed every message of it (for a
 * quorum or stream queue: written to a majority of its replicas), and rejects within `publishTimeout`
 * otherwise: CUTOVER_BUS_UNAVAILABLE when the connection is down or drops, CUTOVER_BUS_TIMEOUT when the
 * broker does not confirm in time (a resource alarm blocks publishers, say). A message whose call
 * rejected may still have been routed: a retry may duplicate it (at least once, never lost).
 *
 * Messages of one call go out in order on the one channel, so each partition queue and each log stream
 * receives them in publish order.
 */
export class Publisher {
  private channel: Promise<ConfirmChannel> | undefined;
  /** Topics whose log stream this process declared (streams are durable: once is enough). */
  private readonly logs = new Map<string, Promise<void>>();
  /** When this process last wrote each topic's registry entry. */
  private readonly registered = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly conn: RabbitConnection,
    private readonly config: RabbitmqBusConfig,
    private readonly names: RabbitNames,
    private readonly topology: Topology,
    private readonly log: Logger,
  ) {
    conn.onLost(() => (this.channel = undefined));
  }

  /** Publishes to `topic` on the topic exchange (declaring the topic's log stream first, once). */
  publish(topic: string, messages: OutgoingMessage[]): Promise<void> {
    return this.bounded(`publish to ${topic}`, async (timeoutMs) => {
      await this.ensureLog(topic, timeoutMs);
      await this.send(this.names.exchange, topic, messages, timeoutMs);
    });
  }

  /** Publishes straight into one queue (the default exchange routes by queue name), bypassing every group. */
  publishToQueue(queue: string, message: OutgoingMessage): Promise<void> {
    return this.bounded(`publish to queue ${queue}`, (timeoutMs) => this.send('', queue, [message], timeoutMs));
  }

  private bounded(what: string, fn: (timeoutMs: number) => Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(new BusError(ErrorCodes.BUS_CLOSED, `${what}: the bus is closed`));
    const { publishTimeout } = this.config;
    const sent = fn(publishTimeout).catch((err: unknown) => {
      const error = toBusError(err, what, this.config.url);
      this.log.debug({ err: error }, 'publish failed');
      throw error;
    });
    this.inFlight.add(sent);
    void sent.catch(() => undefined).finally(() => this.inFlight.delete(sent));
    return withTimeout(sent, publishTimeout, () => new BusError(ErrorCodes.BUS_TIMEOUT, `${what}: RabbitMQ did not confirm within ${publishTimeout} ms (it may still have taken the messages)`, { retriable: true }));
  }

  /**
   * Declares the log stream of `topic` once per process (readers call it too) and records the topic in the
   * registry stream, again every half `retention` so the entry outlives no message of the log it names.
   * The declaration is bounded like a publish: one caught by a connection loss may never settle (its channel
   * died with the connection), and a remembered promise that never settles would fail every later publish
   * to the topic. A declaration that fails or times out is forgotten, so the next publish declares again.
   */
  ensureLog(topic: string, timeoutMs: number): Promise<void> {
    let done = this.logs.get(topic);
    const last = this.registered.get(topic);
    if (!done || (last !== undefined && Date.now() - last > this.config.retention / 2)) {
      this.registered.set(topic, Date.now());
      const declared = withTimeout(
        this.conn
          .get(timeoutMs)
          .then((model) => this.topology.logStream(model, topic))
          .then(() => this.send('', this.names.registry, [{ content: Buffer.from('{}'), bytes: 2, options: { persistent: true, headers: { [Internal.registered]: topic } } }], timeoutMs)),
        timeoutMs,
        () => new BusError(ErrorCodes.BUS_UNAVAILABLE, `declare the log stream of ${topic}: RabbitMQ did not answer within ${timeoutMs} ms`, { retriable: true }),
      );
      done = declared;
      this.logs.set(topic, declared);
      declared.catch(() => {
        if (this.logs.get(topic) !== declared) return;
        this.logs.delete(topic);
        this.registered.delete(topic);
      });
    }
    return done;
  }

  private async send(exchange: string, routingKey: string, messages: OutgoingMessage[], timeoutMs: number): Promise<void> {
    const ch = await this.confirmChannel(timeoutMs);
    await Promise.all(
      messages.map(
        (m) =>
          new Promise<void>((resolve, reject) => {
            ch.publish(exchange, routingKey, m.content, m.options, (err: unknown) => {
              if (!err) return resolve();
              // A refusal (403 ACCESS_REFUSED for a routing key outside the topic permissions) closes the
              // channel, and the confirm fails with a generic "channel closed": report the broker's reason,
              // which the channel's 'error' event carries (it may come just after the callback).
              setImmediate(() => reject(closeErrors.get(ch) ?? (err instanceof Error ? err : new Error('message nacked by the broker'))));
            });
          }),
      ),
    );
  }

  private confirmChannel(timeoutMs: number): Promise<ConfirmChannel> {
    // Bounded for the same reason as ensureLog: a channel opening caught by a connection loss may never settle.
    this.channel ??= withTimeout(
      (async () => {
        const model = await this.conn.get(timeoutMs);
        const ch = await model.createConfirmChannel();
        ch.on('error', (err: Error) => {
          closeErrors.set(ch, err);
          this.log.warn({ err }, 'publish channel closed by the broker');
        });
        ch.on('close', () => {
          if (this.channel === current) this.channel = undefined;
        });
        return ch;
      })(),
      timeoutMs,
      () => new BusError(ErrorCodes.BUS_UNAVAILABLE, `open a publish channel: RabbitMQ did not answer within ${timeoutMs} ms`, { retriable: true }),
    );
    const current = this.channel;
    current.catch(() => {
      if (this.channel === current) this.channel = undefined;
    });
    return current;
  }

  /** Refuses new publishes and waits (bounded) for those in flight. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.inFlight.size > 0) await withTimeout(Promise.allSettled([...this.inFlight]), timeoutMs, () => new Error('in-flight publishes did not settle')).catch(() => undefined);
  }
}
