import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../logger.js';
import { sleep } from '../../async.js';
import { deliverWithRetry, KeyedScheduler, retryPolicy, type DeliveryOutcome, type RetryPolicy } from '../attempts.js';
import type { EmbeddedBusConfig } from '../../config/bus.js';
import { planLeases } from '../leases.js';
import { backoffDelay } from '../retry.js';
import { isPattern, topicsMatcher } from '../topics.js';
import type { BusMessage, Delivery, SubscribeOptions, Subscription } from '../types.js';
import { busyDelay, isBusy, withBusyRetry } from './sqlite.js';
import { Notifier } from '../../async.js';
import { IDLE_RECHECK_MS, rowToDelivery, type EmbeddedStore, type MessageRow, type OffsetRow } from './store.js';

/** Most rows fetched from one topic partition per poll. */
const FETCH_LIMIT = 500;
/** Up to this many leased topic partitions, new rows anywhere make every one of them worth a look. */
const MARK_ALL_BELOW = 64;

export interface ConsumerContext {
  store: EmbeddedStore;
  config: EmbeddedBusConfig;
  logger: Logger;
  /** Publishes a dead letter through the same bus, even while it is closing. */
  deadLetter: (topic: string, message: BusMessage) => Promise<void>;
  onClosed: () => void;
}

/** What this member knows of one topic in one partition it leases. */
interface PartState {
  readonly topicId: number;
  readonly topic: string;
  readonly part: number;
  /** Highest sequence handed to the scheduler. */
  cursor: number;
  /** Highest sequence committed in the file. */
  committed: number;
  /** Sequences up to this were dispatched by an earlier owner without being committed: redeliveries. */
  readonly redeliverUpTo: number;
  /** Dispatched sequences in order, from `head` on not yet contiguous-done. */
  inflight: number[];
  head: number;
  done: Set<number>;
  /** Everything up to here is handled: the next commit. */
  doneUpTo: number;
  maxStarted: number;
  running: number;
  /** Rows may exist past the cursor. */
  hasMore: boolean;
  /** False once the partition drains or is lost: queued deliveries are skipped, not handled. */
  accepting: boolean;
  /** The lease went to another member: never commit again. */
  lost: boolean;
}

interface HeldPartition {
  readonly part: number;
  draining: boolean;
  readonly states: Map<number, PartState>;
}

interface Batch {
  state: PartState;
  rows: MessageRow[];
  attempts: number[];
  ok: boolean;
}

/**
 * One member of a consumer group on the embedded bus. All coordination lives in the SQLite file, so members
 * may sit in different processes:
 * - the group's work is split by virtual partition under the lease policy of leases.ts (fair share,
 *   sticky); a member renews its leases with every write (at least every sessionTimeout / 3). A member that joins or leaves bumps the group generation; others then rebalance
 *   at once, releasing extra partitions after their handlers in flight finish. Leases of a member that
 *   stopped heartbeating expire after sessionTimeout and are taken over;
 * - each poll is a few index reads without a lock; a write transaction (heartbeat, lease check, offset
 *   commits, "dispatched up to" marks) happens only when something is fetched, due or changed, so an idle
 *   consumer costs one write per heartbeat interval;
 * - messages go through KeyedScheduler (one at a time per key) and deliverWithRetry (backoff, DLQ); a
 *   partition commits the highest sequence below which everything is handled, in batches.
 *
 * A lease covers one partition number across every topic the group reads (not one topic's partition):
 * P leases per group however many topics a pattern matches, and a new topic needs no new assignment.
 * The cost: members of one group must subscribe to the same topics (as the toolkit's groups do), or a
 * topic only some members read stalls in the partitions the others hold.
 *
 * `attempt` after a crash counts deliveries: a message dispatched and not committed when its owner died
 * comes back with the number of such deliveries (2, 3, ...); retries inside one delivery are not stored.
 */
export class EmbeddedSubscription implements Subscription {
  readonly group: string;
  private readonly memberId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly logger: Logger;
  private readonly store: EmbeddedStore;
  private readonly matches: (topic: string) => boolean;
  private readonly exactTopics: string[];
  private readonly scheduler: KeyedScheduler;
  private readonly abort = new AbortController();
  private readonly policy: RetryPolicy;
  private readonly maxInFlight: number;
  private readonly sessionTimeout: number;
  private readonly heartbeatEvery: number;
  private readonly pollInterval: number;
  private readonly commitDelay: number;

  /** Matched topics by id. */
  private readonly topics = new Map<number, string>();
  private pendingTopics: Array<{ id: number; name: string }> = [];
  private lastTopicId = 0;
  private readonly held = new Map<number, HeldPartition>();
  private readonly dirty = new Set<PartState>();
  private lastGeneration = -1;
  private nextRebalanceAt = 0;
  private lastScanMax = 0;
  private share = 1;
  private commitDueAt = Infinity;
  private rotation = 0;
  private capacityWait = false;

  private closing = false;
  private joined = false;
  /** Consecutive polls that found the file locked: they back off so a held lock costs little. */
  private busyPolls = 0;
  private closePromise: Promise<void> | undefined;
  private loopDone: Promise<void> | undefined;
  private readonly alarm = new Notifier({ latch: true });
  private unlisten: (() => void) | undefined;

  constructor(
    private readonly options: SubscribeOptions,
    private readonly ctx: ConsumerContext,
  ) {
    this.group = options.group;
    this.store = ctx.store;
    this.logger = ctx.logger.child({ group: options.group, member: this.memberId });
    this.matches = topicsMatcher(options.topics);
    this.exactTopics = options.topics.filter((t) => !isPattern(t));
    const concurrency = Math.max(1, options.concurrency ?? 1);
    this.scheduler = new KeyedScheduler(concurrency);
    this.maxInFlight = Math.max(512, concurrency * 64);
    this.sessionTimeout = ctx.config.sessionTimeout;
    this.heartbeatEvery = Math.max(10, Math.floor(this.sessionTimeout / 3));
    this.pollInterval = Math.max(1, ctx.config.pollInterval);
    this.commitDelay = Math.min(this.pollInterval, 10);
    this.policy = { ...retryPolicy(options, this.logger, ctx.deadLetter), signal: this.abort.signal };
  }

  /**
   * Joins the group and resolves once this member consumes: it holds its fair share of partitions, or
   * waited a bounded time for busy members to hand theirs over (it keeps trying afterwards).
   */
  async start(): Promise<void> {
    const created = await withBusyRetry(
      () => this.store.write(() => this.join(this.options.from ?? 'start'), false),
      Date.now() + this.ctx.config.publishTimeout,
      `joining consumer group ${this.group}`,
    );
    for (const [name, id] of created) this.store.remember(name, id);
    this.store.markChanged();
    this.joined = true;
    const unlistenWrites = this.store.onWrite(() => this.wake());
    const unlistenChanges = this.store.onChange(() => this.wake(), this.pollInterval);
    this.unlisten = () => {
      unlistenWrites();
      unlistenChanges();
    };
    this.loopDone = this.run();
    const deadline = Date.now() + Math.min(this.sessionTimeout, 5_000);
    while (!this.closing && this.activeCount() < this.share && Date.now() < deadline) await sleep(this.pollInterval);
    this.logger.debug({ partitions: [...this.held.keys()], share: this.share }, 'joined consumer group');
  }

  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.abort.abort();
    this.unlisten?.();
    this.wake();
    await this.loopDone;
    // Handlers in flight may finish (bounded); retries waiting on backoff stop at once (aborted).
    const grace = Math.min(this.sessionTimeout, 10_000);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.scheduler.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, grace)))]);
    clearTimeout(timer);
    if (this.scheduler.size > 0) this.logger.warn({ inFlight: this.scheduler.size }, 'leaving the group with handlers still running');
    if (!this.joined) {
      this.ctx.onClosed();
      return;
    }
    try {
      await withBusyRetry(() => this.store.write(() => this.leave(), false), Date.now() + this.ctx.config.publishTimeout, `leaving consumer group ${this.group}`);
      this.store.markChanged();
    } catch (err) {
      // The leases then expire after sessionTimeout and another member takes over.
      this.logger.warn({ err }, 'could not leave the consumer group cleanly');
    }
    this.ctx.onClosed();
  }

  // ---------------------------------------------------------------- loop

  private async run(): Promise<void> {
    while (!this.closing) {
      let again = false;
      let backoff = 0;
      try {
        again = this.cycle();
        this.busyPolls = 0;
      } catch (err) {
        if (isBusy(err)) {
          // Each locked try blocks the event loop for BUSY_TIMEOUT_MS; space them out while it lasts.
          this.busyPolls += 1;
          backoff = busyDelay(this.busyPolls);
          this.logger.debug({ err }, 'poll found the bus file locked; retrying');
        } else {
          this.logger.error({ err }, 'poll cycle failed');
          backoff = this.pollInterval * 10;
        }
      }
      if (this.closing) break;
      if (again) await new Promise<void>((resolve) => setImmediate(resolve));
      else if (backoff > 0) await sleep(backoff, this.abort.signal);
      else await this.pause();
    }
  }

  /**
   * Sleeps until a due commit or rebalance, or a wake-up: a local publish, freed capacity, or the store's
   * change watcher seeing the file change (another process published or joined, a local member moved
   * leases). An idle member thus runs no query of its own between heartbeats; IDLE_RECHECK_MS bounds the
   * sleep all the same.
   */
  private pause(): Promise<unknown> {
    const now = Date.now();
    // A due commit counts only while something is left to commit (a lost partition drops its own).
    const until = Math.min(now + Math.max(this.pollInterval, IDLE_RECHECK_MS), this.dirty.size > 0 ? this.commitDueAt : Infinity, this.nextRebalanceAt);
    return this.alarm.wait(Math.max(0, until - now));
  }

  private wake(): void {
    this.alarm.notify();
  }

  /** One poll. Returns true when more work is ready at once (a full batch, new partitions). */
  private cycle(): boolean {
    const sql = this.store.sql;
    const now = Date.now();
    this.discover();
    const generation = sql.generation.get(this.group)?.generation ?? 0;
    const maxSeq = this.store.maxSeq();
    if (maxSeq > this.lastScanMax) {
      let states = 0;
      for (const h of this.held.values()) states += h.states.size;
      if (states <= MARK_ALL_BELOW) {
        // An index seek on a partition with nothing new costs less than reading the new rows to find out.
        for (const h of this.held.values()) for (const s of h.states.values()) s.hasMore = true;
      } else {
        // Many topics: look only at rows committed since the last poll to see which partitions they hit.
        for (const t of sql.touchedSince.all(this.lastScanMax)) {
          const state = this.held.get(t.part)?.states.get(t.topic_id);
          if (state) state.hasMore = true;
        }
      }
      this.lastScanMax = maxSeq;
    }
    const batches = this.fetch();
    const needWrite =
      batches.length > 0 ||
      this.pendingTopics.length > 0 ||
      now >= this.nextRebalanceAt ||
      generation !== this.lastGeneration ||
      (this.dirty.size > 0 && now >= this.commitDueAt) ||
      this.releasable().length > 0;
    if (!needWrite) return false;

    let entered = false;
    try {
      this.store.write(() => {
        entered = true;
        this.bookkeep(Date.now(), batches);
      }, false);
    } catch (err) {
      for (const b of batches) b.state.hasMore = true;
      // A failure inside the transaction rolled back what the in-memory state already assumed.
      if (entered) this.reset();
      throw err;
    }
    this.pendingTopics = [];

    for (const b of batches) {
      if (!b.ok) continue;
      b.state.cursor = b.rows[b.rows.length - 1]!.seq;
      b.rows.forEach((row, i) => this.dispatch(b.state, row, b.attempts[i]!));
    }
    if (this.scheduler.size >= this.maxInFlight) {
      this.capacityWait = true;
      return false;
    }
    for (const h of this.held.values()) {
      if (h.draining) continue;
      for (const s of h.states.values()) if (s.hasMore) return true;
    }
    return false;
  }

  /** New topics that match, kept until a transaction registers their offsets. */
  private discover(): void {
    const rows = this.store.sql.topicsAfter.all(this.lastTopicId);
    if (rows.length === 0) return;
    this.lastTopicId = rows[rows.length - 1]!.id;
    for (const t of rows) if (!this.topics.has(t.id) && this.matches(t.name)) this.pendingTopics.push(t);
  }

  /** Reads the next rows of leased partitions, within the in-flight budget, rotating for fairness. */
  private fetch(): Batch[] {
    let budget = this.maxInFlight - this.scheduler.size;
    if (budget <= 0) return [];
    const states: PartState[] = [];
    for (const h of this.held.values()) {
      if (h.draining) continue;
      for (const s of h.states.values()) if (s.hasMore) states.push(s);
    }
    const out: Batch[] = [];
    const start = states.length > 0 ? this.rotation++ % states.length : 0;
    for (let i = 0; i < states.length && budget > 0; i += 1) {
      const s = states[(start + i) % states.length]!;
      const limit = Math.min(FETCH_LIMIT, budget);
      const rows = this.store.sql.fetch.all(s.topicId, s.part, s.cursor, limit);
      if (rows.length < limit) s.hasMore = false;
      if (rows.length === 0) continue;
      budget -= rows.length;
      out.push({ state: s, rows, attempts: [], ok: false });
    }
    return out;
  }

  // ---------------------------------------------------------------- transactions

  /** Runs inside the join transaction. Returns topics it created, to cache after commit. */
  private join(from: 'start' | 'end'): Map<string, number> {
    const sql = this.store.sql;
    const now = Date.now();
    const created = new Map<string, number>();
    for (const name of this.exactTopics) created.set(name, this.store.ensureTopic(name, now));
    sql.heartbeat.run(this.group, this.memberId, now);
    this.lastGeneration = sql.bumpGeneration.get(this.group)!.generation;
    const maxSeq = this.store.maxSeq();
    this.lastScanMax = maxSeq;
    // Offsets of a group are created once, by whichever member first sees the topic: existing topics per
    // `from`, topics that appear later from their start (everything in them is newer than the group).
    const initial = from === 'end' ? maxSeq : 0;
    const all = sql.topicsAfter.all(0);
    for (const t of all) {
      if (!this.matches(t.name)) continue;
      for (let p = 0; p < this.store.partitions; p += 1) sql.initOffset.run(this.group, t.id, p, initial, initial);
      this.topics.set(t.id, t.name);
    }
    this.lastTopicId = all.length > 0 ? all[all.length - 1]!.id : 0;
    this.rebalance(now);
    return created;
  }

  /** Everything a poll writes, in one transaction. */
  private bookkeep(now: number, batches: Batch[]): void {
    const sql = this.store.sql;
    const g = this.group;
    sql.heartbeat.run(g, this.memberId, now);
    sql.renewLeases.run(now + this.sessionTimeout, g, this.memberId);
    const mine = new Set(sql.myLeases.all(g, this.memberId).map((r) => r.part));
    for (const h of [...this.held.values()]) {
      if (!mine.has(h.part)) {
        this.logger.warn({ partition: h.part }, 'lost the lease of a partition (expired and taken over); stopping it');
        this.lose(h);
      }
    }
    for (const t of this.pendingTopics) {
      for (let p = 0; p < this.store.partitions; p += 1) sql.initOffset.run(g, t.id, p, 0, 0);
      this.topics.set(t.id, t.name);
      for (const h of this.held.values()) if (!h.draining) h.states.set(t.id, this.loadState(t.id, t.name, h.part));
    }
    for (const part of mine) if (!this.held.has(part)) this.adopt(part);

    for (const s of this.dirty) if (!s.lost) this.commit(s);
    this.dirty.clear();
    this.commitDueAt = Infinity;

    const generation = sql.generation.get(g)?.generation ?? 0;
    if (generation !== this.lastGeneration || now >= this.nextRebalanceAt) {
      this.rebalance(now);
      this.lastGeneration = generation;
    }
    let released = false;
    for (const h of this.releasable()) {
      for (const s of h.states.values()) {
        this.commit(s);
        // Only what a handler really started counts as delivered for the next owner.
        sql.setDispatched.run(Math.max(s.committed, s.maxStarted, s.redeliverUpTo), g, s.topicId, s.part);
        s.lost = true;
      }
      sql.dropLease.run(g, h.part, this.memberId);
      this.held.delete(h.part);
      released = true;
    }
    if (released) {
      this.lastGeneration = sql.bumpGeneration.get(g)!.generation;
      this.store.markChanged();
    }

    for (const b of batches) {
      const s = b.state;
      if (!s.accepting) {
        s.hasMore = true;
        continue;
      }
      // Marked before any handler sees them, so a crash from here on counts as a redelivery.
      sql.markDispatched.run(b.rows[b.rows.length - 1]!.seq, g, s.topicId, s.part);
      b.attempts = b.rows.map((r) => (r.seq <= s.redeliverUpTo ? sql.countRedelivery.get(g, s.topicId, s.part, r.seq)!.attempts : 1));
      b.ok = true;
    }
  }

  /** Plans with the group's lease policy from the live members and leases, and applies the plan here. */
  private rebalance(now: number): void {
    const sql = this.store.sql;
    const g = this.group;
    this.nextRebalanceAt = now + this.heartbeatEvery;
    sql.deleteStaleMembers.run(g, now - this.sessionTimeout * 10);
    const live = sql.liveMembers.get(g, now - this.sessionTimeout)!.n;
    const leases = new Map(sql.leases.all(g).map((l) => [l.part, { owner: l.member_id, expiresAt: l.expires_at }]));
    const active = [...this.held.values()].filter((h) => !h.draining);
    const plan = planLeases({
      member: this.memberId,
      members: live,
      partitions: Array.from({ length: this.store.partitions }, (_, p) => p),
      held: active.map((h) => h.part),
      lease: (p) => leases.get(p),
      load: (p) => [...this.held.get(p)!.states.values()].reduce((n, s) => n + s.running, 0),
      now,
    });
    this.share = plan.target;
    if (plan.release.length > 0) {
      for (const p of plan.release) this.drain(this.held.get(p)!);
      this.logger.debug({ partitions: plan.release, share: this.share, live }, 'handing partitions over to other members');
    }
    for (const p of plan.claim) {
      // The statement re-checks the lease, so a plan made from a stale read cannot take a live lease.
      if (sql.takeLease.run(g, p, this.memberId, now + this.sessionTimeout, now).changes !== 1) continue;
      const lease = leases.get(p);
      if (lease && lease.owner !== this.memberId) this.logger.info({ partition: p, from: lease.owner }, 'took over an expired partition lease');
      this.adopt(p);
    }
  }

  private leave(): void {
    const sql = this.store.sql;
    const g = this.group;
    for (const h of this.held.values()) {
      for (const s of h.states.values()) {
        if (s.lost) continue;
        this.commit(s);
        sql.setDispatched.run(Math.max(s.committed, s.maxStarted, s.redeliverUpTo), g, s.topicId, s.part);
        s.lost = true;
        s.accepting = false;
      }
      sql.dropLease.run(g, h.part, this.memberId);
    }
    this.held.clear();
    sql.deleteMember.run(g, this.memberId);
    sql.bumpGeneration.get(g);
  }

  private commit(s: PartState): void {
    if (s.doneUpTo <= s.committed) return;
    const sql = this.store.sql;
    sql.commit.run(s.doneUpTo, this.group, s.topicId, s.part, s.doneUpTo);
    if (s.redeliverUpTo > s.committed) sql.forgetRedeliveries.run(this.group, s.topicId, s.part, s.doneUpTo);
    s.committed = s.doneUpTo;
  }

  // ---------------------------------------------------------------- partition state

  private adopt(part: number): void {
    const sql = this.store.sql;
    const rows = new Map(sql.offsetsOfPart.all(this.group, part).map((r) => [r.topic_id, r]));
    const h: HeldPartition = { part, draining: false, states: new Map() };
    for (const [id, name] of this.topics) h.states.set(id, this.loadState(id, name, part, rows.get(id)));
    this.held.set(part, h);
  }

  private loadState(topicId: number, topic: string, part: number, known?: OffsetRow): PartState {
    let row = known;
    if (!row) {
      this.store.sql.initOffset.run(this.group, topicId, part, 0, 0);
      row = this.store.sql.offsetsOfPart.all(this.group, part).find((r) => r.topic_id === topicId)!;
    }
    return {
      topicId,
      topic,
      part,
      cursor: row.committed_seq,
      committed: row.committed_seq,
      redeliverUpTo: row.dispatched_seq > row.committed_seq ? row.dispatched_seq : 0,
      inflight: [],
      head: 0,
      done: new Set(),
      doneUpTo: row.committed_seq,
      maxStarted: 0,
      running: 0,
      hasMore: true,
      accepting: true,
      lost: false,
    };
  }

  private drain(h: HeldPartition): void {
    h.draining = true;
    for (const s of h.states.values()) s.accepting = false;
  }

  private lose(h: HeldPartition): void {
    for (const s of h.states.values()) {
      s.lost = true;
      s.accepting = false;
      this.dirty.delete(s);
    }
    this.held.delete(h.part);
  }

  /** Draining partitions with no handler running: ready to hand over. */
  private releasable(): HeldPartition[] {
    const out: HeldPartition[] = [];
    for (const h of this.held.values()) {
      if (h.draining && [...h.states.values()].every((s) => s.running === 0)) out.push(h);
    }
    return out;
  }

  private activeCount(): number {
    let n = 0;
    for (const h of this.held.values()) if (!h.draining) n += 1;
    return n;
  }

  /** After a failed transaction: forget everything and rebuild from the file on the next poll. */
  private reset(): void {
    for (const h of [...this.held.values()]) this.lose(h);
    this.topics.clear();
    this.pendingTopics = [];
    this.lastTopicId = 0;
    this.lastGeneration = -1;
    this.dirty.clear();
  }

  // ---------------------------------------------------------------- delivery

  private dispatch(s: PartState, row: MessageRow, attempt: number): void {
    s.inflight.push(row.seq);
    const delivery = rowToDelivery(s.topic, row, attempt, this.logger);
    if (!delivery) {
      this.markDone(s, row.seq);
      return;
    }
    const lane = row.msg_key === null ? null : `${s.topicId}\u0000${row.msg_key}`;
    void this.scheduler.push(lane, () => this.handle(s, delivery, row.seq));
  }

  private async handle(s: PartState, delivery: Delivery, seq: number): Promise<void> {
    if (!s.accepting || this.abort.signal.aborted) return;
    s.running += 1;
    if (seq > s.maxStarted) s.maxStarted = seq;
    let outcome: DeliveryOutcome = 'aborted';
    try {
      let current = delivery;
      for (let n = 1; ; n += 1) {
        try {
          outcome = await deliverWithRetry(current, this.policy);
          break;
        } catch (err) {
          // The dead letter could not be written. Keep the message (and its key's lane) here and try again:
          // acknowledging it would lose it, moving on would break per-key order.
          this.logger.error({ err, eventId: delivery.event.id, topic: delivery.topic }, 'could not publish a dead letter; retrying');
          if (!(await sleep(backoffDelay(this.policy.backoff, n + 1), this.abort.signal))) break;
          current = { ...current, attempt: Math.max(current.attempt, this.policy.maxAttempts) };
        }
      }
    } catch (err) {
      this.logger.error({ err }, 'delivery failed unexpectedly');
    } finally {
      s.running -= 1;
    }
    if (outcome !== 'aborted') this.markDone(s, seq);
    if (!s.accepting && s.running === 0) this.wake();
    if (this.capacityWait && this.scheduler.size <= this.maxInFlight / 2) {
      this.capacityWait = false;
      this.wake();
    }
  }

  private markDone(s: PartState, seq: number): void {
    s.done.add(seq);
    while (s.head < s.inflight.length && s.done.has(s.inflight[s.head]!)) {
      const next = s.inflight[s.head]!;
      s.done.delete(next);
      s.doneUpTo = next;
      s.head += 1;
    }
    if (s.head > 1_024 && s.head * 2 > s.inflight.length) {
      s.inflight = s.inflight.slice(s.head);
      s.head = 0;
    }
    if (s.lost || s.doneUpTo <= s.committed) return;
    this.dirty.add(s);
    if (this.commitDueAt === Infinity) this.commitDueAt = Date.now() + this.commitDelay;
  }
}
