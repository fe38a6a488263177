import { randomUUID } from 'node:crypto';
import type { Channel, ConsumeMessage } from 'amqplib';
import { Notifier, sleep } from '../../async.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import type { Delivery, ReadOptions, ReadStream } from '../types.js';
import { decodeMessage, headerString, Internal } from './codec.js';
import { RabbitConnection, toBusError } from './connection.js';
import type { RabbitNames } from './names.js';

/** Stream deliveries a reader holds unacknowledged (stream consumers over AMQP need a prefetch). */
const PREFETCH = 256;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

export interface ReaderDeps {
  config: RabbitmqBusConfig;
  names: RabbitNames;
  logger: Logger;
  /** Declares the topic's log stream (idempotent). */
  ensureLog(topic: string): Promise<void>;
  /** Appends an end-of-read marker to the stream and resolves once RabbitMQ confirmed it. */
  writeMarker(queue: string, id: string): Promise<void>;
  onClosed(): void;
}

/**
 * Reads a topic's log stream (a RabbitMQ stream queue, consumed over AMQP 0.9.1 with `x-stream-offset`)
 * on a connection of its own, in publish order. After a lost connection it reconnects and resumes at the
 * offset after the last message it received.
 *
 * A stream tells an AMQP client neither its length nor its last offset, so `follow: false` marks the end
 * itself: when reading begins it appends a marker (a message with the `cutover-read-marker` header, which
 * every reader skips and no subscription receives: it goes to the stream queue only) and stops when it
 * reaches it. Everything published before read() was called is before the marker.
 */
export class RabbitReadStream implements ReadStream {
  private readonly abort = new AbortController();
  private readonly conn: RabbitConnection;
  private readonly log: Logger;
  private readonly buffer: Array<{ delivery: Delivery; ack: () => void }> = [];
  private readonly arrived = new Notifier({ latch: true });
  private readonly queue: string;
  private readonly marker = randomUUID();
  private failure: unknown;
  private ended = false;
  private iterating = false;
  private lastOffset: number | undefined;
  private closing: Promise<void> | undefined;
  /** Registered when read() is called, so `from: 'end'` starts about then rather than at the first next(). */
  private readonly started: Promise<void>;

  constructor(
    private readonly deps: ReaderDeps,
    private readonly topic: string,
    private readonly options: ReadOptions,
  ) {
    this.queue = deps.names.log(topic);
    this.log = deps.logger.child({ topic, reader: this.marker.slice(0, 8) });
    this.conn = new RabbitConnection(deps.config, `cutover reader ${topic}`, this.log);
    this.conn.onLost(() => this.arrived.notify());
    this.started = this.begin();
    this.started.catch(() => undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    if (this.iterating) throw new BusError(ErrorCodes.INTERNAL, 'a ReadStream can be iterated once');
    this.iterating = true;
    return this.run();
  }

  private get follow(): boolean {
    return this.options.follow ?? true;
  }

  private async begin(): Promise<void> {
    if (this.options.from === 'end' && !this.follow) {
      this.ended = true;
      return;
    }
    await this.deps.ensureLog(this.topic);
    if (!this.follow) await this.deps.writeMarker(this.queue, this.marker);
    await this.consume();
  }

  /** Opens the connection and consumes from where this reader stands. */
  private async consume(): Promise<void> {
    const model = await this.conn.get();
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => this.log.warn({ err }, 'reader channel closed by the broker'));
    await ch.prefetch(PREFETCH);
    const offset = this.lastOffset !== undefined ? this.lastOffset + 1 : this.options.from === 'end' ? 'next' : 'first';
    await ch.consume(this.queue, (m) => this.onMessage(ch, m), { noAck: false, arguments: { 'x-stream-offset': offset } });
  }

  private onMessage(ch: Channel, m: ConsumeMessage | null): void {
    if (m === null) {
      // Cancelled by the broker (the stream was deleted): nothing more will come.
      this.fail(new BusError(ErrorCodes.BUS_UNAVAILABLE, `read ${this.topic}: the log stream ${this.queue} went away`, { retriable: true }));
      return;
    }
    const ack = (): void => {
      try {
        ch.ack(m);
      } catch {
        // The channel is gone; the next connection resumes by offset, acks do not matter to a stream.
      }
    };
    const offset = Number(m.properties.headers?.['x-stream-offset']);
    if (Number.isFinite(offset)) {
      if (this.lastOffset !== undefined && offset <= this.lastOffset) return ack();
      this.lastOffset = offset;
    }
    const marker = headerString(m, Internal.marker);
    if (marker !== undefined) {
      ack();
      if (marker === this.marker) {
        this.ended = true;
        this.arrived.notify();
      }
      return;
    }
    if (this.ended) return ack();
    const decoded = decodeMessage(m, String(offset));
    if (!decoded.ok) {
      this.log.warn({ err: decoded.error, offset }, 'skipping a message that is not a CloudEvent');
      return ack();
    }
    this.buffer.push({ delivery: { ...decoded.delivery, topic: this.topic, attempt: 1 }, ack });
    this.arrived.notify();
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    this.arrived.notify();
  }

  private async *run(): AsyncGenerator<Delivery> {
    try {
      await this.started;
      let delay = RECONNECT_MIN_MS;
      for (;;) {
        const next = this.buffer.shift();
        if (next) {
          next.ack();
          yield next.delivery;
          continue;
        }
        if (this.abort.signal.aborted || this.ended) return;
        if (this.failure) throw this.failure;
        if (!this.conn.connected) {
          // Lost: resume after the last offset received, backing off while the broker stays away.
          try {
            await this.consume();
            delay = RECONNECT_MIN_MS;
          } catch (err) {
            this.log.debug({ err }, 'reader reconnect failed; retrying');
            if (!(await sleep(delay, this.abort.signal))) return;
            delay = Math.min(RECONNECT_MAX_MS, delay * 2);
          }
          continue;
        }
        await this.arrived.wait(1_000, this.abort.signal);
      }
    } catch (err) {
      throw toBusError(err, `read ${this.topic}`, this.deps.config.url);
    } finally {
      await this.close();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort();
      await this.started.catch(() => undefined);
      await this.conn.close();
      this.deps.onClosed();
    })();
    return this.closing;
  }
}
