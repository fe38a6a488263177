import { describe, expect, it } from 'vitest';
import type { ParityRecord } from '../../src/parity/types.js';
import { adminReport, buildReport, type ReportFlow } from '../../reports/report.js';
import { renderText } from '../../reports/render-text.js';
import { anytimeInterval, wilson } from '../../reports/stats.js';
import type { FlowReport } from '../../reports/types.js';
import { interleave, syntheticRecords } from './synthetic.js';

async function* asAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield item;
}

async function flowReport(records: Iterable<ParityRecord>, flow: ReportFlow = { name: 'inventory.reserve', mode: 'shadow', method: 'POST' }, readiness = {}): Promise<FlowReport> {
  const report = await buildReport(asAsync(records), { flows: [flow], readiness: { ...defaults, ...readiness } });
  expect(report.flows).toHaveLength(1);
  return report.flows[0]!;
}

const defaults = { minSamples: 1000, minParityLowerBound: 0.999, maxMissingRate: 0.001, maxDlqRate: 0.001, maxBusErrorRate: 0.001, maxBusP99Ms: null, largeEventBytes: 65536 };
const flowName = 'inventory.reserve';

describe('verdicts on synthetic streams with known truth', () => {
  it('identical paths with enough samples → READY with no reasons', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000 }));
    expect(f.verdict.status).toBe('READY');
    expect(f.verdict.reasons).toEqual([]);
    expect(f.samples).toBe(5000);
    expect(f.parity).toEqual({ compared: 5000, value: 1, lowerBound: anytimeInterval(5000, 5000).lower, upperBound: 1, wilsonLowerBound: wilson(5000, 5000).lower, wilsonUpperBound: 1 });
    expect(f.change).toBeNull();
  });

  it('a 0.5% mismatch rate → NOT_READY naming parity with its measured value and threshold', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000, mismatchRate: 0.005 }));
    expect(f.outcomes.mismatch).toBe(25);
    expect(f.verdict.status).toBe('NOT_READY');
    expect(f.verdict.reasons).toHaveLength(1);
    const reason = f.verdict.reasons[0]!;
    expect(reason).toMatchObject({ criterion: 'minParityLowerBound', status: 'fail', threshold: 0.999, conclusive: true });
    expect(reason.measured).toBeCloseTo(anytimeInterval(4975, 5000).lower, 12);
    expect(reason.measured).toBeCloseTo(0.99032, 5);
    expect(reason.message).toContain('99.5%');
  });

  it('50 samples → INSUFFICIENT_DATA naming the sample count', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 50 }));
    expect(f.verdict.status).toBe('INSUFFICIENT_DATA');
    expect(f.verdict.reasons.find((r) => r.criterion === 'minSamples')).toMatchObject({ status: 'insufficient', measured: 50, threshold: 1000 });
    expect(f.verdict.reasons.every((r) => r.status === 'insufficient')).toBe(true);
    expect(f.verdict.advice.map((a) => a.code)).toContain('collect-more');
  });

  it('a flow with missing replies → NOT_READY naming the missing rate', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000, missingBusRate: 0.01 }));
    expect(f.outcomes.missing_bus).toBe(50);
    expect(f.missing).toEqual({ count: 50, rate: 0.01 });
    expect(f.verdict.status).toBe('NOT_READY');
    // The 4,950 compared calls all match, so parity itself passes: missing replies are the only reason.
    expect(f.verdict.reasons).toEqual([expect.objectContaining({ criterion: 'maxMissingRate', status: 'fail', measured: 0.01, threshold: 0.001, conclusive: true })]);
  });

  it('enough samples but a lower bound short of the threshold is INSUFFICIENT_DATA, not READY or NOT_READY', async () => {
    // 1,000 perfect matches: parity 100% but the anytime 95% lower bound is 99.664% < 99.9%; 3,428 are needed.
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 1000 }));
    expect(f.verdict.status).toBe('INSUFFICIENT_DATA');
    expect(f.verdict.reasons).toEqual([expect.objectContaining({ criterion: 'minParityLowerBound', status: 'insufficient', threshold: 0.999 })]);
    expect(f.verdict.reasons[0]!.message).toContain('3,428');
  });

  it('NOT_READY wins below minSamples when the failure is conclusive at 95%', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 50, missingBusRate: 0.2 }));
    expect(f.verdict.status).toBe('NOT_READY');
    const names = f.verdict.reasons.map((r) => `${r.criterion}:${r.status}`);
    expect(names).toEqual(expect.arrayContaining(['minSamples:insufficient', 'maxMissingRate:fail']));
  });

  it('a failure that is not conclusive on too few samples stays INSUFFICIENT_DATA', async () => {
    // 47 of 50 match (94%) against a 95% threshold: the interval 83.8%–97.9% straddles it.
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 50, mismatchRate: 0.06 }), undefined, { minParityLowerBound: 0.95 });
    expect(f.verdict.status).toBe('INSUFFICIENT_DATA');
    expect(f.verdict.reasons.find((r) => r.criterion === 'minParityLowerBound')).toMatchObject({ status: 'fail', conclusive: false });
  });

  it('lists every failing criterion, DLQ and bus errors included', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000, mismatchRate: 0.01, missingBusRate: 0.007, dlqRate: 0.003 }));
    expect(f.verdict.status).toBe('NOT_READY');
    expect(f.verdict.reasons.map((r) => r.criterion).sort()).toEqual(['maxBusErrorRate', 'maxDlqRate', 'maxMissingRate', 'minParityLowerBound']);
    expect(f.dlq.count).toBe(f.outcomes.error_bus);
    expect(f.errorCodes).toEqual([{ code: 'CUTOVER_HANDLER_FAILED', count: f.outcomes.error_bus }]);
    expect(f.verdict.advice.map((a) => a.code)).toContain('inspect-dlq');
  });

  it('gates bus p99 when maxBusP99Ms is set, per flow', async () => {
    const records = () => syntheticRecords({ flow: flowName, samples: 5000, busBaseMs: 400 });
    const gated = await flowReport(records(), { name: flowName, mode: 'shadow', readiness: { maxBusP99Ms: 250 } });
    expect(gated.verdict.status).toBe('NOT_READY');
    expect(gated.verdict.reasons).toEqual([expect.objectContaining({ criterion: 'maxBusP99Ms', threshold: 250 })]);
    expect(gated.verdict.reasons[0]!.measured).toBeGreaterThan(490);
    const ungated = await flowReport(records(), { name: flowName, mode: 'shadow', readiness: { maxBusP99Ms: null } }, { maxBusP99Ms: 250 });
    expect(ungated.verdict.status).toBe('READY');
  });

  it('an empty flow is INSUFFICIENT_DATA', async () => {
    const f = await flowReport([]);
    expect(f.verdict.status).toBe('INSUFFICIENT_DATA');
    expect(f.samples).toBe(0);
    expect(f.parity.value).toBeNull();
    expect(f.timeline.buckets).toEqual([]);
  });
});

describe('aggregation', () => {
  it('computes latency percentiles from HDR histograms', async () => {
    // direct = 10 + i % 100 over 5,000 calls: uniform on 10..109 ms.
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000 }));
    expect(f.latency.direct!.count).toBe(5000);
    expect(f.latency.direct!.p50).toBeCloseTo(59, 0);
    expect(f.latency.direct!.p99).toBeCloseTo(108, 0);
    expect(f.latency.direct!.max).toBeCloseTo(109, 0);
    expect(f.latency.direct!.mean).toBeCloseTo(59.5, 6);
    expect(f.latency.bus!.p95).toBeCloseTo(134, 0);
    // Sub-millisecond lags keep their resolution (recorded in µs): 2.0..2.9 ms.
    expect(f.latency.busLag!.p50).toBeCloseTo(2.4, 2);
  });

  it('groups differing fields across array indices, keeps three recent examples with a curl each', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000, mismatchRate: 0.01 }));
    expect(f.topDiffs.map((d) => d.field)).toEqual(['/body/price', '/body/items/*/qty']);
    const price = f.topDiffs[0]!;
    expect(price.count).toBe(50);
    expect(price.kinds).toEqual({ changed: 50 });
    expect(price.examples).toHaveLength(3);
    expect(price.examples[2]!.correlationId).toBe(`${flowName}-4999`);
    expect(price.examples[0]!.curl).toMatch(/^curl -sS -g -X POST 'http:\/\/127\.0\.0\.1:15000\/stock\/reserve\?n=\d+' -H 'content-type: application\/json' --data-raw /);
    expect(f.topDiffs[1]!.examples[0]!.path).toMatch(/^\/body\/items\/\d\/qty$/);
    expect(f.noise).toEqual([{ field: '/headers/date', count: 5000 }]);
  });

  it('bounds the number of itemised fields and counts the rest', async () => {
    const records: ParityRecord[] = Array.from({ length: 50 }, (_, i) => ({
      v: 1,
      flow: flowName,
      correlationId: `c${i}`,
      outcome: 'mismatch',
      at: new Date(Date.UTC(2025, 0, 1) + i).toISOString(),
      mode: 'shadow',
      diffs: [{ path: `/body/f${i}`, kind: 'changed' }],
    }));
    const report = await buildReport(records, { flows: [{ name: flowName, mode: 'shadow' }], limits: { maxDiffFields: 20, topFields: 5 } });
    const f = report.flows[0]!;
    expect(f.topDiffs).toHaveLength(5);
    expect(f.untrackedDiffFields).toBe(30);
  });

  it('buckets time adaptively: at most 120 buckets that add up to every sample', async () => {
    // 20,000 calls, one per 9 s: 50 hours, so 30-minute buckets (100 of them).
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 20_000, stepMs: 9000, mismatchRate: 0.01 }));
    const { bucketMs, buckets } = f.timeline;
    expect(buckets.length).toBeLessThanOrEqual(120);
    expect(buckets.length).toBeGreaterThan(40);
    expect(bucketMs).toBe(1_800_000);
    expect(buckets.reduce((n, b) => n + b.samples, 0)).toBe(20_000);
    expect(buckets.reduce((n, b) => n + b.mismatch, 0)).toBe(200);
    for (const b of buckets) if (b.match + b.mismatch > 0) expect(b.parity).toBeCloseTo(b.match / (b.match + b.mismatch), 12);
  });

  it('skips records before --since, of other flows, of a newer version and malformed ones, counting each', async () => {
    const good = [...syntheticRecords({ flow: flowName, samples: 100, startMs: Date.parse('2025-03-01T10:00:00Z'), stepMs: 60_000 })];
    const other = [...syntheticRecords({ flow: 'pricing.quote', samples: 7 })];
    const junk: unknown[] = [null, 42, { v: 1, flow: flowName }, { ...good[0], outcome: 'weird' }, { ...good[0], at: 'yesterday' }, { ...good[0], v: 2 }, { ...good[0], v: 3 }];
    const report = await buildReport(asAsync([...interleave(good, other), ...junk] as ParityRecord[]), {
      flows: [{ name: flowName, mode: 'shadow' }],
      since: new Date('2025-03-01T10:30:00Z'),
    });
    expect(report.input).toEqual({ read: 114, used: 70, beforeSince: 30, otherFlows: 7, unsupportedVersion: 2, invalid: 5 });
    expect(report.flows[0]!.samples).toBe(70);
    expect(report.since).toBe('2025-03-01T10:30:00.000Z');
  });

  it('reports every flow in the stream when no flow list is given', async () => {
    const report = await buildReport(interleave(syntheticRecords({ flow: 'b.flow', samples: 10 }), syntheticRecords({ flow: 'a.flow', samples: 5 })));
    expect(report.flows.map((f) => [f.flow, f.mode, f.samples])).toEqual([
      ['a.flow', 'unknown', 5],
      ['b.flow', 'unknown', 10],
    ]);
  });

  it('summarises the worst verdict over flows', async () => {
    const flows: ReportFlow[] = [
      { name: 'ok', mode: 'shadow' },
      { name: 'thin', mode: 'shadow' },
      { name: 'bad', mode: 'shadow' },
    ];
    const records = interleave(syntheticRecords({ flow: 'ok', samples: 5000 }), syntheticRecords({ flow: 'thin', samples: 10 }), syntheticRecords({ flow: 'bad', samples: 5000, mismatchRate: 0.05 }));
    const report = await buildReport(records, { flows });
    expect(report.summary).toEqual({ READY: 1, NOT_READY: 1, INSUFFICIENT_DATA: 1 });
    expect(report.verdict).toBe('NOT_READY');
    const noBad = await buildReport(interleave(syntheticRecords({ flow: 'ok', samples: 5000 }), syntheticRecords({ flow: 'thin', samples: 10 })), { flows: flows.slice(0, 2) });
    expect(noBad.verdict).toBe('INSUFFICIENT_DATA');
  });
});

describe('advice', () => {
  it('advises keeping a read flow on REST, with the latencies that show it', async () => {
    const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000 }), { name: flowName, mode: 'shadow', method: 'GET' });
    const advice = f.verdict.advice.find((a) => a.code === 'keep-on-rest');
    expect(advice?.message).toMatch(/GET .*better kept on REST.*direct 10\d(\.\d+)? ms, bus end to end 13\d(\.\d+)? ms/);
  });

  it('advises slimming large events and not small ones', async () => {
    const large = await flowReport(syntheticRecords({ flow: flowName, samples: 100, eventBytes: 300_000 }));
    expect(large.verdict.advice.find((a) => a.code === 'slim-events')?.message).toMatch(/p95 29\d(\.\d)? KiB/);
    expect(large.eventBytes!.p95).toBeCloseTo(300_000, -3);
    const small = await flowReport(syntheticRecords({ flow: flowName, samples: 100, eventBytes: 2_000 }));
    expect(small.verdict.advice.map((a) => a.code)).not.toContain('slim-events');
  });
});

describe('adminReport', () => {
  it('builds once and returns the JSON and HTML bodies of GET /report and /report.html', async () => {
    const { report, json, html } = await adminReport(syntheticRecords({ flow: flowName, samples: 5000 }), { flows: [{ name: flowName, mode: 'shadow' }] });
    expect(JSON.parse(json)).toEqual(report);
    expect(report.verdict).toBe('READY');
    expect(html).toMatch(/^<!doctype html>[\s\S]*inventory\.reserve[\s\S]*<\/html>\n$/);
  });
});

describe('verdicts after a change the versions did not announce', () => {
  const start = Date.parse('2025-03-01T10:00:00Z');
  const good = (samples: number) => syntheticRecords({ flow: flowName, samples, stepMs: 20, startMs: start });
  const after = (samples: number, mismatchRate: number) =>
    [...syntheticRecords({ flow: flowName, samples, mismatchRate, stepMs: 20, startMs: start + 3000 * 20 })].map((r) => ({ ...r, correlationId: `later-${r.correlationId}` }));
  const readiness = { minSamples: 500, minParityLowerBound: 0.99 };

  it('a READY history does not hide a regression: one call in ten differing turns the flow NOT_READY within 150 calls', async () => {
    expect((await flowReport(good(3000), undefined, readiness)).verdict.status).toBe('READY');
    const f = await flowReport([...good(3000), ...after(150, 0.1)], undefined, readiness);
    expect(f.change).not.toBeNull();
    expect(f.change!.after.parity.compared).toBeLessThanOrEqual(200);
    expect(f.change!.after.parity.value!).toBeLessThan(0.95);
    expect(f.verdict.status).toBe('NOT_READY');
    expect(f.verdict.reasons.find((r) => r.criterion === 'minParityLowerBound')!.message).toMatch(/^since the change at 2025-03-01T10:0\d:\d\d/);
    // All-time parity alone would have stayed above the threshold's Wilson bound: the change is what moved it.
    expect(f.parity.value!).toBeGreaterThan(0.99);
  });

  it('a fixed old bug stops sinking the flow: judged on the records since the fix', async () => {
    const records = [...syntheticRecords({ flow: flowName, samples: 1000, mismatchRate: 0.1, stepMs: 20, startMs: start }), ...after(2000, 0)];
    const f = await flowReport(records, undefined, readiness);
    expect(f.change).not.toBeNull();
    expect(f.change!.before.parity.value!).toBeLessThan(0.95);
    expect(f.change!.after.parity.value).toBe(1);
    expect(f.verdict.status).toBe('READY');
  });

  it('a steady flow with random mismatches is rarely cut: no change point in 40 seeded runs', async () => {
    let seed = 11;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    let changes = 0;
    for (let run = 0; run < 40; run++) {
      const records = [...good(3000)].map((r) => (random() < 0.02 ? { ...r, outcome: 'mismatch' as const } : r));
      if ((await flowReport(records, undefined, readiness)).change) changes++;
    }
    expect(changes).toBe(0);
  });

  it('a steady flow has no change point', async () => {
    for (const rate of [0, 0.001, 0.01, 0.05]) {
      const f = await flowReport(syntheticRecords({ flow: flowName, samples: 5000, mismatchRate: rate, stepMs: 20, startMs: start }), undefined, readiness);
      expect(f.change).toBeNull();
    }
  });
});

describe('verdicts per version pair', () => {
  const start = Date.parse('2025-03-01T10:00:00Z');
  const readiness = { minSamples: 500, minParityLowerBound: 0.99 };
  const stamped = (samples: number, busVersion: string, offsetMs: number, mismatchRate = 0) =>
    [...syntheticRecords({ flow: flowName, samples, mismatchRate, stepMs: 20, startMs: start + offsetMs })].map((r) => ({ ...r, correlationId: `${busVersion}-${r.correlationId}`, directVersion: '7.0', busVersion }));

  it('a new shadow version after a READY history is judged on its own records, the old one shown', async () => {
    const f = await flowReport([...stamped(12_000, '1.4.1', 0), ...stamped(37, '1.4.2', 12_000 * 20)], undefined, readiness);
    expect(f.samples).toBe(37);
    expect(f.verdict.status).toBe('INSUFFICIENT_DATA');
    expect(f.versions.map((v) => [v.direct, v.bus, v.current, v.samples, v.verdict])).toEqual([
      ['7.0', '1.4.2', true, 37, 'INSUFFICIENT_DATA'],
      ['7.0', '1.4.1', false, 12_000, 'READY'],
    ]);
    const text = renderText(await buildReport(asAsync([...stamped(12_000, '1.4.1', 0), ...stamped(37, '1.4.2', 12_000 * 20)]), { flows: [{ name: flowName, mode: 'shadow', method: 'POST' }], readiness: { ...defaults, ...readiness } }), { colour: false });
    expect(text).toMatch(/versions\s+now: direct 7\.0 · bus 1\.4\.2, since 2025-03-01T10:04:00\.000Z: 37 samples, parity 100%, INSUFFICIENT_DATA \(judged\)/);
    expect(text).toMatch(/before: direct 7\.0 · bus 1\.4\.1, .*: 12,000 samples, parity 100%, READY \(shown, not counted\)/);
  });

  it('a bad old version does not sink a good new one, and records without versions are a pair of their own', async () => {
    const f = await flowReport([...stamped(2000, '1.0', 0, 0.1), ...stamped(600, '1.1', 2000 * 20)], undefined, readiness);
    expect(f.verdict.status).toBe('READY');
    expect(f.versions.map((v) => [v.bus, v.verdict])).toEqual([['1.1', 'READY'], ['1.0', 'NOT_READY']]);
    const plain = await flowReport(good(600), undefined, readiness);
    expect(plain.versions).toEqual([expect.objectContaining({ direct: null, bus: null, current: true, samples: 600 })]);
  });

  const good = (samples: number) => syntheticRecords({ flow: flowName, samples, stepMs: 20, startMs: start });
});
