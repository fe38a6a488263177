import type { TimeBucket, Timeline } from './types.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Bucket widths a timeline may use: round numbers so bucket starts read well on a chart. */
const WIDTHS = [SECOND, 5 * SECOND, 15 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY, 30 * DAY, 365 * DAY];

export type BucketOutcome = 'match' | 'mismatch' | 'missing' | 'errors';

/** What a bucket counts: the timeline's figures, plus what the verdict needs of a stretch of time. */
export interface Counts {
  samples: number;
  match: number;
  mismatch: number;
  missing: number;
  errors: number;
  /** error_bus records (also in `errors`). */
  errorBus: number;
  /** Records whose bus side ended in a DLQ. */
  dlq: number;
}

export function emptyCounts(): Counts {
  return { samples: 0, match: 0, mismatch: 0, missing: 0, errors: 0, errorBus: 0, dlq: 0 };
}

export function addCounts(into: Counts, c: Counts): void {
  into.samples += c.samples;
  into.match += c.match;
  into.mismatch += c.mismatch;
  into.missing += c.missing;
  into.errors += c.errors;
  into.errorBus += c.errorBus;
  into.dlq += c.dlq;
}

/**
 * Counts outcomes per time bucket in bounded memory: the bucket width starts at one second and steps up
 * (merging buckets) whenever the span of the data would need more than `maxBuckets` buckets, so a report
 * over a minute and one over a month both get a readable chart. Records may arrive out of order.
 */
export class TimelineCounter {
  private widthIndex = 0;
  private buckets = new Map<number, Counts>();
  private minKey = Infinity;
  private maxKey = -Infinity;
  /** The bucket the latest record went to, and its key at the current width. */
  private last: Counts | undefined;
  private lastKey = NaN;

  constructor(private readonly maxBuckets = 120) {}

  add(atMs: number, outcome: BucketOutcome, errorBus = false, dlq = false): void {
    let width = WIDTHS[this.widthIndex]!;
    let key = Math.floor(atMs / width);
    // The bucket of the previous record, most of the time: no span check, no map lookup.
    if (key === this.lastKey && this.last) {
      this.count(this.last, outcome, errorBus, dlq);
      return;
    }
    while (Math.max(this.maxKey, key) - Math.min(this.minKey, key) + 1 > this.maxBuckets && this.widthIndex < WIDTHS.length - 1) {
      this.widen();
      width = WIDTHS[this.widthIndex]!;
      key = Math.floor(atMs / width);
    }
    let counts = this.buckets.get(key);
    if (!counts) {
      counts = emptyCounts();
      this.buckets.set(key, counts);
      if (key < this.minKey) this.minKey = key;
      if (key > this.maxKey) this.maxKey = key;
    }
    this.lastKey = key;
    this.last = counts;
    this.count(counts, outcome, errorBus, dlq);
  }

  private count(counts: Counts, outcome: BucketOutcome, errorBus: boolean, dlq: boolean): void {
    counts.samples++;
    counts[outcome]++;
    if (errorBus) counts.errorBus++;
    if (dlq) counts.dlq++;
  }

  private widen(): void {
    const oldWidth = WIDTHS[this.widthIndex]!;
    this.widthIndex++;
    const width = WIDTHS[this.widthIndex]!;
    const merged = new Map<number, Counts>();
    for (const [oldKey, c] of this.buckets) {
      const key = Math.floor((oldKey * oldWidth) / width);
      const into = merged.get(key);
      if (!into) merged.set(key, { ...c });
      else addCounts(into, c);
    }
    this.buckets = merged;
    this.last = undefined;
    this.minKey = Infinity;
    this.maxKey = -Infinity;
    for (const key of merged.keys()) {
      if (key < this.minKey) this.minKey = key;
      if (key > this.maxKey) this.maxKey = key;
    }
  }

  /** Every bucket from the first to the last record, empty ones included (a gap is information). */
  result(): Timeline {
    const width = WIDTHS[this.widthIndex]!;
    const buckets: TimeBucket[] = [];
    if (this.buckets.size > 0) {
      for (let key = this.minKey; key <= this.maxKey; key++) {
        const { samples, match, mismatch, missing, errors } = this.buckets.get(key) ?? emptyCounts();
        const compared = match + mismatch;
        buckets.push({ start: new Date(key * width).toISOString(), samples, match, mismatch, missing, errors, parity: compared > 0 ? match / compared : null });
      }
    }
    return { bucketMs: width, buckets };
  }

  /** Every bucket from the first to the last record with all its counts, oldest first. */
  counts(): Array<{ startMs: number; counts: Counts }> {
    const width = WIDTHS[this.widthIndex]!;
    const out: Array<{ startMs: number; counts: Counts }> = [];
    if (this.buckets.size > 0) for (let key = this.minKey; key <= this.maxKey; key++) out.push({ startMs: key * width, counts: this.buckets.get(key) ?? emptyCounts() });
    return out;
  }
}
