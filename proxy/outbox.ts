import { sleep, withTimeout } from '../src/async.js';
import type { Bus, BusMessage } from '../src/bus/types.js';
import { BusError, describeError, ErrorCodes, isCutoverError } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import type { PublisherConfig } from '../src/config/sidecar.js';
import type { Spool, SpoolRecord } from './spool.js';

/** What the outbox reports; the sidecar wires these to Prometheus. All optional. */
export interface OutboxHooks {
  published?(topic: string, count: number): void;
  /** Seconds one bus.publish call took, and whether it succeeded. */
  publishLatency?(seconds: number, ok: boolean): void;
  failed?(code: string): void;
  spooled?(count: number): void;
  dropped?(reason: 'spool_full' | 'spool_error' | 'rejected', count: number): void;
}

export interface OutboxOptions {
  config: PublisherConfig;
  /** The bus to publish to, or undefined while it is not started yet (events then go to the spool). */
  bus: () => Bus | undefined;
  spool: Spool;
  logger: Logger;
  hooks?: OutboxHooks;
}

export interface OutboxStats {
  enqueued: number;
  published: number;
  spooled: number;
  dropped: number;
  failures: number;
}

/** Errors that retrying can never fix: the message itself is refused. */
const POISON = new Set<string>([ErrorCodes.MESSAGE_TOO_LARGE, ErrorCodes.EVENT_INVALID, ErrorCodes.TOPIC_INVALID]);

/**
 * The sidecar's outbox (configured by the `publisher` section): publishes events to the bus off the
 * request path. `enqueue` never blocks and never throws: events go into a bounded in-memory queue that
 * one loop sends in micro-batches (one bus.publish per topic per round). When the bus fails, is slower
 * than `publishTimeout`, or the queue is full, events go to the local spool, and while the spool holds
 * anything every newer event goes behind it; the loop sends the spool in order once the bus answers
 * again. Delivery is at-least-once: a publish that timed out here may still land, and its events are
 * then sent twice.
 */
export class Outbox {
  private readonly opts: OutboxOptions;
  private readonly cfg: PublisherConfig;
  private queue: SpoolRecord[] = [];
  private seq = 0;
  /** Spool appends started but not finished: the spool counts as non-empty until they land. */
  private spoolWrites = 0;
  private retryAt = 0;
  private backoffMs: number;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private stopping = false;
  private stopDeadline = Infinity;
  private readonly counts: OutboxStats = { enqueued: 0, published: 0, spooled: 0, dropped: 0, failures: 0 };
  private lastError: { code: string; message: string; at: string } | undefined;
  private lastDropLog = 0;

  constructor(options: OutboxOptions) {
    this.opts = options;
    this.cfg = options.config;
    this.backoffMs = this.cfg.backoff;
  }

  /** Starts the send loop. Sequence numbers continue above what the spool holds. */
  start(): void {
    if (this.loopDone) return;
    this.seq = this.opts.spool.lastSeq + 1;
    this.loopDone = this.loop().catch((err) => {
      // The loop catches per round; reaching here is a bug, and events would silently stop flowing.
      this.opts.logger.fatal({ err }, 'outbox loop crashed');
    });
  }

  /** Events waiting in memory. */
  get queueDepth(): number {
    return this.queue.length;
  }

  get spoolDepth(): number {
    return this.opts.spool.depth;
  }

  get stats(): Readonly<OutboxStats> {
    return this.counts;
  }

  /** The last publish failure, for readiness and diagnostics. */
  get lastFailure(): { code: string; message: string; at: string } | undefined {
    return this.lastError;
  }

  /** Queues one message for `topic`. Never blocks the caller, never throws. */
  enqueue(topic: string, message: BusMessage): void {
    const record: SpoolRecord = { seq: this.seq++, topic, message };
    this.counts.enqueued++;
    this.opts.spool.journal?.add(record);
    if (this.queue.length >= this.cfg.queueSize) {
      // Full: the whole queue moves to the spool ahead of this record, so order holds.
      const moved = this.queue;
      this.queue = [];
      moved.push(record);
      void this.toSpool(moved);
    } else {
      this.queue.push(record);
    }
    this.signal();
  }

  /**
   * Publishes one message and resolves only once it is durable: `'bus'` when the bus acknowledged it,
   * `'spool'` when it went to the local spool (fsynced; sent in order once the bus is back). Used where the
   * caller's answer depends on the message being held (bus mode). Without `spool`, or when the spool cannot
   * take it either, rejects with CUTOVER_BUS_UNAVAILABLE (or the bus's own code): the message is not held.
   * While the spool holds earlier messages a spool-allowed message goes behind them, so order holds.
   */
  async publishDurable(topic: string, message: BusMessage, options: { spool: boolean; timeout?: number }): Promise<'bus' | 'spool'> {
    const record: SpoolRecord = { seq: this.seq++, topic, message };
    this.counts.enqueued++;
    if (this.stopping) throw new BusError(ErrorCodes.BUS_CLOSED, 'the outbox is closing');
    const bus = this.opts.bus();
    let cause: unknown;
    if (bus && !(options.spool && this.spoolBusy())) {
      const started = performance.now();
      try {
        const ms = Math.min(options.timeout ?? Infinity, this.cfg.publishTimeout);
        await withTimeout(bus.publish(topic, [message]), ms, () => publishTimedOut(ms));
        this.opts.hooks?.publishLatency?.((performance.now() - started) / 1000, true);
        this.counts.published++;
        this.opts.hooks?.published?.(topic, 1);
        return 'bus';
      } catch (err) {
        this.opts.hooks?.publishLatency?.((performance.now() - started) / 1000, false);
        const code = this.noteFailure(err);
        cause = err;
        // A refused message would be refused again from the spool: tell the caller now.
        if (POISON.has(code)) throw err;
      }
    } else if (!bus) {
      cause = new BusError(ErrorCodes.BUS_UNAVAILABLE, 'bus not started yet', { retriable: true });
    }
    if (!options.spool) {
      throw new BusError(ErrorCodes.BUS_UNAVAILABLE, `the bus did not take the message: ${describeError(cause).message}`, { retriable: true, cause });
    }
    this.spoolWrites++;
    try {
      const { written } = await this.opts.spool.append([record]);
      if (written !== 1) throw new BusError(ErrorCodes.SPOOL_FULL, 'the spool is full', { retriable: true });
      this.counts.spooled++;
      this.opts.hooks?.spooled?.(1);
    } catch (err) {
      this.counts.dropped++;
      this.opts.hooks?.dropped?.(isCutoverError(err) && err.code === ErrorCodes.SPOOL_FULL ? 'spool_full' : 'spool_error', 1);
      throw new BusError(ErrorCodes.BUS_UNAVAILABLE, 'neither the bus nor the spool could take the message', { retriable: true, cause: err });
    } finally {
      this.spoolWrites--;
    }
    if (cause !== undefined && this.retryAt <= Date.now()) this.backOff();
    this.signal();
    return 'spool';
  }

  /**
   * Stops taking new rounds after sending what it can within `drainTimeout`: the queue first, then the
   * spool. Whatever is left at the deadline is in the spool (durable) for the next start. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopDeadline = Date.now() + this.cfg.drainTimeout;
      // Retry the bus right away: shutdown is the last chance to send without waiting for a restart.
      this.retryAt = 0;
      this.signal();
    }
    await this.loopDone;
    while (this.spoolWrites > 0) await new Promise((r) => setTimeout(r, 5));
  }

  private signal(): void {
    const wake = this.wake;
    if (wake) {
      this.wake = undefined;
      wake();
    }
  }

  /**
   * While the spool holds something, newer events go behind it to keep the order. A spool that cannot use
   * its disk is bypassed instead: events then go to the bus out of order rather than be dropped.
   */
  private spoolBusy(): boolean {
    return this.spoolWrites > 0 || (this.opts.spool.depth > 0 && this.opts.spool.healthy);
  }

  private async loop(): Promise<void> {
    for (;;) {
      const pastDeadline = this.stopping && Date.now() >= this.stopDeadline;
      if (pastDeadline) {
        if (this.queue.length > 0) await this.toSpool(this.takeAll());
        const left = this.opts.spool.depth;
        if (left > 0) this.opts.logger.warn({ records: left }, 'shutdown deadline reached; events stay in the spool and are sent on the next start');
        return;
      }
      let worked = false;
      if (this.opts.spool.depth > 0 && Date.now() >= this.retryAt) {
        // A round that moved nothing waits for the backoff: no loop may spin without I/O.
        if (await this.drainSpool()) worked = true;
        else this.backOff();
      }
      if (this.queue.length > 0) {
        worked = true;
        if (this.cfg.linger > 0 && this.queue.length < this.cfg.maxBatch && !this.stopping) await sleep(this.cfg.linger);
        const batch = this.queue.length <= this.cfg.maxBatch ? this.takeAll() : this.queue.splice(0, this.cfg.maxBatch);
        if (this.spoolBusy()) {
          await this.toSpool(batch);
        } else {
          const failed = await this.publishRecords(batch);
          if (failed.length > 0) {
            this.backOff();
            await this.toSpool(failed);
          } else {
            this.backoffMs = this.cfg.backoff;
          }
        }
      }
      if (worked) continue;
      if (this.stopping && this.queue.length === 0 && this.spoolWrites === 0 && this.opts.spool.depth === 0) return;
      await this.idle();
    }
  }

  private takeAll(): SpoolRecord[] {
    const all = this.queue;
    this.queue = [];
    return all;
  }

  /** Waits for an enqueue, the retry time, or the shutdown deadline. */
  private idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.wake = done;
      const until = Math.min(this.opts.spool.depth > 0 ? this.retryAt : Infinity, this.stopping ? this.stopDeadline : Infinity);
      if (until !== Infinity) timer = setTimeout(() => {
        if (this.wake === done) this.wake = undefined;
        done();
      }, Math.max(1, until - Date.now()));
    });
  }

  private backOff(): void {
    this.retryAt = Date.now() + this.backoffMs;
    this.backoffMs = Math.min(this.cfg.maxBackoff, this.backoffMs * 2);
  }

  /** Sends one batch from the spool's head. False when nothing moved (the caller backs off). */
  private async drainSpool(): Promise<boolean> {
    let batch;
    try {
      batch = await this.opts.spool.read(this.cfg.maxBatch);
    } catch (err) {
      this.opts.logger.error({ err }, 'cannot read the spool; retrying later');
      return false;
    }
    if (!batch) return false;
    const failed = await this.publishRecords(batch.records);
    if (failed.length > 0) {
      // Nothing is committed: the whole batch is read again later (what did land is sent twice).
      return false;
    }
    this.backoffMs = this.cfg.backoff;
    try {
      await this.opts.spool.commit(batch);
    } catch (err) {
      this.opts.logger.error({ err }, 'cannot record spool progress; the batch may be sent again');
    }
    return true;
  }

  /** Publishes records grouped by topic (order kept within each topic). Returns the records that failed. */
  private async publishRecords(records: SpoolRecord[]): Promise<SpoolRecord[]> {
    const bus = this.opts.bus();
    if (!bus) {
      this.noteFailure(new BusError(ErrorCodes.BUS_UNAVAILABLE, 'bus not started yet', { retriable: true }));
      return records;
    }
    const byTopic = new Map<string, SpoolRecord[]>();
    for (const r of records) {
      const list = byTopic.get(r.topic);
      if (list) list.push(r);
      else byTopic.set(r.topic, [r]);
    }
    const results = await Promise.all([...byTopic].map(([topic, list]) => this.publishTopic(bus, topic, list)));
    const failed = results.flat();
    return failed.length === 0 ? failed : failed.sort((a, b) => a.seq - b.seq);
  }

  private async publishTopic(bus: Bus, topic: string, list: SpoolRecord[]): Promise<SpoolRecord[]> {
    const started = performance.now();
    try {
      await withTimeout(
        bus.publish(
          topic,
          list.map((r) => r.message),
        ),
        this.cfg.publishTimeout,
        () => publishTimedOut(this.cfg.publishTimeout),
      );
      this.opts.hooks?.publishLatency?.((performance.now() - started) / 1000, true);
      this.counts.published += list.length;
      this.opts.hooks?.published?.(topic, list.length);
      this.settle(list);
      return [];
    } catch (err) {
      this.opts.hooks?.publishLatency?.((performance.now() - started) / 1000, false);
      const code = this.noteFailure(err);
      if (!POISON.has(code)) return list;
      if (list.length === 1) {
        this.counts.dropped++;
        this.opts.hooks?.dropped?.('rejected', 1);
        this.opts.logger.error({ err, topic, eventId: list[0]!.message.event.id }, 'the bus refused an event for good; dropping it');
        this.settle(list);
        return [];
      }
      // One bad message fails the whole call: send one by one to keep the good ones.
      const failed: SpoolRecord[] = [];
      for (const r of list) failed.push(...(await this.publishTopic(bus, topic, [r])));
      return failed;
    }
  }

  private noteFailure(err: unknown): string {
    const { code, message } = describeError(err);
    this.counts.failures++;
    this.lastError = { code, message, at: new Date().toISOString() };
    this.opts.hooks?.failed?.(code);
    this.opts.logger.warn({ err }, 'publish failed; events go to the spool');
    return code;
  }

  private async toSpool(records: SpoolRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.spoolWrites++;
    try {
      const { written, dropped } = await this.opts.spool.append(records);
      this.counts.spooled += written;
      if (written > 0) this.opts.hooks?.spooled?.(written);
      if (dropped.length > 0) {
        this.counts.dropped += dropped.length;
        this.opts.hooks?.dropped?.('spool_full', dropped.length);
        this.opts.logger.error(
          { dropped: dropped.length, spoolBytes: this.opts.spool.sizeOnDisk, firstEventId: dropped[0]!.message.event.id },
          'spool full: events dropped (raise spool.maxBytes, free disk space or bring the bus back)',
        );
      }
    } catch (err) {
      this.counts.dropped += records.length;
      const full = isCutoverError(err) && err.code === ErrorCodes.SPOOL_FULL;
      this.opts.hooks?.dropped?.(full ? 'spool_full' : 'spool_error', records.length);
      // A failing disk refuses every round until its backoff passes: one line per second is enough.
      if (Date.now() - this.lastDropLog >= 1_000) {
        this.lastDropLog = Date.now();
        this.opts.logger.error({ err, dropped: records.length }, 'cannot write the spool: events dropped');
      }
    } finally {
      this.spoolWrites--;
      // Held by the spool or counted as dropped: either way a crash must not send them again.
      this.settle(records);
      // An idle loop must learn that the spool holds something now.
      this.signal();
    }
  }

  private settle(records: readonly SpoolRecord[]): void {
    const journal = this.opts.spool.journal;
    if (journal) for (const r of records) journal.settle(r);
  }
}

function publishTimedOut(ms: number): BusError {
  return new BusError(ErrorCodes.BUS_TIMEOUT, `publish took longer than ${ms} ms`, { retriable: true });
}
