import { BusError, ErrorCodes, ValidationError } from '../../errors.js';
import { assertEvent } from '../../events/cloudevent.js';
import type { Logger } from '../../logger.js';
import type { CreateBusOptions } from '../options.js';
import type { EmbeddedBusConfig } from '../../config/bus.js';
import { assertTopicName, assertTopicPattern } from '../topics.js';
import type { Bus, BusHealth, BusMessage, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../types.js';
import { EmbeddedSubscription } from './consumer.js';
import { Publisher } from './publisher.js';
import { EmbeddedReadStream } from './reader.js';
import { withBusyRetry } from './sqlite.js';
import { EmbeddedStore, partitionOf, type NewRow } from './store.js';

/** How long health() waits for the write lock before it reports the bus as down. */
const HEALTH_WAIT_MS = 250;
/** Rows deleted per retention transaction, and transactions per retention run: never a long lock. */
const RETENTION_BATCH = 1_000;
const RETENTION_BATCHES_PER_RUN = 50;

type State = 'new' | 'starting' | 'started' | 'closing' | 'closed';

/**
 * The default bus: a durable log in one SQLite file (better-sqlite3, WAL mode), shareable by several
 * processes on one machine. No server: "down" means the file is locked or unwritable, which publish turns
 * into CUTOVER_BUS_UNAVAILABLE within publishTimeout. See consumer.ts for how groups coordinate.
 */
export class EmbeddedBus implements Bus {
  readonly kind = 'embedded' as const;
  private state: State = 'new';
  private store: EmbeddedStore | undefined;
  private publisher: Publisher | undefined;
  private startPromise: Promise<void> | undefined;
  private closePromise: Promise<void> | undefined;
  private readonly subscriptions = new Set<EmbeddedSubscription>();
  private readonly readers = new Set<EmbeddedReadStream>();
  private retentionTimer: NodeJS.Timeout | undefined;
  private retentionRun: Promise<void> | undefined;
  private nextUnkeyedPartition = 0;
  private readonly logger: Logger;

  /** `_options.connect` is Kafka's connection hook; a file has no connection to cut. */
  constructor(
    private readonly config: EmbeddedBusConfig,
    logger: Logger,
    _options: CreateBusOptions = {},
  ) {
    this.logger = logger.child({ path: config.path });
  }

  start(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(this.closedError('start'));
    this.startPromise ??= this.open();
    return this.startPromise;
  }

  private async open(): Promise<void> {
    this.state = 'starting';
    try {
      this.store = await EmbeddedStore.open(this.config, this.logger);
    } catch (err) {
      this.state = 'new';
      this.startPromise = undefined;
      throw err;
    }
    this.publisher = new Publisher(this.store, this.config.publishTimeout, this.logger);
    this.state = 'started';
    this.scheduleRetention(0);
    this.logger.debug({ partitions: this.store.partitions }, 'embedded bus started');
  }

  async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    if (this.state !== 'started') throw this.closedError(`publish to ${topic}`);
    return this.send(topic, messages);
  }

  /** publish() without the state check: dead letters of a closing subscription still need writing. */
  private async send(topic: string, messages: readonly BusMessage[]): Promise<void> {
    assertTopicName(topic);
    if (!Array.isArray(messages)) throw new ValidationError(ErrorCodes.EVENT_INVALID, `publish to ${topic}: messages must be an array`);
    const rows = messages.map((m, i) => this.encode(m, i));
    if (rows.length === 0) return;
    if (!this.publisher || this.state === 'closed') throw this.closedError(`publish to ${topic}`);
    return this.publisher.enqueue(topic, rows);
  }

  private encode(message: BusMessage, index: number): NewRow {
    const event = message?.event as unknown;
    assertEvent(event, `messages[${index}].event`);
    const text = JSON.stringify(event);
    const headers = message.headers && Object.keys(message.headers).length > 0 ? JSON.stringify(message.headers) : null;
    const key = message.key ?? null;
    if (key !== null && typeof key !== 'string') {
      throw new ValidationError(ErrorCodes.EVENT_INVALID, `messages[${index}].key: expected a string or null, got ${typeof key}`);
    }
    const size = Buffer.byteLength(text) + (headers === null ? 0 : Buffer.byteLength(headers)) + (key === null ? 0 : Buffer.byteLength(key));
    if (size > this.config.maxMessageBytes) {
      throw new ValidationError(
        ErrorCodes.MESSAGE_TOO_LARGE,
        `messages[${index}]: ${size} bytes serialized, over the limit of ${this.config.maxMessageBytes} (bus.maxMessageBytes)`,
        { details: { index, size, limit: this.config.maxMessageBytes } },
      );
    }
    const partitions = this.config.partitions;
    const part = key === null ? this.nextUnkeyedPartition++ % partitions : partitionOf(key, partitions);
    return { key, part, event: text, headers };
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (typeof options?.group !== 'string' || options.group.length === 0) {
      throw new ValidationError(ErrorCodes.TOPIC_INVALID, 'subscribe: group must be a non-empty string');
    }
    if (!Array.isArray(options.topics) || options.topics.length === 0) {
      throw new ValidationError(ErrorCodes.TOPIC_INVALID, `subscribe ${options.group}: topics must list at least one topic or pattern`);
    }
    options.topics.forEach((t, i) => assertTopicPattern(t, `topics[${i}]`));
    if (this.state !== 'started' || !this.store) throw this.closedError(`subscribe ${options.group}`);
    const subscription: EmbeddedSubscription = new EmbeddedSubscription(options, {
      store: this.store,
      config: this.config,
      logger: this.logger,
      deadLetter: (topic, message) => this.send(topic, [message]),
      onClosed: () => this.subscriptions.delete(subscription),
    });
    this.subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (err) {
      await subscription.close().catch(() => undefined);
      throw err;
    }
    return subscription;
  }

  read(topic: string, options: ReadOptions): ReadStream {
    assertTopicName(topic);
    if (this.state !== 'started' || !this.store) throw this.closedError(`read ${topic}`);
    const reader: EmbeddedReadStream = new EmbeddedReadStream(this.store, topic, options, this.config.pollInterval, this.logger, () =>
      this.readers.delete(reader),
    );
    this.readers.add(reader);
    return reader;
  }

  /**
   * Takes and drops the write lock: what publish needs. A plain SELECT would succeed while another process
   * holds the file locked (WAL readers never block) and report a bus that cannot accept anything as healthy.
   */
  async health(): Promise<BusHealth> {
    const store = this.store;
    if (this.state !== 'started' || !store) return { ok: false, kind: this.kind, detail: this.state === 'new' || this.state === 'starting' ? 'not started' : 'closed' };
    const began = performance.now();
    try {
      await withBusyRetry(() => store.write(() => store.sql.ping.get(), false), Date.now() + HEALTH_WAIT_MS, 'health check');
      return { ok: true, kind: this.kind, latencyMs: Math.round((performance.now() - began) * 100) / 100 };
    } catch (err) {
      return { ok: false, kind: this.kind, latencyMs: Math.round(performance.now() - began), detail: (err as Error).message };
    }
  }

  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    if (this.startPromise) await this.startPromise.catch(() => undefined);
    if (this.state !== 'started') {
      this.state = 'closed';
      return;
    }
    this.state = 'closing';
    clearTimeout(this.retentionTimer);
    // Subscriptions first: their last dead letters and offset commits still need the file.
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await Promise.all([...this.readers].map((r) => r.close()));
    await this.publisher?.drain();
    await this.retentionRun;
    this.state = 'closed';
    clearTimeout(this.retentionTimer);
    this.store?.close();
    this.logger.debug('embedded bus closed');
  }

  private closedError(what: string): BusError {
    const why = this.state === 'new' || this.state === 'starting' ? 'has not been started' : 'is closed';
    return new BusError(ErrorCodes.BUS_CLOSED, `${what}: the embedded bus ${why}`);
  }

  // ---------------------------------------------------------------- retention

  private scheduleRetention(delay: number): void {
    if (this.state !== 'started') return;
    this.retentionTimer = setTimeout(() => {
      this.retentionRun = this.enforceRetention().then(() => {
        this.retentionRun = undefined;
        // Often enough that the file stays near its retention, rarely enough to cost nothing.
        this.scheduleRetention(Math.min(60_000, Math.max(1_000, Math.floor(this.config.retention / 10))));
      });
    }, delay);
    // Housekeeping must not keep a publish-only process alive.
    this.retentionTimer.unref();
  }

  /**
   * Deletes messages older than `retention` in small transactions, yielding between them. Runs on its own
   * timer; public so that tests and maintenance tools can run it now. Returns how many rows went.
   */
  async enforceRetention(now = Date.now()): Promise<number> {
    const store = this.store;
    let deleted = 0;
    for (let i = 0; i < RETENTION_BATCHES_PER_RUN && this.state === 'started' && store; i += 1) {
      let n: number;
      try {
        n = store.write(() => store.sql.deleteExpired.run(RETENTION_BATCH, now - this.config.retention).changes, false);
      } catch (err) {
        // Locked or failing: the next run tries again; retention is never urgent.
        this.logger.debug({ err }, 'retention run skipped');
        break;
      }
      deleted += n;
      if (n < RETENTION_BATCH) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (deleted > 0) this.logger.debug({ deleted }, 'deleted messages past retention');
    return deleted;
  }
}
