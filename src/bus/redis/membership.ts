import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { planLeases } from '../leases.js';
import { type RedisConnection } from './connection.js';
import type { RedisKeys } from './keys.js';
import type { Member, Owned, PartitionRef } from './partitions.js';
import type { Notifier } from '../../async.js';

export interface MembershipContext extends Member {
  main: RedisConnection;
  keys: RedisKeys;
  /** Lease time to live (claimIdle). */
  ttl: number;
  log: Logger;
  signal: AbortSignal;
  /** Notified whenever in-flight work shrank. */
  drained: Notifier;
  /** Whether a read of this partition is under way (its entries are not dispatched yet). */
  reading(state: Owned): boolean;
}

/**
 * This consumer's membership of its group and the partition leases it holds. Consumers heartbeat into a
 * members zset (scored by expiry) and renew their leases with it; the share of partitions each takes
 * follows the group's lease policy (leases.ts), planned here from a read of the lease keys and applied
 * with a compare-and-set script, so a lease another consumer took since that read is left alone.
 * A partition is given back only after its in-flight messages are handled and acknowledged (bounded by
 * claimIdle, like Kafka's rebalance timeout), so the next owner never runs a key concurrently with us.
 */
export class GroupMembership {
  readonly owned = new Map<string, Owned>();
  /** This consumer owns at least the floor of its fair share. */
  balanced = false;
  private readonly releases = new Set<Promise<void>>();

  constructor(private readonly ctx: MembershipContext) {}

  /** The lease of `state` is still ours, as far as we can tell in time. */
  isCurrent(state: Owned): boolean {
    return this.isOwner(state) && Date.now() < state.validUntil;
  }

  isOwner(state: Owned): boolean {
    return this.owned.get(state.ref.stream) === state;
  }

  /** A partition whose lease we could not confirm in time is treated as lost (another may hold it now). */
  dropLapsed(): void {
    const now = Date.now();
    for (const state of [...this.owned.values()]) {
      if (state.validUntil <= now) {
        this.lose(state, 'lease not confirmed in time');
        void this.ctx.main.cutoverRelease(1, state.ref.lease, this.ctx.consumer).catch(() => undefined);
      }
    }
  }

  /** Renews membership and leases; returns how many members the group has. */
  async heartbeat(): Promise<number> {
    const { main, keys, group, consumer, ttl } = this.ctx;
    const states = [...this.owned.values()];
    const leaseKeys = [keys.members(group), ...states.map((s) => s.ref.lease)];
    const sentAt = Date.now();
    const reply = await withTimeout(main.cutoverHeartbeat(leaseKeys.length, ...leaseKeys, consumer, ttl), Math.max(100, Math.floor(ttl / 2)), () => new BusError(ErrorCodes.BUS_TIMEOUT, 'heartbeat timed out', { retriable: true }));
    states.forEach((state, i) => {
      if (reply[i + 1] === 1) state.validUntil = sentAt + ttl;
      else this.lose(state, 'lease taken over');
    });
    return Math.max(1, Number(reply[0]));
  }

  lose(state: Owned, why: string): void {
    if (!this.isOwner(state)) return;
    this.owned.delete(state.ref.stream);
    this.ctx.log.warn({ topic: state.ref.topic, partition: state.ref.partition, why }, 'lost a partition');
  }

  /** Moves towards this consumer's share of `all`. Returns the partitions it just took (backlog not claimed yet). */
  async rebalance(members: number, all: readonly PartitionRef[]): Promise<Owned[]> {
    if (all.length === 0) {
      this.balanced = true;
      return [];
    }
    const { main, consumer, ttl } = this.ctx;
    const refs = new Map(all.map((ref) => [ref.stream, ref]));
    const owners = await main.mget(...all.map((ref) => ref.lease));
    const ownerOf = new Map(all.map((ref, i) => [ref.stream, owners[i] ?? undefined]));
    const plan = planLeases({
      member: consumer,
      members,
      partitions: all.map((ref) => ref.stream),
      held: [...this.owned.values()].filter((s) => !s.releasing).map((s) => s.ref.stream),
      // Redis deletes a lease key when its time is up, so one that exists is live.
      lease: (stream) => {
        const owner = ownerOf.get(stream);
        return owner === undefined ? undefined : { owner, expiresAt: Number.POSITIVE_INFINITY };
      },
      load: (stream) => this.owned.get(stream)?.inflight.size ?? 0,
      now: Date.now(),
    });
    for (const stream of plan.release) this.release(this.owned.get(stream)!);
    let taken: Owned[] = [];
    if (plan.claim.length > 0) {
      const claims = plan.claim.map((stream) => refs.get(stream)!);
      const sentAt = Date.now();
      const got = await main.cutoverClaim(claims.length, ...claims.map((ref) => ref.lease), consumer, ttl, ...claims.map((ref) => ownerOf.get(ref.stream) ?? ''));
      taken = got.map((index) => {
        const ref = claims[index - 1]!;
        const state: Owned = { ref, inflight: new Set(), releasing: false, ready: false, validUntil: sentAt + ttl };
        this.owned.set(ref.stream, state);
        this.ctx.log.debug({ topic: ref.topic, partition: ref.partition }, 'took a partition');
        return state;
      });
    }
    const mine = [...this.owned.values()].filter((s) => !s.releasing).length;
    this.balanced = mine >= plan.min;
    return taken;
  }

  /** Gives a partition back once its in-flight messages are done (bounded by claimIdle). */
  private release(state: Owned): void {
    const { ttl, signal, drained, log, main, consumer } = this.ctx;
    state.releasing = true;
    const done = (async () => {
      const deadline = Date.now() + ttl;
      while ((state.inflight.size > 0 || this.ctx.reading(state)) && Date.now() < deadline && !signal.aborted) {
        await drained.wait(50, signal);
      }
      if (signal.aborted) return; // shutdown releases everything itself
      if (state.inflight.size > 0) log.warn({ topic: state.ref.topic, partition: state.ref.partition, inflight: state.inflight.size }, 'giving a partition back with handlers still running');
      if (this.isOwner(state)) this.owned.delete(state.ref.stream);
      await main.cutoverRelease(1, state.ref.lease, consumer);
      log.debug({ topic: state.ref.topic, partition: state.ref.partition }, 'gave a partition back');
    })().catch((err: unknown) => log.debug({ err }, 'releasing a partition failed; its lease will expire'));
    this.releases.add(done);
    void done.finally(() => this.releases.delete(done));
  }

  /** Waits (bounded) for partitions being given back. */
  async settle(ms: number): Promise<void> {
    await withTimeout(Promise.allSettled([...this.releases]), ms, () => new Error('release timed out')).catch(() => undefined);
  }

  /** Forgets every partition; returns their lease keys for {@link leave}. */
  surrender(): string[] {
    const leases = [...this.owned.values()].map((s) => s.ref.lease);
    this.owned.clear();
    return leases;
  }

  /** Gives back `leases` and leaves the members zset. */
  async leave(leases: readonly string[], bounded: <T>(p: Promise<T>) => Promise<unknown>): Promise<void> {
    const { main, keys, group, consumer } = this.ctx;
    if (leases.length > 0) await bounded(main.cutoverRelease(leases.length, ...leases, consumer));
    await bounded(main.zrem(keys.members(group), consumer));
  }
}
