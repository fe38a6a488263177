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

/** ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: ~15 significant digits, enough for bounds). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  const y = x - 1;
  let sum = c[0]!;
  for (let i = 1; i < 9; i++) sum += c[i]! / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(sum);
}

function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/**
 * The prior of the parity confidence sequence: Beta(a, b). It decides only how fast the bound tightens
 * (not whether it is valid): most of its mass near 1 makes a flow with (almost) no mismatches reach a high
 * threshold with few calls, at the price of a slower bound for flows with many mismatches, which fail
 * their threshold anyway.
 */
export const PARITY_PRIOR = { a: 1, b: 0.05 } as const;

/**
 * An anytime-valid 1 − alpha confidence sequence for a proportion `successes / n` (a beta-binomial mixture
 * of likelihood ratios, bounded with Ville's inequality): with probability at least 1 − alpha the true
 * proportion stays inside it at every sample size at once. So it may be looked at after every call, as the
 * readiness gate and people polling a report do, without the repeated looks inflating the chance of a false
 * READY — which a fixed-n interval (Wilson) checked again and again does.
 *
 * The set { p : M_n(p) < 1/alpha } with M_n(p) = B(a + s, b + f) / B(a, b) / (p^s (1 − p)^f) is an
 * interval around s/n (ln M is convex in p and at most 0 at s/n); its ends are found by bisection.
 */
export function anytimeInterval(successes: number, n: number, alpha = 0.05, prior: { a: number; b: number } = PARITY_PRIOR): Interval {
  if (!(n > 0)) return { lower: 0, upper: 1 };
  if (successes < 0 || successes > n) throw new RangeError(`successes ${successes} outside 0..${n}`);
  const failures = n - successes;
  const mixture = logBeta(prior.a + successes, prior.b + failures) - logBeta(prior.a, prior.b);
  const limit = Math.log(1 / alpha);
  const outside = (p: number): boolean => mixture - (successes > 0 ? successes * Math.log(p) : 0) - (failures > 0 ? failures * Math.log1p(-p) : 0) >= limit;
  const centre = successes / n;
  // Below the centre ln M falls towards it, above it rises: bisect each side for the crossing.
  const crossing = (inside: number, out: number): number => {
    for (let i = 0; i < 100 && Math.abs(inside - out) > 1e-12; i++) {
      const mid = (inside + out) / 2;
      if (outside(mid)) out = mid;
      else inside = mid;
    }
    return out;
  };
  return { lower: successes === 0 ? 0 : crossing(centre, 0), upper: failures === 0 ? 1 : crossing(centre, 1) };
}

/** Lower end of {@link anytimeInterval}: the parity bound the readiness verdict uses. */
export function anytimeLowerBound(successes: number, n: number, alpha = 0.05, prior: { a: number; b: number } = PARITY_PRIOR): number {
  return anytimeInterval(successes, n, alpha, prior).lower;
}

/**
 * The smallest n for which a proportion observed at rate `p` would have an anytime-valid lower bound of at
 * least `threshold`; `null` when no n will do (p itself is below the threshold). Tells operators how many
 * compared calls they still need.
 */
export function samplesNeeded(p: number, threshold: number): number | null {
  if (threshold <= 0) return 1;
  if (p < threshold || (p === threshold && p < 1)) return null;
  const ok = (n: number) => anytimeLowerBound(Math.round(p * n), n) >= threshold;
  let hi = 1;
  while (!ok(hi)) {
    hi *= 2;
    if (hi > 1e12) return null;
  }
  let lo = Math.floor(hi / 2);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
