/** z for a two-sided 95% interval (the 97.5th percentile of the standard normal). */
export const Z95 = 1.959963984540054;

export interface Interval {
  lower: number;
  upper: number;
}

/**
 * Wilson score interval for a binomial proportion `successes / n`. Unlike the normal approximation it
 * stays inside [0, 1] and is honest at the extremes (0 or n successes), which is exactly where parity
 * lives. With `n = 0` it returns the uninformative [0, 1].
 */
export function wilson(successes: number, n: number, z: number = Z95): Interval {
  if (!(n > 0)) return { lower: 0, upper: 1 };
  if (successes < 0 || successes > n) throw new RangeError(`successes ${successes} outside 0..${n}`);
  const p = successes / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = p + z2 / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // Clamp: floating point can step a hair outside [0, 1] at the extremes.
  return {
    lower: Math.max(0, (centre - spread) / denominator),
    upper: Math.min(1, (centre + spread) / denominator),
  };
}

/**
 * The smallest n for which a proportion observed at rate `p` would have a Wilson lower bound of at least
 * `threshold`; `null` when no n will do (p itself is below the threshold). Used to tell operators how many
 * compared calls they still need.
 */
export function samplesNeeded(p: number, threshold: number, z: number = Z95): number | null {
  if (threshold <= 0) return 1;
  if (p < threshold || (p === threshold && p < 1)) return null;
  const ok = (n: number) => wilson(p * n, n, z).lower >= threshold;
  let hi = 1;
  while (!ok(hi)) {
    hi *= 2;
    if (hi > 1e15) return null;
  }
  let lo = Math.floor(hi / 2);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
