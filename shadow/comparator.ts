import { Counter, Gauge, type Registry } from 'prom-client';
import type { Bus, BusMessage, Delivery, Subscription } from '../src/bus/types.js';
import { BusError, ErrorCodes, describeError } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { OBSERVATIONS_TOPIC, flowObservationsPattern, observationsTopicOf } from '../src/events/wire.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC, type ParityRecord } from '../src/parity/types.js';
import { sleep } from '../src/async.js';
import { observationOf } from './observations.js';
import { PairingEngine, type FlowRules, type PairingStats } from './pairing.js';
import { openObservation } from './sealed.js';
import type { Keyring } from '../src/crypto/keyring.js';

export const COMPARATOR_GROUP = 'cutover.comparator';

/** The consumer group that judges one flow's pairs: `<group>.<flow>` (default `cutover.comparator.<flow>`). */
export function comparatorGroupOf(flow: string, group: string = COMPARATOR_GROUP): string {
  return `${group}.${flow}`;
}

export interface ComparatorOptions {
  bus: Bus;
  logger?: Logger;
  /** Compare and noise rules per flow name. */
  flows?: Readonly<Record<string, FlowRules>>;
  /**
   * Which pairs this comparator judges. `flows` (the default when `flows` names any): only the flows it
   * has rules for, each in its own group `<group>.<flow>` reading only that flow's topic
   * `<observationsTopic>.<flow>`, so comparators that know different flows never judge each other's pairs
   * with default rules, and no group reads another flow's observations. `all`: every flow's topic (the
   * pattern `<observationsTopic>.*.#`), in group `<group>` (flows without rules get the default rules).
   */
  scope?: 'flows' | 'all';
  /** ms to wait for the other side of a pair. Default 30 s. */
  window?: number;
  /** Default 100,000. */
  maxOpenPairs?: number;
  /** The base of the observation topics: flow F's observations are on `<observationsTopic>.<F>`. Default `cutover.observations`. */
  observationsTopic?: string;
  /**
   * Also read the shared topic `observationsTopic` itself, where sidecars that predate per-flow topics
   * publish every flow's observations: during a rolling upgrade. Each group then skips the other flows'
   * observations there (counted as `foreign`). Default false.
   */
  sharedTopic?: boolean;
  parityTopic?: string;
  group?: string;
  /** Where a new group starts. Default `start`. */
  from?: 'start' | 'end';
  /**
   * Observations handled in parallel (distinct correlation ids). Default 256: a handler waits for its
   * record's batch to be published, so throughput is about concurrency / publish latency.
   */
  concurrency?: number;
  /** Clock, injectable for tests. Default Date.now. */
  now?: () => number;
  /** How often expired pairs are swept; 0 disables the timer (call `sweep()` yourself). Default window/10, 50 ms..1 s. */
  sweepInterval?: number;
  /** Records published per bus call at most. Default 500. */
  batchSize?: number;
  /**
   * Records queued for publishing at most; beyond it the oldest waiting are dropped and counted (their
   * observations acknowledged). Default 100,000.
   */
  maxQueued?: number;
  registry?: Registry;
  /** Called with every record before it is queued (in-process consumers, tests). */
  onRecord?: (record: ParityRecord) => void;
  /**
   * Keys of encrypted fields (the config's `encryption:`): both sides' encrypted values are decrypted and
   * compared in clear. Without it they are compared as ciphertext, so they always differ (a fresh IV per
   * value). Either way a record shows them as `[ENCRYPTED]`.
   */
  keyring?: Keyring;
}

/**
 * The comparator as a service: consumes observations, feeds them to the {@link PairingEngine} and publishes
 * parity records to `cutover.parity` (key = flow name, type `cutover.parity.v1`). An observation is
 * acknowledged once the records it completed are on the bus.
 *
 * By default it judges only the flows it has rules for: one consumer group per flow
 * (`cutover.comparator.<flow>`, see {@link comparatorGroupOf}), each reading only its flow's observation
 * topic (`cutover.observations.<flow>`, keyed by correlation id so both sides of a pair meet on one
 * partition). The work of a group grows with its flow's traffic, not with the number of flows.
 *
 * Open pairs live in memory: a comparator that crashes loses the pairs it held open (their observations
 * were acknowledged). Several comparators in one group split the correlation ids between them, since
 * observations are keyed by correlation id.
 */
export class Comparator {
  readonly engine: PairingEngine;
  private readonly opts: Required<Pick<ComparatorOptions, 'observationsTopic' | 'parityTopic' | 'group' | 'concurrency' | 'batchSize' | 'maxQueued'>> & ComparatorOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private subscriptions: Subscription[] = [];
  private timer: NodeJS.Timeout | undefined;
  private queue: Array<{ message: BusMessage; ticket: Ticket }> = [];
  /** The ticket of the records queued since the drain last took a batch. */
  private ticket: Ticket | undefined;
  /** Records of the batch being published (out of the queue meanwhile). */
  private inFlight = 0;
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private started = false;
  private closed = false;
  private dropped = 0;
  private ignored = 0;
  private foreign = 0;
  private undecryptable = 0;
  private readonly metrics: ComparatorMetrics | undefined;

  constructor(options: ComparatorOptions) {
    this.opts = {
      observationsTopic: OBSERVATIONS_TOPIC,
      parityTopic: PARITY_TOPIC,
      group: COMPARATOR_GROUP,
      concurrency: 256,
      batchSize: 500,
      maxQueued: 100_000,
      ...options,
    };
    this.log = (options.logger ?? silentLogger()).child({ component: 'comparator' });
    this.now = options.now ?? Date.now;
    const window = options.window ?? 30_000;
    const cipher = options.keyring?.current;
    this.engine = new PairingEngine({ window, maxOpenPairs: options.maxOpenPairs ?? 100_000, flows: options.flows ?? {}, ...(cipher ? { secret: (path) => cipher.covers(path) } : {}) });
    this.metrics = options.registry ? ComparatorMetrics.of(options.registry, () => this.engine.stats()) : undefined;
  }

  /** Joins the group; resolves once consuming. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const known = Object.keys(this.opts.flows ?? {});
    const scoped = (this.opts.scope ?? (known.length > 0 ? 'flows' : 'all')) === 'flows';
    const base = this.opts.observationsTopic;
    const shared = this.opts.sharedTopic === true ? [base] : [];
    const subscribe = (group: string, flow: string | undefined): Promise<Subscription> =>
      this.opts.bus.subscribe({
        group,
        // Scope all: every flow's topic, not the shared topic itself (which `<base>.#` would match too).
        topics: flow === undefined ? [flowObservationsPattern(base), ...shared] : [observationsTopicOf(flow, base), ...shared],
        concurrency: this.opts.concurrency,
        from: this.opts.from ?? 'start',
        handler: (d) => this.handle(d, flow),
      });
    try {
      if (scoped) for (const flow of known) this.subscriptions.push(await subscribe(comparatorGroupOf(flow, this.opts.group), flow));
      else this.subscriptions.push(await subscribe(this.opts.group, undefined));
    } catch (err) {
      await this.closeSubscriptions();
      throw err;
    }
    const window = this.opts.window ?? 30_000;
    const interval = this.opts.sweepInterval ?? Math.min(1_000, Math.max(50, Math.floor(window / 10)));
    if (interval > 0) {
      this.timer = setInterval(() => void this.sweep().catch((err) => this.log.warn({ err }, 'sweep failed')), interval);
      this.timer.unref();
    }
    const topics = scoped ? known.map((f) => observationsTopicOf(f, base)) : [flowObservationsPattern(base)];
    this.log.info({ groups: this.subscriptions.map((x) => x.group), topics: [...topics, ...shared], window }, 'comparator consuming');
  }

  /** Records pairs whose window passed as missing_*; resolves once those records are on the bus. */
  async sweep(): Promise<void> {
    const records = this.engine.expire(this.now());
    if (records.length > 0) await this.emit(records);
  }

  /**
   * Handles one observation delivery (exposed for in-process use and the benchmark). An observation of
   * another flow than its topic's (with `flow`: than the group's) is skipped: the shared topic carries every
   * flow, and another installation's topics may lie below this one's (`cutover.observations.staging.*`).
   */
  handle(delivery: Delivery, flow?: string): Promise<void> {
    // Not async: most deliveries (the first side of a pair, a foreign one) have nothing to wait for, and
    // share one settled promise instead of allocating their own.
    try {
      const records = this.ingest(delivery, flow);
      return records && records.length > 0 ? this.emit(records) : SETTLED;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private ingest(delivery: Delivery, flow: string | undefined): ParityRecord[] | undefined {
    const obs = observationOf(delivery);
    if (!obs) {
      this.ignored += 1;
      return undefined;
    }
    if ((flow !== undefined && obs.flow !== flow) || !this.onItsTopic(delivery.topic, obs.flow)) {
      this.foreign += 1;
      return undefined;
    }
    const opened = openObservation(obs, this.opts.keyring);
    if (opened.outcome === 'failed') {
      // Compared as published: the pair then differs on those fields, and the record says no more.
      this.undecryptable += 1;
      this.log.warn({ correlationId: obs.correlationId, flow: obs.flow, side: obs.side, code: opened.code }, 'observation does not decrypt; compared by ciphertext');
    }
    return this.engine.ingest(obs, this.now());
  }

  /** Whether `topic` is where observations of `flow` go: its own topic, or the shared one. */
  private onItsTopic(topic: string, flow: string): boolean {
    const base = this.opts.observationsTopic;
    return topic === base || (topic.length === base.length + 1 + flow.length && topic.startsWith(base) && topic.endsWith(flow) && topic[base.length] === '.');
  }

  /**
   * `foreign`: deliveries skipped because they belong to another flow than their group's (read on the
   * shared topic) or than their topic's; `undecryptable`: observations whose encrypted fields did not
   * decrypt with the keyring.
   */
  stats(): PairingStats & { queued: number; dropped: number; ignored: number; foreign: number; undecryptable: number } {
    return { ...this.engine.stats(), queued: this.queue.length + this.inFlight, dropped: this.dropped, ignored: this.ignored, foreign: this.foreign, undecryptable: this.undecryptable };
  }

  /** The consumer groups this comparator consumes in (one per known flow, or the one shared group). */
  get groups(): string[] {
    return this.subscriptions.map((s) => s.group);
  }

  /** Resolves once everything queued so far is on the bus. */
  async flush(): Promise<void> {
    if (this.queue.length === 0 && !this.flushing) return;
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  /** Stops consuming, publishes what is queued (bounded by the bus publish timeout), idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.closeSubscriptions();
    // Cut any backoff short: from now on one more try per batch, then give up loudly.
    this.abort.abort();
    await this.flush().catch((err) => this.log.warn({ err, queued: this.queue.length }, 'parity records not published at close'));
  }

  private async closeSubscriptions(): Promise<void> {
    const subs = this.subscriptions;
    this.subscriptions = [];
    await Promise.all(subs.map((s) => s.close().catch((err) => this.log.warn({ err, group: s.group }, 'leaving a comparator group failed'))));
  }

  private emit(records: ParityRecord[]): Promise<void> {
    // The records queued between two batches share one ticket: one promise for all their handlers.
    const ticket = (this.ticket ??= new Ticket());
    ticket.left += records.length;
    for (const r of records) {
      this.metrics?.records.inc({ flow: r.flow, outcome: r.outcome });
      this.opts.onRecord?.(r);
      // Bounded memory wins over completeness when the bus is down for long; the count says so. A batch
      // being published is never dropped: while one is, one record may wait beyond the bound.
      if (this.queue.length > 0 && this.queue.length + this.inFlight >= this.opts.maxQueued) this.drop();
      this.queue.push({ message: parityMessage(r), ticket });
    }
    this.kick();
    return ticket.promise;
  }

  /** Drops the oldest queued record; its handler is acknowledged (the record is counted as dropped). */
  private drop(): void {
    const old = this.queue.shift()!;
    this.dropped += 1;
    old.ticket.settle();
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.drain().finally(() => {
      this.flushing = undefined;
      // Once closed, a failed drain has rejected its waiters already: do not spin on a dead bus.
      if (this.queue.length > 0 && !this.closed) this.kick();
      else {
        const waiters = this.waiters;
        this.waiters = [];
        waiters.forEach((w) => w.resolve());
      }
    });
  }

  private async drain(): Promise<void> {
    let failures = 0;
    while (this.queue.length > 0) {
      // Gather what arrived in the same tick: one bus call for many records.
      await new Promise((r) => setImmediate(r));
      // Records queued from now on wait for a later batch: they get a ticket of their own.
      this.ticket = undefined;
      // Taken out of the queue while on their way, so that records dropped for room are never these.
      const batch = this.queue.splice(0, this.opts.batchSize);
      this.inFlight = batch.length;
      try {
        await this.opts.bus.publish(this.opts.parityTopic, batch.map((b) => b.message));
      } catch (err) {
        this.inFlight = 0;
        // Back at the head, oldest first; what no longer fits goes from there.
        this.queue = batch.concat(this.queue);
        while (this.queue.length > this.opts.maxQueued) this.drop();
        failures += 1;
        const { code } = describeError(err);
        this.log.warn({ err, code, queued: this.queue.length, failures }, 'publishing parity records failed; retrying');
        if (this.closed) {
          const waiters = this.waiters;
          this.waiters = [];
          const failure = new BusError(ErrorCodes.BUS_UNAVAILABLE, `parity records could not be published: ${describeError(err).message}`, { cause: err, retriable: true });
          waiters.forEach((w) => w.reject(failure));
          return;
        }
        await sleep(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)), this.abort.signal);
        continue;
      }
      failures = 0;
      this.inFlight = 0;
      for (const b of batch) b.ticket.settle();
    }
  }
}

/**
 * Records queued together and the promise their handlers wait on: it resolves once each of them is on the
 * bus (or dropped for room), so a handler is acknowledged no earlier than its own records are published.
 */
class Ticket {
  left = 0;
  private resolve!: () => void;
  readonly promise = new Promise<void>((resolve) => {
    this.resolve = resolve;
  });

  settle(): void {
    this.left -= 1;
    if (this.left === 0) this.resolve();
  }
}

/** What {@link Comparator.handle} returns when there is nothing to wait for. */
const SETTLED: Promise<void> = Promise.resolve();

function parityMessage(record: ParityRecord): BusMessage {
  return {
    key: record.flow,
    event: {
      specversion: '1.0',
      id: `${record.correlationId}:${record.outcome}`,
      source: '/cutover/comparator',
      type: PARITY_EVENT_TYPE,
      time: record.at,
      datacontenttype: 'application/json',
      correlationid: record.correlationId,
      cutoverflow: record.flow,
      data: record,
    },
  };
}

class ComparatorMetrics {
  private static readonly byRegistry = new WeakMap<Registry, ComparatorMetrics>();
  readonly records: Counter<'flow' | 'outcome'>;
  /** The newest comparator on this registry (a restarted shadow side replaces the one that failed). */
  private stats: () => PairingStats;

  /** One set per registry: a second comparator on it (a restart) takes over the gauges instead of registering them again. */
  static of(registry: Registry, stats: () => PairingStats): ComparatorMetrics {
    let metrics = ComparatorMetrics.byRegistry.get(registry);
    if (metrics) metrics.stats = stats;
    else ComparatorMetrics.byRegistry.set(registry, (metrics = new ComparatorMetrics(registry, stats)));
    return metrics;
  }

  private constructor(registry: Registry, stats: () => PairingStats) {
    this.stats = stats;
    const current = (): PairingStats => this.stats();
    this.records = new Counter({ name: 'cutover_parity_records_total', help: 'Parity records by flow and outcome', labelNames: ['flow', 'outcome'], registers: [registry] });
    new Gauge({
      name: 'cutover_comparator_open_pairs',
      help: 'Pairs waiting for their other side',
      registers: [registry],
      collect() {
        this.set(current().open);
      },
    });
    new Gauge({
      name: 'cutover_comparator_overflow_total',
      help: 'Open pairs dropped because maxOpenPairs was reached',
      registers: [registry],
      collect() {
        this.set(current().overflow);
      },
    });
  }
}
