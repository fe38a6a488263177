/**
 * How often repeated looks turn a not-quite-good-enough flow READY: `npm run bench:repeated-looks`.
 *
 * A seeded simulation (no timing, no broker): a flow whose true parity is just below the threshold sends
 * calls; the gate (or a person polling the report) looks after every LOOK_EVERY calls, from MIN_SAMPLES on,
 * up to CALLS. A run that is judged READY at any look is a false READY. The same runs are judged by the
 * 95% Wilson lower bound (a fixed-n interval, valid for one look) and by the anytime-valid lower bound of
 * reports/stats.ts (valid for every look at once), and the shares of runs ever judged READY are printed,
 * with a run at a parity clearly above the threshold for the price in samples.
 *
 * Env: BENCH_RUNS (2000), BENCH_SEED (1), BENCH_CALLS (20000), BENCH_LOOK_EVERY (100), BENCH_MIN_SAMPLES (500),
 * BENCH_THRESHOLD (0.99), BENCH_PARITY (0.9899).
 */
import { anytimeLowerBound, wilson } from '../reports/stats.js';
import { seededRandom } from '../examples/shop/random.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 2000);
const SEED = Number(process.env.BENCH_SEED ?? 1);
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const LOOK_EVERY = Number(process.env.BENCH_LOOK_EVERY ?? 100);
const MIN_SAMPLES = Number(process.env.BENCH_MIN_SAMPLES ?? 500);
const THRESHOLD = Number(process.env.BENCH_THRESHOLD ?? 0.99);
const PARITY = Number(process.env.BENCH_PARITY ?? 0.9899);


interface Outcome {
  /** Runs judged READY at some look. */
  ready: number;
  /** Calls at the first READY look, per run that got there. */
  firstReadyAt: number[];
}

function simulate(parity: number, seed: number): { wilson: Outcome; anytime: Outcome } {
  const random = seededRandom(seed);
  const out = { wilson: { ready: 0, firstReadyAt: [] as number[] }, anytime: { ready: 0, firstReadyAt: [] as number[] } };
  for (let run = 0; run < RUNS; run++) {
    let matches = 0;
    let wilsonAt = 0;
    let anytimeAt = 0;
    for (let n = 1; n <= CALLS; n++) {
      if (random() < parity) matches++;
      if (n % LOOK_EVERY !== 0 || n < MIN_SAMPLES) continue;
      if (!wilsonAt && wilson(matches, n).lower >= THRESHOLD) wilsonAt = n;
      if (!anytimeAt && anytimeLowerBound(matches, n) >= THRESHOLD) anytimeAt = n;
      if (wilsonAt && anytimeAt) break;
    }
    if (wilsonAt) (out.wilson.ready++, out.wilson.firstReadyAt.push(wilsonAt));
    if (anytimeAt) (out.anytime.ready++, out.anytime.firstReadyAt.push(anytimeAt));
  }
  return out;
}

function median(values: number[]): string {
  if (values.length === 0) return '–';
  const sorted = [...values].sort((a, b) => a - b);
  return String(sorted[Math.floor(sorted.length / 2)]);
}

const pct = (k: number): string => `${((k / RUNS) * 100).toFixed(1)}%`;
const below = simulate(PARITY, SEED);
const good = 1 - (1 - THRESHOLD) / 4;
const above = simulate(good, SEED + 1);

console.log(`repeated looks: ${RUNS} runs (seed ${SEED}), a look every ${LOOK_EVERY} calls from ${MIN_SAMPLES} to ${CALLS}, threshold ${THRESHOLD}`);
console.log('| true parity | bound | runs ever READY | median calls to first READY |');
console.log('|---|---|---|---|');
console.log(`| ${PARITY} (below) | Wilson 95% at every look | ${pct(below.wilson.ready)} | ${median(below.wilson.firstReadyAt)} |`);
console.log(`| ${PARITY} (below) | anytime-valid 95% | ${pct(below.anytime.ready)} | ${median(below.anytime.firstReadyAt)} |`);
console.log(`| ${good} (above) | Wilson 95% at every look | ${pct(above.wilson.ready)} | ${median(above.wilson.firstReadyAt)} |`);
console.log(`| ${good} (above) | anytime-valid 95% | ${pct(above.anytime.ready)} | ${median(above.anytime.firstReadyAt)} |`);
console.log(`false READY, anytime vs Wilson: ${below.wilson.ready ? (below.anytime.ready / below.wilson.ready).toFixed(3) : '–'}x`);
