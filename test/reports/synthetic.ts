import type { ParityOutcome, ParityRecord } from '../../src/parity/types.js';

export interface SyntheticFlow {
  flow: string;
  samples: number;
  /** Exact shares of the samples (floor(samples × rate) records each), spread evenly over the stream. */
  mismatchRate?: number;
  missingBusRate?: number;
  dlqRate?: number;
  startMs?: number;
  stepMs?: number;
  /** Latencies derived from the index so percentiles are known: direct = base + i % 100. */
  directBaseMs?: number;
  busBaseMs?: number;
  lagBaseMs?: number;
  eventBytes?: number;
  method?: string;
}

/** True for exactly floor(n × rate) indices of 0..n-1, evenly spread. */
function hit(i: number, rate: number): boolean {
  return Math.floor((i + 1) * rate) > Math.floor(i * rate);
}

/**
 * A parity stream with known truth: counts per outcome are exact, latencies follow a known pattern,
 * mismatches differ in `/body/price` (and every third also in `/body/items/<i>/qty`).
 */
export function* syntheticRecords(spec: SyntheticFlow): Generator<ParityRecord> {
  const start = spec.startMs ?? Date.parse('2025-03-01T10:00:00Z');
  const step = spec.stepMs ?? 100;
  for (let i = 0; i < spec.samples; i++) {
    let outcome: ParityOutcome = 'match';
    if (spec.mismatchRate && hit(i, spec.mismatchRate)) outcome = 'mismatch';
    else if (spec.missingBusRate && hit(i, spec.missingBusRate)) outcome = 'missing_bus';
    else if (spec.dlqRate && hit(i, spec.dlqRate)) outcome = 'error_bus';
    const record: ParityRecord = {
      v: 1,
      flow: spec.flow,
      correlationId: `${spec.flow}-${i}`,
      outcome,
      at: new Date(start + i * step).toISOString(),
      mode: 'shadow',
      diffs: [],
      noise: ['/headers/date'],
      directStatus: 200,
      directLatencyMs: (spec.directBaseMs ?? 10) + (i % 100),
    };
    if (outcome !== 'missing_bus' && outcome !== 'error_bus') {
      record.busStatus = 200;
      record.busLatencyMs = (spec.busBaseMs ?? 40) + (i % 100);
      record.busLagMs = (spec.lagBaseMs ?? 2) + (i % 10) / 10;
    }
    if (outcome === 'error_bus') {
      record.dlq = true;
      record.errorCode = 'CUTOVER_HANDLER_FAILED';
    }
    if (spec.eventBytes !== undefined) record.eventBytes = spec.eventBytes;
    if (outcome === 'mismatch') {
      record.diffs = [{ path: '/body/price', kind: 'changed', direct: 10, bus: 11 }];
      if (i % 3 === 0) record.diffs.push({ path: `/body/items/${i % 5}/qty`, kind: 'changed', direct: 1, bus: 2 });
      record.request = { method: spec.method ?? 'POST', target: `/stock/reserve?n=${i}`, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: 'A-1', qty: 1 }) };
    }
    yield record;
  }
}

/** Several flows interleaved round-robin, as the parity topic would carry them. */
export function* interleave(...streams: Array<Iterable<ParityRecord>>): Generator<ParityRecord> {
  let live = streams.map((s) => s[Symbol.iterator]());
  while (live.length > 0) {
    const next: Array<Iterator<ParityRecord>> = [];
    for (const it of live) {
      const r = it.next();
      if (!r.done) {
        yield r.value;
        next.push(it);
      }
    }
    live = next;
  }
}
