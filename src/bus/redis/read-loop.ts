import type { Logger } from '../../logger.js';
import { sleep } from '../../async.js';
import type { RedisConnection } from './connection.js';
import { streamsOf } from './entries.js';
import type { Dispatch, Member, Owned, PartitionRef } from './partitions.js';
import type { Notifier } from '../../async.js';

const READ_COUNT = 128;
/** Messages queued in one consumer above which it stops reading (exported for tests). */
export const HIGH_WATER = 2_048;
/** Queued messages below which a paused read loop reads again. */
export const LOW_WATER = 1_024;

export interface ReadLoopContext extends Member {
  /** A connection of its own: an XREADGROUP BLOCK would stall every other command behind it. */
  blocking: RedisConnection;
  blockTime: number;
  /** Longest wait for a partition to read when none is ready. */
  idleWait: number;
  log: Logger;
  signal: AbortSignal;
  /** Notified when a partition became ready to read. */
  wake: Notifier;
  /** Notified when queued work shrank (and when a read ended). */
  drained: Notifier;
  /** Messages queued or running in the handlers. */
  queued(): number;
  /** Owned partitions ready for new entries. */
  readable(): Owned[];
  /** The partition this consumer owns for `stream`, if any. */
  ownerOf(stream: string): Owned | undefined;
  touched: Set<string>;
  createGroups(refs: readonly PartitionRef[], startId: string): Promise<void>;
  dispatch: Dispatch;
}

/** Reads new entries of the owned partitions with XREADGROUP, pausing while the handlers are behind. */
export class ReadLoop {
  /** Partitions of the read under way: their entries are not dispatched yet. */
  reading = new Set<Owned>();

  constructor(private readonly ctx: ReadLoopContext) {}

  async run(): Promise<void> {
    const { signal, drained } = this.ctx;
    let failures = 0;
    while (!signal.aborted) {
      if (this.ctx.queued() >= HIGH_WATER) {
        await drained.wait(1_000, signal);
        continue;
      }
      const states = this.ctx.readable();
      if (states.length === 0) {
        await this.ctx.wake.wait(this.ctx.idleWait, signal);
        continue;
      }
      this.reading = new Set(states);
      const streams = states.map((s) => s.ref.stream);
      let reply: unknown;
      try {
        reply = await this.ctx.blocking.call('XREADGROUP', 'GROUP', this.ctx.group, this.ctx.consumer, 'COUNT', READ_COUNT, 'BLOCK', this.ctx.blockTime, 'STREAMS', ...streams, ...streams.map(() => '>'));
        failures = 0;
      } catch (err) {
        this.reading = new Set();
        drained.notify();
        if (signal.aborted) break;
        failures += 1;
        const message = (err as Error)?.message ?? '';
        if (/NOGROUP/.test(message)) {
          // The stream or group was deleted under us (by hand, or a test cleaning up): make it again.
          await this.ctx.createGroups(states.map((s) => s.ref), '0').catch(() => undefined);
        } else if (failures === 1) {
          this.ctx.log.warn({ err }, 'reading from the group failed; retrying');
        }
        await sleep(Math.min(1_000, 50 * 2 ** Math.min(failures, 5)), signal);
        continue;
      }
      for (const s of states) this.ctx.touched.add(s.ref.stream);
      for (const [stream, entries] of streamsOf(reply)) {
        const state = this.ctx.ownerOf(stream);
        // Entries of a partition lost during the read stay pending; its new owner claims them.
        if (!state || !this.reading.has(state)) continue;
        for (const [id, fields] of entries) if (fields) this.ctx.dispatch(state, id, fields, 1);
      }
      this.reading = new Set();
      drained.notify();
    }
  }
}
