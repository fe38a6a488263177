import type { Logger } from '../../logger.js';
import type { RedisConnection } from './connection.js';
import type { Owned } from './partitions.js';

const ACK_BATCH = 256;
const RETRY_MS = 250;

/**
 * Acknowledges handled entries in batches: one XACK per stream, one flush at a time. An entry leaves its
 * partition's in-flight set only once Redis took the ack, so a partition is never given back with acks
 * still owed; failed acks are kept and retried.
 */
export class AckBatcher {
  private acks: Array<[Owned, string]> = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly main: RedisConnection,
    private readonly group: string,
    private readonly log: Logger,
    /** Called after every flush: in-flight sets shrank. */
    private readonly onFlushed: () => void,
  ) {}

  ack(state: Owned, id: string): void {
    this.acks.push([state, id]);
    if (this.acks.length >= ACK_BATCH) void this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
  }

  /** XACKs everything handled so far. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.acks.length > 0 ? this.flush() : undefined));
    if (this.acks.length === 0) return Promise.resolve();
    const batch = this.acks;
    this.acks = [];
    this.flushing = (async () => {
      const byStream = new Map<string, Array<[Owned, string]>>();
      for (const item of batch) {
        const list = byStream.get(item[0].ref.stream);
        if (list) list.push(item);
        else byStream.set(item[0].ref.stream, [item]);
      }
      await Promise.all(
        [...byStream].map(async ([stream, items]) => {
          try {
            await this.main.call('XACK', stream, this.group, ...items.map(([, id]) => id));
            for (const [state, id] of items) state.inflight.delete(id);
          } catch (err) {
            this.log.debug({ err, stream, count: items.length }, 'XACK failed; will retry');
            this.acks.push(...items);
          }
        }),
      );
    })().finally(() => {
      this.flushing = undefined;
      this.onFlushed();
      if (this.acks.length > 0 && !this.scheduled && !this.stopped) {
        this.scheduled = true;
        setTimeout(() => {
          this.scheduled = false;
          void this.flush();
        }, RETRY_MS);
      }
    });
    return this.flushing;
  }

  /** No more timed retries (shutdown flushes once itself). */
  stop(): void {
    this.stopped = true;
  }
}
