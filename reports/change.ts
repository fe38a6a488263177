import { addCounts, emptyCounts, type Counts } from './timeline.js';

/**
 * Change points in a flow's parity: a regression or a fix of the bus side that no version number
 * announced (a config flag, a model swap behind the same build, a data change) must move the verdict too.
 *
 * The test: over the time buckets of the records, every split into "before" and "after" is scored with the
 * log-likelihood ratio of two parity rates (one per side) against one rate for all; the best split counts
 * as a change when its ratio reaches {@link CHANGE_MIN_LLR}. The search then repeats on the "after" side,
 * so the change found is the latest one. A ratio of 10 is a strict bar (a single split of a steady flow
 * reaches it with probability under 1e-5), so a steady flow is not cut up by chance, while a flow going
 * from matching everything to one mismatch in ten crosses it within a few dozen calls.
 */
export const CHANGE_MIN_LLR = 10;
/** Fewest compared calls on each side of a split: below that no side can show anything. */
export const CHANGE_MIN_SIDE = 10;

export interface Bucketed {
  startMs: number;
  counts: Counts;
}

export interface ChangeFound {
  /** Index of the first bucket after the change. */
  index: number;
  /** Log-likelihood ratio of the split. */
  llr: number;
  before: Counts;
  after: Counts;
}

function logLikelihood(match: number, mismatch: number): number {
  const n = match + mismatch;
  if (n === 0 || match === 0 || mismatch === 0) return 0;
  return match * Math.log(match / n) + mismatch * Math.log(mismatch / n);
}

/** The best split of `buckets[from..]` by parity, when it is a change; undefined when there is none. */
function bestSplit(buckets: readonly Bucketed[], from: number): ChangeFound | undefined {
  const total = emptyCounts();
  for (let i = from; i < buckets.length; i++) addCounts(total, buckets[i]!.counts);
  const all = logLikelihood(total.match, total.mismatch);
  const before = emptyCounts();
  let best: ChangeFound | undefined;
  for (let k = from + 1; k < buckets.length; k++) {
    addCounts(before, buckets[k - 1]!.counts);
    const bm = before.match;
    const bx = before.mismatch;
    const am = total.match - bm;
    const ax = total.mismatch - bx;
    if (bm + bx < CHANGE_MIN_SIDE || am + ax < CHANGE_MIN_SIDE) continue;
    const llr = logLikelihood(bm, bx) + logLikelihood(am, ax) - all;
    if (llr >= CHANGE_MIN_LLR && (!best || llr > best.llr)) {
      const after = { ...total };
      for (const key of Object.keys(after) as Array<keyof Counts>) after[key] -= before[key];
      best = { index: k, llr, before: { ...before }, after };
    }
  }
  return best;
}

/**
 * The latest change point in the buckets, or undefined. `before` counts everything before it (back to the
 * first record), `after` everything from it on: the evidence the verdict judges.
 */
export function latestChange(buckets: readonly Bucketed[]): ChangeFound | undefined {
  let found: ChangeFound | undefined;
  let from = 0;
  for (;;) {
    const next = bestSplit(buckets, from);
    if (!next) break;
    found = next;
    from = next.index;
  }
  if (!found) return undefined;
  const before = emptyCounts();
  for (let i = 0; i < found.index; i++) addCounts(before, buckets[i]!.counts);
  return { ...found, before };
}
