import { describe, expect, it } from 'vitest';
import { samplesNeeded, wilson } from '../../reports/stats.js';

describe('wilson', () => {
  // Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
  // (score interval without continuity correction), plus textbook values at the extremes.
  const known: Array<[number, number, number, number]> = [
    [81, 263, 0.2553, 0.3662],
    [15, 148, 0.0624, 0.1605],
    [0, 20, 0, 0.1611],
    [1, 29, 0.0061, 0.1718],
    [0, 10, 0, 0.2775],
    [5, 10, 0.2366, 0.7634],
    [10, 10, 0.7225, 1],
  ];
  it.each(known)('%i of %i → [%f, %f]', (x, n, lower, upper) => {
    const w = wilson(x, n);
    expect(w.lower).toBeCloseTo(lower, 4);
    expect(w.upper).toBeCloseTo(upper, 4);
  });

  it('gives n / (n + z²) as the lower bound when every call matched', () => {
    expect(wilson(1000, 1000).lower).toBeCloseTo(1000 / (1000 + 1.959963984540054 ** 2), 12);
  });

  it('is uninformative with no data and rejects impossible counts', () => {
    expect(wilson(0, 0)).toEqual({ lower: 0, upper: 1 });
    expect(() => wilson(3, 2)).toThrow(RangeError);
  });
});

describe('samplesNeeded', () => {
  it('says how many perfect matches a 99.9% lower bound takes', () => {
    // n / (n + z²) ≥ 0.999 ⇔ n ≥ 999 z² = 3837.6
    expect(samplesNeeded(1, 0.999)).toBe(3838);
    expect(wilson(3838, 3838).lower).toBeGreaterThanOrEqual(0.999);
    expect(wilson(3837, 3837).lower).toBeLessThan(0.999);
  });

  it('is null when the observed rate is itself below the threshold', () => {
    expect(samplesNeeded(0.995, 0.999)).toBeNull();
  });
});
