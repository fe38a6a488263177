import { Notifier } from '../../async.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { BUSY_TIMEOUT_MS, busyDelay, isBusy, toBusError } from './sqlite.js';
import type { EmbeddedStore, NewRow } from './store.js';

/** Rows per write transaction: large enough to amortize the fsync, small enough to keep the lock short. */
const MAX_ROWS_PER_TRANSACTION = 2_000;

interface Pending {
  topic: string;
  rows: readonly NewRow[];
  deadline: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** The SQLITE_BUSY that made the last try fail, to explain a rejection at the deadline. */
  lastError?: unknown;
}

/**
 * Micro-batches publishes: every call made in one turn of the event loop goes into one transaction (one
 * fsync), in call order, so per-key order holds across calls too. When another connection holds the write
 * lock, the queue waits and retries with the event loop free; each call rejects once its own publishTimeout
 * would pass, and later calls succeed again when the lock is released.
 */
export class Publisher {
  private queue: Pending[] = [];
  private flushScheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private busyTries = 0;
  private readonly drained = new Notifier();

  constructor(
    private readonly store: EmbeddedStore,
    private readonly publishTimeout: number,
    private readonly logger: Logger,
  ) {}

  /** Resolves once `rows` are committed to `topic` (validated and serialized by the caller). */
  enqueue(topic: string, rows: readonly NewRow[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, rows, deadline: Date.now() + this.publishTimeout, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves when nothing is queued (each entry settles by its deadline at the latest). */
  drain(): Promise<void> {
    if (this.queue.length === 0 && !this.retryTimer && !this.flushScheduled) return Promise.resolve();
    return this.drained.wait().then(() => undefined);
  }

  private schedule(): void {
    if (this.flushScheduled || this.retryTimer) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    this.expire(Date.now());
    while (this.queue.length > 0) {
      const batch = this.take();
      const created = new Map<string, number>();
      try {
        const insert = this.store.sql.insertMessage;
        this.store.write(() => {
          const at = Date.now();
          for (const entry of batch) {
            let id = created.get(entry.topic);
            if (id === undefined) {
              id = this.store.ensureTopic(entry.topic, at);
              created.set(entry.topic, id);
            }
            for (const row of entry.rows) insert.run(id, row.part, row.key, row.event, row.headers, at);
          }
        }, true);
      } catch (err) {
        if (isBusy(err)) {
          for (const entry of batch) entry.lastError = err;
          this.queue.unshift(...batch);
          this.retryLater();
          return;
        }
        const error = toBusError(err, 'publishing');
        this.logger.error({ err }, 'publish transaction failed');
        for (const entry of batch) entry.reject(error);
        continue;
      }
      this.busyTries = 0;
      for (const [name, id] of created) this.store.remember(name, id);
      for (const entry of batch) entry.resolve();
      this.store.notifyWrite();
    }
    this.drained.notify();
  }

  private take(): Pending[] {
    const batch: Pending[] = [];
    let rows = 0;
    while (this.queue.length > 0 && (batch.length === 0 || rows + this.queue[0]!.rows.length <= MAX_ROWS_PER_TRANSACTION)) {
      const entry = this.queue.shift()!;
      rows += entry.rows.length;
      batch.push(entry);
    }
    return batch;
  }

  private retryLater(): void {
    this.busyTries += 1;
    const head = this.queue[0]!;
    // Wake up in time to reject the oldest call before its deadline rather than after it.
    const delay = Math.max(1, Math.min(busyDelay(this.busyTries), head.deadline - Date.now() - BUSY_TIMEOUT_MS));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.flush();
    }, delay);
  }

  /** Rejects the calls past their deadline, or that were tried and could not finish another try in time. */
  private expire(now: number): void {
    // Deadlines grow with queue position (one publishTimeout for all) and failed tries mark a prefix of the
    // queue, so the expired calls are a prefix. A call is always tried once, however short its timeout.
    const expired = (e: Pending): boolean => now >= e.deadline || (e.lastError !== undefined && now + BUSY_TIMEOUT_MS >= e.deadline);
    while (this.queue.length > 0 && expired(this.queue[0]!)) {
      const entry = this.queue.shift()!;
      entry.reject(
        entry.lastError !== undefined
          ? toBusError(entry.lastError, `publishing to ${entry.topic} (gave up after publishTimeout ${this.publishTimeout} ms)`)
          : new BusError(ErrorCodes.BUS_TIMEOUT, `publishing to ${entry.topic} did not complete within publishTimeout (${this.publishTimeout} ms)`, { retriable: true }),
      );
    }
    if (this.queue.length === 0) this.busyTries = 0;
  }
}
