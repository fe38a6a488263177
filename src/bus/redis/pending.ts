import type { Logger } from '../../logger.js';
import type { RedisConnection } from './connection.js';
import type { RawEntry } from './entries.js';
import type { RedisKeys } from './keys.js';
import type { Dispatch, Member, Owned } from './partitions.js';

const CLAIM_COUNT = 128;

export interface PendingContext extends Member {
  main: RedisConnection;
  keys: RedisKeys;
  /** claimIdle. */
  ttl: number;
  log: Logger;
  signal: AbortSignal;
  /** Streams this consumer has entries in (its name is removed from them on close). */
  touched: Set<string>;
  /** Whether `state` is still this consumer's partition (it may be lost while a claim runs). */
  isOwner(state: Owned): boolean;
  dispatch: Dispatch;
}

/**
 * Recovery of pending entries, those Redis handed to a consumer that never acknowledged them:
 * - on taking a partition, its whole backlog (XAUTOCLAIM, min-idle 0: the lease proves the previous owner
 *   is gone or has given up), queued ahead of new entries so a dead consumer's messages are redone in
 *   order. XAUTOCLAIM bumps the delivery count Redis keeps; XPENDING reads it back as `attempt` (>= 2
 *   after a crash), so a message that kills its consumer every time still reaches the DLQ;
 * - periodically, entries of owned streams idle longer than claimIdle that this consumer is not working
 *   on: entries whose dead letter could not be written, and entries a consumer read just as it lost the
 *   lease (a zombie whose blocking read returned after the takeover). The latter are redone late, the one
 *   case where per-key order can break, as with Kafka zombies.
 */
export class PendingRecovery {
  constructor(private readonly ctx: PendingContext) {}

  /**
   * XAUTOCLAIMs every entry pending in the stream, whoever it was delivered to, and dispatches them with
   * the delivery count Redis keeps as their attempt.
   */
  async claimBacklog(state: Owned): Promise<void> {
    const { main, group, consumer, log } = this.ctx;
    let cursor = '0-0';
    for (;;) {
      const reply = (await main.call('XAUTOCLAIM', state.ref.stream, group, consumer, 0, cursor, 'COUNT', CLAIM_COUNT)) as [string, RawEntry[], string[]?];
      this.ctx.touched.add(state.ref.stream);
      const [next, entries] = reply;
      const fresh = entries.filter(([id, fields]) => fields !== null && !state.inflight.has(id));
      if (fresh.length > 0) {
        const counts = await this.deliveryCounts(state, fresh, entries.length);
        if (!this.ctx.isOwner(state)) return;
        for (const [id, fields] of fresh) this.ctx.dispatch(state, id, fields!, counts.get(id) ?? 2);
        log.info({ topic: state.ref.topic, partition: state.ref.partition, count: fresh.length }, 'claimed pending messages');
      }
      if (next === '0-0' || this.ctx.signal.aborted || !this.ctx.isOwner(state)) return;
      cursor = next;
    }
  }

  /** The periodic pass over owned partitions whose backlog was claimed. */
  async sweep(states: readonly Owned[]): Promise<void> {
    if (states.length === 0) return;
    for (const state of states) await this.claimIdle(state);
    await this.forgetDeadConsumers(states);
  }

  private async deliveryCounts(state: Owned, entries: readonly RawEntry[], claimed: number): Promise<Map<string, number>> {
    const first = entries[0]![0];
    const last = entries[entries.length - 1]![0];
    const rows = (await this.ctx.main.call('XPENDING', state.ref.stream, this.ctx.group, first, last, claimed + state.inflight.size + 16, this.ctx.consumer)) as Array<[string, string, number, number]>;
    const counts = new Map<string, number>();
    for (const [id, , , deliveries] of rows) counts.set(id, Number(deliveries));
    return counts;
  }

  /**
   * Claims entries idle longer than claimIdle that this consumer is not working on. Not XAUTOCLAIM here:
   * it would also claim (and bump the delivery count of) entries still queued locally behind a slow
   * backlog, and an inflated count sends a message to the DLQ without a handler ever seeing it if this
   * consumer then dies. XPENDING lists candidates with their counts; XCLAIM (same min-idle, so a
   * concurrent claim wins cleanly) takes only the ones we want.
   */
  private async claimIdle(state: Owned): Promise<void> {
    const { main, group, consumer, ttl, log } = this.ctx;
    let start = '-';
    for (;;) {
      const rows = (await main.call('XPENDING', state.ref.stream, group, 'IDLE', ttl, start, '+', CLAIM_COUNT)) as Array<[string, string, number, number]>;
      const wanted = rows.filter(([id]) => !state.inflight.has(id));
      if (wanted.length > 0) {
        const counts = new Map(wanted.map(([id, , , deliveries]) => [id, Number(deliveries) + 1]));
        const entries = (await main.call('XCLAIM', state.ref.stream, group, consumer, ttl, ...counts.keys())) as RawEntry[];
        if (!this.ctx.isOwner(state)) return;
        const fresh = entries.filter(([id, fields]) => fields !== null && !state.inflight.has(id));
        for (const [id, fields] of fresh) this.ctx.dispatch(state, id, fields!, counts.get(id) ?? 2);
        if (fresh.length > 0) log.info({ topic: state.ref.topic, partition: state.ref.partition, count: fresh.length }, 'claimed idle pending messages');
      }
      if (rows.length < CLAIM_COUNT || this.ctx.signal.aborted || !this.ctx.isOwner(state)) return;
      start = `(${rows[rows.length - 1]![0]}`;
    }
  }

  /**
   * Removes from the group's streams consumers that are no longer members and own nothing, so crashed and
   * closed consumers (each subscription has a fresh name) do not pile up in XINFO.
   */
  private async forgetDeadConsumers(states: readonly Owned[]): Promise<void> {
    const { main, keys, group, consumer, ttl } = this.ctx;
    const live = new Set(await main.zrange(keys.members(group), '0', '-1'));
    for (const state of states) {
      const rows = (await main.call('XINFO', 'CONSUMERS', state.ref.stream, group)) as unknown[][];
      for (const row of rows) {
        const info: Record<string, unknown> = {};
        for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
        const name = String(info.name);
        if (name !== consumer && !live.has(name) && Number(info.pending) === 0 && Number(info.idle) > ttl) {
          await main.call('XGROUP', 'DELCONSUMER', state.ref.stream, group, name);
        }
      }
    }
  }

  /** Removes this consumer's name from the streams it used, where it owns nothing any more. */
  async forgetSelf(): Promise<void> {
    const { main, group, consumer } = this.ctx;
    await Promise.all(
      [...this.ctx.touched].map(async (stream) => {
        const pending = (await main.call('XPENDING', stream, group, '-', '+', 1, consumer)) as unknown[];
        if (pending.length === 0) await main.call('XGROUP', 'DELCONSUMER', stream, group, consumer);
      }),
    );
  }
}
