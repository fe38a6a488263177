import type { ParityRecord } from '../src/parity/types.js';
import { FlowAggregate, type AggregateLimits, type FlowInfo } from './aggregate.js';

/** Version pairs kept per flow; beyond that the pair seen longest ago is dropped (and counted). */
const MAX_PAIRS = 20;
/** The pair key of records whose sides report no version (most flows): made once. */
const UNVERSIONED = '\u0000';

/** One version pair's evidence: the direct side's code version and the bus side's. */
export interface PairAggregate {
  direct: string | null;
  bus: string | null;
  aggregate: FlowAggregate;
  firstMs: number;
  lastMs: number;
}

/**
 * A flow's records split by the version pair that produced them. Evidence is tied to the code that runs:
 * the report judges the pair seen last (the code running now), shows the older ones, and never pools them,
 * so a new version on either side starts afresh. Flows whose sides report no version have one pair.
 */
export class VersionedFlow {
  private readonly pairs = new Map<string, PairAggregate>();
  /** Pairs dropped because more than {@link MAX_PAIRS} were seen. */
  droppedPairs = 0;

  constructor(
    readonly info: FlowInfo,
    private readonly limits: AggregateLimits,
  ) {}

  add(record: ParityRecord, atMs: number): void {
    const direct = typeof record.directVersion === 'string' ? record.directVersion : null;
    const bus = typeof record.busVersion === 'string' ? record.busVersion : null;
    const key = direct === null && bus === null ? UNVERSIONED : `${direct ?? ''}\u0000${bus ?? ''}`;
    let pair = this.pairs.get(key);
    if (!pair) {
      if (this.pairs.size >= MAX_PAIRS) this.dropOldest();
      pair = { direct, bus, aggregate: new FlowAggregate(this.info, this.limits), firstMs: atMs, lastMs: atMs };
      this.pairs.set(key, pair);
    }
    if (atMs < pair.firstMs) pair.firstMs = atMs;
    if (atMs > pair.lastMs) pair.lastMs = atMs;
    pair.aggregate.add(record, atMs);
  }

  /** Every pair, the one seen last (the code running now) first. */
  byRecency(): PairAggregate[] {
    return [...this.pairs.values()].sort((a, b) => b.lastMs - a.lastMs);
  }

  /** The pair seen last; an empty one when the flow has no records. */
  current(): PairAggregate {
    return this.byRecency()[0] ?? { direct: null, bus: null, aggregate: new FlowAggregate(this.info, this.limits), firstMs: NaN, lastMs: NaN };
  }

  private dropOldest(): void {
    let oldest: [string, PairAggregate] | undefined;
    for (const entry of this.pairs) if (!oldest || entry[1].lastMs < oldest[1].lastMs) oldest = entry;
    if (oldest) this.pairs.delete(oldest[0]);
    this.droppedPairs++;
  }
}
