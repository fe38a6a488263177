import * as hdr from 'hdr-histogram-js';
import type { Percentiles } from './types.js';

/** Values above this are clamped: a day-long "latency" is a clock problem, and clamping bounds memory. */
const MAX_VALUE = 86_400_000_000;

/**
 * A fixed-memory histogram of non-negative values (HDR, 3 significant digits). The hdr-histogram-js
 * object stays inside this module. Milliseconds are recorded as microseconds so sub-millisecond lags keep
 * their resolution.
 */
export class ValueHistogram {
  private readonly histogram: hdr.Histogram;
  private readonly scale: number;
  private total = 0;

  /** @param scale multiplier from the caller's unit to the recorded integer unit (1000 for ms → µs). */
  constructor(scale: number) {
    this.scale = scale;
    // The pure JS build: WASM needs async init and buys nothing at this volume.
    this.histogram = hdr.build({ bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3, useWebAssembly: false });
  }

  /** Records one value; ignores values that are not finite non-negative numbers (returns false). */
  record(value: unknown): boolean {
    if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) return false;
    const scaled = Math.round(value * this.scale);
    this.histogram.recordValue(scaled > MAX_VALUE ? MAX_VALUE : scaled);
    this.total += value;
    return true;
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /** p50/p95/p99/max/mean in the caller's unit, rounded to the recorded resolution; null when empty. */
  summary(): Percentiles | null {
    const count = this.histogram.totalCount;
    if (count === 0) return null;
    const at = (p: number) => this.histogram.getValueAtPercentile(p) / this.scale;
    return {
      count,
      p50: at(50),
      p95: at(95),
      p99: at(99),
      max: this.histogram.maxValue / this.scale,
      mean: Math.round((this.total / count) * this.scale) / this.scale,
    };
  }
}
