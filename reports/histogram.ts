import * as hdr from 'hdr-histogram-js';
import type { Percentiles } from './types.js';

/** Values above this are clamped: a day-long "latency" is a clock problem, and clamping bounds memory. */
const MAX_VALUE = 86_400_000_000;
/** HDR layout for 3 significant digits: 2,048 sub-buckets per bucket, each later bucket using its upper half. */
const SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10;
const SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE;
const HDR_OPTIONS = { bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3, useWebAssembly: false } as const;

/**
 * The HDR slot of a non-negative integer value, as hdr-histogram-js computes it for the layout above
 * (bucket: floor(log2 value) − 10, at least 0; sub-bucket: value / 2^bucket).
 */
function slotOf(value: number): number {
  const log2 = value < 2 ** 31 ? 31 - Math.clz32(value) : Math.floor(Math.log2(value));
  const bucket = Math.max(log2 - SUB_BUCKET_HALF_COUNT_MAGNITUDE, 0);
  const sub = Math.floor(value / 2 ** bucket);
  return (bucket + 1) * SUB_BUCKET_HALF_COUNT + sub - SUB_BUCKET_HALF_COUNT;
}

/** The lowest value of an HDR slot: recording it lands in that slot again. */
function lowestValueOf(slot: number): number {
  let bucket = Math.floor(slot / SUB_BUCKET_HALF_COUNT) - 1;
  let sub = (slot % SUB_BUCKET_HALF_COUNT) + SUB_BUCKET_HALF_COUNT;
  if (bucket < 0) {
    sub -= SUB_BUCKET_HALF_COUNT;
    bucket = 0;
  }
  return sub * 2 ** bucket;
}

/**
 * A fixed-memory histogram of non-negative values (HDR, 3 significant digits). Milliseconds are recorded
 * as microseconds so sub-millisecond lags keep their resolution.
 *
 * Recording runs once per value per parity record, so it only counts the value in its HDR slot (32-bit
 * counts in an array that grows to the highest slot seen, at most ~28,000 slots). The hdr-histogram-js
 * object that answers percentiles is filled from those counts when a summary is asked for, and stays
 * inside this module.
 */
export class ValueHistogram {
  private readonly scale: number;
  private counts = new Uint32Array(0);
  private n = 0;
  private max = 0;
  private total = 0;

  /** @param scale multiplier from the caller's unit to the recorded integer unit (1000 for ms → µs). */
  constructor(scale: number) {
    this.scale = scale;
  }

  /** Records one value; ignores values that are not finite non-negative numbers (returns false). */
  record(value: unknown): boolean {
    if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) return false;
    const rounded = Math.round(value * this.scale);
    const scaled = rounded > MAX_VALUE ? MAX_VALUE : rounded;
    const slot = slotOf(scaled);
    if (slot >= this.counts.length) this.grow(slot);
    this.counts[slot]!++;
    this.n++;
    if (scaled > this.max) this.max = scaled;
    this.total += value;
    return true;
  }

  get count(): number {
    return this.n;
  }

  /** p50/p95/p99/max/mean in the caller's unit, rounded to the recorded resolution; null when empty. */
  summary(): Percentiles | null {
    const count = this.n;
    if (count === 0) return null;
    const histogram = hdr.build(HDR_OPTIONS);
    for (let slot = 0; slot < this.counts.length; slot++) {
      const c = this.counts[slot]!;
      if (c > 0) histogram.recordValueWithCount(lowestValueOf(slot), c);
    }
    const at = (p: number) => histogram.getValueAtPercentile(p) / this.scale;
    return {
      count,
      p50: at(50),
      p95: at(95),
      p99: at(99),
      max: this.max / this.scale,
      mean: Math.round((this.total / count) * this.scale) / this.scale,
    };
  }

  private grow(slot: number): void {
    const grown = new Uint32Array(Math.max(slot + 1, Math.min(2 * this.counts.length, slotOf(MAX_VALUE) + 1), 2 * SUB_BUCKET_HALF_COUNT));
    grown.set(this.counts);
    this.counts = grown;
  }
}
