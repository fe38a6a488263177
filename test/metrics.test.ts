import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ResolvedCounter, ResolvedHistogram } from '../src/metrics.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The same observations into prom-client's Histogram and into ResolvedHistogram, each on its own registry. */
function both(observations: Array<[string, string, number]>): { ours: Registry; theirs: Registry; resolved: ResolvedHistogram<'flow' | 'mode'> } {
  const ours = new Registry();
  const theirs = new Registry();
  const config = { name: 'cutover_test_duration_seconds', help: 'Test latency, by flow and mode', labelNames: ['flow', 'mode'] as const, buckets: BUCKETS };
  const resolved = new ResolvedHistogram({ ...config, registers: [ours] });
  const reference = new Histogram({ ...config, labelNames: [...config.labelNames], registers: [theirs] });
  for (const [flow, mode, value] of observations) {
    resolved.series(flow, mode).observe(value);
    reference.labels(flow, mode).observe(value);
  }
  return { ours, theirs, resolved };
}

/** Seeded values across every bucket, on the bounds themselves, and above the last one. */
function observations(n: number): Array<[string, string, number]> {
  let seed = 7;
  const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const out: Array<[string, string, number]> = [];
  for (let i = 0; i < n; i++) {
    const flow = ['inventory.reserve', 'pricing.quote', 'a "quoted" \\ flow'][i % 3]!;
    const mode = i % 5 === 0 ? 'shadow' : 'direct';
    const value = i % 7 === 0 ? BUCKETS[i % BUCKETS.length]! : i % 11 === 0 ? 40 + random() : random() ** 4 * 12;
    out.push([flow, mode, value]);
  }
  return out;
}

describe('ResolvedHistogram', () => {
  it("writes the same text and JSON as prom-client's Histogram for the same observations", async () => {
    const { ours, theirs } = both(observations(5_000));
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('cutover_test_duration_seconds_bucket{le="+Inf",flow="pricing.quote",mode="direct"}');
    const strip = (metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) =>
      metrics.map((m) => ({ ...m, values: (m.values as Array<{ labels: object; value: number; metricName?: string }>).map(({ labels, value, metricName }) => ({ labels, value, metricName })) }));
    expect(strip(await ours.getMetricsAsJSON())).toEqual(strip(await theirs.getMetricsAsJSON()));
  });

  it('lists no series before an observer exists, and a series with zeros once one does', async () => {
    const { ours, theirs, resolved } = both([]);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    resolved.series('inventory.reserve', 'direct');
    expect(await ours.metrics()).toContain('cutover_test_duration_seconds_count{flow="inventory.reserve",mode="direct"} 0');
  });

  it('ignores values that are not finite and refuses a wrong number of label values', async () => {
    const { ours, resolved } = both([['f', 'direct', 0.002]]);
    const observer = resolved.series('f', 'direct');
    observer.observe(Number.NaN);
    observer.observe(Number.POSITIVE_INFINITY);
    const text = await ours.metrics();
    expect(text).toContain('cutover_test_duration_seconds_count{flow="f",mode="direct"} 1');
    expect(text).toContain('cutover_test_duration_seconds_sum{flow="f",mode="direct"} 0.002');
    expect(() => resolved.series('f')).toThrow(/expected 2 label values, got 1/);
  });

  it('zeroes on a registry reset, and observers handed out before go on counting', async () => {
    const { ours, resolved } = both([['f', 'direct', 0.002]]);
    const observer = resolved.series('f', 'direct');
    ours.resetMetrics();
    expect(await ours.metrics()).toContain('cutover_test_duration_seconds_count{flow="f",mode="direct"} 0');
    observer.observe(0.3);
    const text = await ours.metrics();
    expect(text).toContain('cutover_test_duration_seconds_bucket{le="0.25",flow="f",mode="direct"} 0');
    expect(text).toContain('cutover_test_duration_seconds_bucket{le="0.5",flow="f",mode="direct"} 1');
    expect(text).toContain('cutover_test_duration_seconds_count{flow="f",mode="direct"} 1');
  });
});

describe('ResolvedCounter', () => {
  it("writes the same text and JSON as prom-client's Counter for the same increments", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const config = { name: 'cutover_test_requests_total', help: 'Test requests, by flow, mode and status class', labelNames: ['flow', 'mode', 'status'] as const };
    const resolved = new ResolvedCounter({ ...config, registers: [ours] });
    const reference = new Counter({ ...config, labelNames: [...config.labelNames], registers: [theirs] });
    for (const [flow, mode, status, amount] of [
      ['inventory.reserve', 'shadow', '2xx', 1],
      ['inventory.reserve', 'shadow', '5xx', 1],
      ['pricing.quote', 'direct', '2xx', 3],
      ['inventory.reserve', 'shadow', '2xx', 0.5],
      ['a "quoted" \\ flow', 'bus', '4xx', 1],
    ] as const) {
      resolved.series(flow, mode, status).inc(amount);
      reference.labels(flow, mode, status).inc(amount);
    }
    resolved.series('f', 'direct', '2xx').inc(-1);
    resolved.series('f', 'direct', '2xx').inc(Number.NaN);
    reference.labels('f', 'direct', '2xx').inc(0);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('cutover_test_requests_total{flow="inventory.reserve",mode="shadow",status="2xx"} 1.5');
    expect(text).toContain('cutover_test_requests_total{flow="f",mode="direct",status="2xx"} 0');
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
    ours.resetMetrics();
    expect(await ours.metrics()).toContain('cutover_test_requests_total{flow="pricing.quote",mode="direct",status="2xx"} 0');
  });
});
