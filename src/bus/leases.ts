/**
 * How the members of a consumer group share its partitions, for the adapters that keep group membership
 * themselves (embedded, Redis). Each member plans on its own from what it reads of the group; the adapter
 * applies the plan atomically against the state it read (one SQLite transaction, or a compare-and-set
 * script on Redis), so two members never own a partition at once whatever they planned.
 *
 * The policy:
 * - fair share: once balanced, every member owns floor(partitions / members) partitions and
 *   partitions mod members of them own one more, so no member is left idle while another owns two more;
 * - stickiness: a member keeps what it owns up to its share, and the members already owning an extra one
 *   keep it, so a rebalance moves as few partitions (and their per-key order) as it can;
 * - a member over its share gives back the partitions with the least work in flight first, the ones
 *   latest in the partition order on a tie;
 * - a member under its share claims partitions that nobody owns or whose lease expired (its owner stopped
 *   renewing it: crashed, cut off or paused past the session timeout), trying them in a rotation of its
 *   own so that members joining together rarely race for the same ones.
 */

import { partitionOf } from './hash.js';

/** A partition's lease as a member read it. */
export interface Lease {
  owner: string;
  /** Epoch ms; the lease is void after it. */
  expiresAt: number;
}

export interface LeaseView<P extends string | number> {
  /** This member. */
  member: string;
  /** Live members of the group, this one included. */
  members: number;
  /** Every partition of the group; their order breaks ties between partitions equally busy. */
  partitions: readonly P[];
  /** Partitions this member owns and is not already giving back. */
  held: readonly P[];
  /** Current lease of a partition; undefined when nobody holds it. */
  lease(partition: P): Lease | undefined;
  /** Work in flight on a held partition (default 0). */
  load?(partition: P): number;
  now: number;
}

export interface LeasePlan<P> {
  /** How many partitions this member aims to own: `min`, or `min + 1` when it has one of the extra ones. */
  target: number;
  /** floor(partitions / members): what every member owns once the group is balanced. */
  min: number;
  /** Free or expired partitions to take, in the order to try them. */
  claim: P[];
  /** Held partitions to give back (after their work in flight is done). */
  release: P[];
}

/**
 * floor(partitions / members), and how many members own one partition more than that once balanced
 * (partitions mod members).
 */
export function fairShare(partitions: number, members: number): { min: number; extra: number } {
  const n = Math.max(1, members);
  return { min: Math.floor(partitions / n), extra: partitions % n };
}

/** Whether `member` may take a partition with this lease: nobody holds it, it lapsed, or it is already ours. */
export function claimable(lease: Lease | undefined, member: string, now: number): boolean {
  return lease === undefined || lease.owner === member || lease.expiresAt < now;
}

/** What this member should claim and release to move the group towards a fair, sticky assignment. */
export function planLeases<P extends string | number>(view: LeaseView<P>): LeasePlan<P> {
  const { min, extra } = fairShare(view.partitions.length, view.members);
  const target = min + (holdsAnExtra(view, min, extra) ? 1 : 0);
  const plan: LeasePlan<P> = { target, min, claim: [], release: [] };
  if (view.held.length > target) {
    const order = new Map(view.partitions.map((p, i) => [p, i]));
    const load = (p: P): number => view.load?.(p) ?? 0;
    const byCost = [...view.held].sort((a, b) => load(a) - load(b) || (order.get(b) ?? 0) - (order.get(a) ?? 0));
    plan.release = byCost.slice(0, view.held.length - target);
    return plan;
  }
  let wanted = target - view.held.length;
  if (wanted === 0) return plan;
  const held = new Set(view.held);
  const start = partitionOf(view.member, view.partitions.length);
  for (let i = 0; i < view.partitions.length && wanted > 0; i += 1) {
    const p = view.partitions[(start + i) % view.partitions.length]!;
    if (held.has(p) || !claimable(view.lease(p), view.member, view.now)) continue;
    plan.claim.push(p);
    wanted -= 1;
  }
  return plan;
}

/**
 * Whether this member gets one of the `extra` partitions above `min`. Members already above `min` keep
 * theirs first (stickiness), in member-name order when there are more of them than extras, so every member
 * reading the same leases reaches the same answer; a member at or below `min` gets one while fewer than
 * `extra` members are above it.
 */
function holdsAnExtra<P extends string | number>(view: LeaseView<P>, min: number, extra: number): boolean {
  if (extra === 0) return false;
  const counts = new Map<string, number>();
  for (const p of view.partitions) {
    const lease = view.lease(p);
    if (lease && lease.owner !== view.member && lease.expiresAt >= view.now) counts.set(lease.owner, (counts.get(lease.owner) ?? 0) + 1);
  }
  const above = [...counts].filter(([, n]) => n > min).map(([owner]) => owner);
  if (view.held.length <= min) return above.length < extra;
  return above.filter((owner) => owner < view.member).length < extra;
}
