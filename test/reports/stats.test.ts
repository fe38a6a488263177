import { describe, expect, it } from 'vitest';
import { anytimeLowerBound, logGamma, samplesNeeded, wilson } from '../../reports/stats.js';

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
  it('says how many perfect matches an anytime-valid 99.9% lower bound takes', () => {
    expect(samplesNeeded(1, 0.999)).toBe(3428);
    expect(anytimeLowerBound(3428, 3428)).toBeGreaterThanOrEqual(0.999);
    expect(anytimeLowerBound(3427, 3427)).toBeLessThan(0.999);
  });

  it('is null when the observed rate is itself below the threshold', () => {
    expect(samplesNeeded(0.995, 0.999)).toBeNull();
  });
});

describe('logGamma', () => {
  it('matches ln((n-1)!) and ln Γ(1/2)', () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(101)).toBeCloseTo(363.73937555556347, 9);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
  });
});

describe('anytimeLowerBound', () => {
  it('is 0 without evidence, below the observed rate, and wider with more confidence', () => {
    expect(anytimeLowerBound(0, 0)).toBe(0);
    expect(anytimeLowerBound(0, 50)).toBe(0);
    for (const [s, n] of [[5, 10], [99, 100], [4950, 5000], [10_000, 10_000]] as const) {
      const bound = anytimeLowerBound(s, n);
      expect(bound).toBeGreaterThan(0);
      expect(bound).toBeLessThanOrEqual(s / n);
      expect(anytimeLowerBound(s, n, 0.01)).toBeLessThan(bound);
    }
    expect(() => anytimeLowerBound(11, 10)).toThrow(RangeError);
  });

  it('tightens as evidence grows at the same rate', () => {
    const bounds = [1000, 5000, 20_000, 100_000].map((n) => anytimeLowerBound(0.995 * n, n));
    for (let i = 1; i < bounds.length; i++) expect(bounds[i]!).toBeGreaterThan(bounds[i - 1]!);
    expect(bounds.at(-1)!).toBeGreaterThan(0.994);
  });

  it('holds at every look at once: seeded runs at the true rate rarely ever see the bound above it', () => {
    // 400 seeded runs of 5,000 calls at p = 0.98, looked at after every call. Ville's inequality bounds the
    // share of runs whose bound ever exceeds p by 5%; a Wilson bound checked the same way is shown beside it.
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const p = 0.98;
    let anytimeWrong = 0;
    let wilsonWrong = 0;
    for (let run = 0; run < 400; run++) {
      let s = 0;
      let a = false;
      let w = false;
      for (let n = 1; n <= 5000; n++) {
        if (random() < p) s++;
        if (n % 10 !== 0) continue;
        if (!a && anytimeLowerBound(s, n) > p) a = true;
        if (!w && wilson(s, n).lower > p) w = true;
      }
      if (a) anytimeWrong++;
      if (w) wilsonWrong++;
    }
    expect(anytimeWrong / 400).toBeLessThanOrEqual(0.05);
    expect(wilsonWrong).toBeGreaterThan(anytimeWrong);
  });
});
