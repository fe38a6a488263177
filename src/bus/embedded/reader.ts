import type { Logger } from '../../logger.js';
import type { Delivery, ReadOptions, ReadStream } from '../types.js';
import { isBusy, toBusError } from './sqlite.js';
import { Notifier } from '../../async.js';
import { IDLE_RECHECK_MS, rowToDelivery, type EmbeddedStore, type MessageRow } from './store.js';

/** Rows fetched per partition per round. */
const ROUND_LIMIT = 256;

/**
 * Reads one topic in sequence order without a consumer group. Rows live in per-partition index ranges, so a
 * round reads the next rows of every partition in one snapshot and merges them: up to the smallest last
 * sequence among partitions that filled their page, everything is known and can be emitted in order.
 * Sequences are assigned under the write lock, so any row committed later sorts after the snapshot.
 */
export class EmbeddedReadStream implements ReadStream, AsyncIterator<Delivery> {
  private buffer: Delivery[] = [];
  private after = 0;
  private end = Number.POSITIVE_INFINITY;
  private topicId: number | undefined;
  private started = false;
  private finished = false;
  private closed = false;
  private readonly follow: boolean;
  private readonly alarm = new Notifier({ latch: true });
  private readonly unlisten: () => void;

  constructor(
    private readonly store: EmbeddedStore,
    private readonly topic: string,
    private readonly options: ReadOptions,
    private readonly pollInterval: number,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {
    this.follow = options.follow ?? true;
    const unlistenWrites = store.onWrite(() => this.alarm.notify());
    const unlistenChanges = store.onChange(() => this.alarm.notify(), pollInterval);
    this.unlisten = () => {
      unlistenWrites();
      unlistenChanges();
    };
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return this;
  }

  async next(): Promise<IteratorResult<Delivery>> {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const next = this.buffer.shift();
      if (next) return { done: false, value: next };
      if (this.finished) {
        await this.close();
        return { done: true, value: undefined };
      }
      try {
        this.round();
      } catch (err) {
        if (!isBusy(err)) {
          await this.close();
          throw toBusError(err, `reading ${this.topic}`);
        }
      }
      if (this.buffer.length === 0 && !this.finished) await this.pause();
    }
  }

  /** Called by `break` in a for-await loop. */
  async return(): Promise<IteratorResult<Delivery>> {
    await this.close();
    return { done: true, value: undefined };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    this.buffer = [];
    this.alarm.notify();
    this.onClosed();
  }

  private round(): void {
    const store = this.store;
    if (!this.started) {
      // Pin the start (and, without follow, the end) when reading begins, not when read() was called.
      const max = store.maxSeq();
      if (this.options.from === 'end') this.after = max;
      if (!this.follow) this.end = max;
      this.started = true;
    }
    if (this.topicId === undefined) {
      this.topicId = store.topicId(this.topic);
      if (this.topicId === undefined) {
        if (!this.follow) this.finished = true;
        return;
      }
    }
    if (this.follow && store.maxSeq() <= this.after) return;
    const topicId = this.topicId;
    const { rows, bound, snapshotMax } = store.db
      .transaction(() => {
        const all: MessageRow[] = [];
        let bound = Number.POSITIVE_INFINITY;
        for (let p = 0; p < store.partitions; p += 1) {
          const page = this.follow
            ? store.sql.fetch.all(topicId, p, this.after, ROUND_LIMIT)
            : store.sql.fetchUpTo.all(topicId, p, this.after, this.end, ROUND_LIMIT);
          if (page.length === ROUND_LIMIT) bound = Math.min(bound, page[page.length - 1]!.seq);
          for (const row of page) all.push(row);
        }
        return { rows: all, bound, snapshotMax: store.maxSeq() };
      })
      .deferred();
    rows.sort((a, b) => a.seq - b.seq);
    const complete = bound === Number.POSITIVE_INFINITY;
    for (const row of rows) {
      if (row.seq > bound) break;
      const delivery = rowToDelivery(this.topic, row, 1, this.logger);
      if (delivery) this.buffer.push(delivery);
      this.after = row.seq;
    }
    if (complete) {
      // Every row of this topic up to the snapshot is read: later polls only need to look past it.
      this.after = Math.max(this.after, Math.min(snapshotMax, this.end));
      if (!this.follow) this.finished = true;
    }
  }

  private pause(): Promise<unknown> {
    // Woken by a local publish or by the store's change watcher; the bound is a safety net.
    return this.closed ? Promise.resolve() : this.alarm.wait(Math.max(this.pollInterval, IDLE_RECHECK_MS));
  }
}
