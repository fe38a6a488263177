import { PARITY_OUTCOMES, type CallSample, type FieldDiff, type ParityOutcome, type ParityRecord } from '../src/parity/types.js';
import { buildCurl } from './curl.js';
import { ValueHistogram } from './histogram.js';
import { latestChange } from './change.js';
import { anytimeInterval, wilson } from './stats.js';
import { TimelineCounter, type BucketOutcome, type Counts } from './timeline.js';
import { SagaAggregate } from './saga.js';
import type { ChangePoint, DiffExample, DiffField, Drift, FlowReport, NoiseField, Parity, RateStat, Segment } from './types.js';

/** Bounds that keep a flow's aggregate small whatever the stream holds. */
export interface AggregateLimits {
  /** Distinct differing fields tracked per flow; more are counted as untracked. */
  maxDiffFields: number;
  /** Distinct noise fields tracked per flow. */
  maxNoiseFields: number;
  /** Fields listed in the report, most frequent first. */
  topFields: number;
  /** Example diffs kept per field. */
  examplesPerField: number;
  /** Timeline buckets per flow. */
  maxBuckets: number;
}

export const DEFAULT_LIMITS: AggregateLimits = { maxDiffFields: 500, maxNoiseFields: 200, topFields: 10, examplesPerField: 3, maxBuckets: 120 };

const DIFF_KINDS = new Set<FieldDiff['kind']>(['changed', 'missing', 'extra', 'type']);
const OUTCOMES = new Set<string>(PARITY_OUTCOMES);
const MAX_MODES = 20;
const BUCKET_OF: Record<ParityOutcome, BucketOutcome> = { match: 'match', mismatch: 'mismatch', missing_bus: 'missing', missing_direct: 'missing', error_bus: 'errors', error_direct: 'errors' };
const MAX_ERROR_CODES = 100;

export const INVALID = -1;
export const UNSUPPORTED_VERSION = -2;

/**
 * Checks that a value from the wire is a parity record this reader understands and returns its decision
 * time (epoch ms), or {@link INVALID} / {@link UNSUPPORTED_VERSION}. One pass, one Date.parse: this runs
 * for every record.
 */
export function recordTime(value: unknown): number {
  if (typeof value !== 'object' || value === null) return INVALID;
  const r = value as Partial<ParityRecord> & { v?: unknown };
  if (r.v !== 1) return typeof r.v === 'number' && r.v > 1 ? UNSUPPORTED_VERSION : INVALID;
  if (typeof r.flow !== 'string' || r.flow === '' || typeof r.outcome !== 'string' || !OUTCOMES.has(r.outcome)) return INVALID;
  if (r.diffs !== undefined && !Array.isArray(r.diffs)) return INVALID;
  if (typeof r.at !== 'string') return INVALID;
  const at = isoTime(r.at);
  return at >= 0 ? at : INVALID;
}

/** The hour last parsed by {@link isoTime}: `YYYY-MM-DDTHH` and its epoch ms. */
let hourText = '';
let hourMs = NaN;

/**
 * `Date.parse` for the times records carry, faster on their form: `YYYY-MM-DDTHH:MM:SS.sssZ`, as
 * `toISOString` writes them, is read as the (cached) hour plus minutes, seconds and milliseconds. Any other
 * text, and any field out of range, goes to `Date.parse` itself, so the result is always what it returns.
 */
export function isoTime(text: string): number {
  if (
    text.length !== 24 ||
    text.charCodeAt(4) !== 0x2d /* - */ ||
    text.charCodeAt(7) !== 0x2d ||
    text.charCodeAt(10) !== 0x54 /* T */ ||
    text.charCodeAt(13) !== 0x3a /* : */ ||
    text.charCodeAt(16) !== 0x3a ||
    text.charCodeAt(19) !== 0x2e /* . */ ||
    text.charCodeAt(23) !== 0x5a /* Z */
  ) {
    return Date.parse(text);
  }
  const minutes = twoDigits(text, 14);
  const seconds = twoDigits(text, 17);
  const ms = twoDigits(text, 20) * 10 + digit(text, 22);
  if (!(minutes <= 59 && seconds <= 59 && ms >= 0)) return Date.parse(text);
  if (hourText === '' || !text.startsWith(hourText)) {
    const hour = text.slice(0, 13);
    // Hour 24 is allowed by Date.parse only as 24:00:00.000: leave every such text to it.
    const ms0 = hour.endsWith('T24') ? NaN : Date.parse(`${hour}:00:00.000Z`);
    if (!(ms0 >= -8.64e15)) return Date.parse(text);
    hourText = hour;
    hourMs = ms0;
  }
  return hourMs + minutes * 60_000 + seconds * 1000 + ms;
}

/** The digit at `i`, or NaN. */
function digit(text: string, i: number): number {
  const d = text.charCodeAt(i) - 0x30;
  return d >= 0 && d <= 9 ? d : NaN;
}

function twoDigits(text: string, i: number): number {
  return digit(text, i) * 10 + digit(text, i + 1);
}

const FIELD_CACHE_SIZE = 10_000;
const fieldCache = new Map<string, string>();

/** `/body/items/0/price` → `/body/items/*\/price`: one row per field, whatever the array index. */
export function fieldOf(path: string): string {
  let field = fieldCache.get(path);
  if (field === undefined) {
    field = path.replace(/\/\d+(?=\/|$)/g, '/*');
    // Noise paths repeat on every record: remember them, within a bound.
    if (fieldCache.size >= FIELD_CACHE_SIZE) fieldCache.clear();
    fieldCache.set(path, field);
  }
  return field;
}

interface FieldState {
  count: number;
  kinds: Partial<Record<FieldDiff['kind'], number>>;
  /** Ring of the latest examples; the curl is built only when the report is rendered. */
  examples: Array<{ correlationId: string; at: string; diff: FieldDiff; request: CallSample | undefined }>;
}

/** What a flow needs to know about itself that records do not say. */
export interface FlowInfo {
  name: string;
  /** Current mode; `unknown` when no config names the flow. */
  mode: string;
  /** HTTP method from the flow's match, when configured. */
  method?: string;
}

/**
 * Streaming aggregate of one flow's parity records: counters, HDR histograms, a capped map of differing
 * fields and an adaptive timeline. Memory does not grow with the number of records.
 */
export class FlowAggregate {
  samples = 0;
  readonly outcomes: Record<ParityOutcome, number> = { match: 0, mismatch: 0, missing_bus: 0, missing_direct: 0, error_bus: 0, error_direct: 0 };
  dlq = 0;
  private readonly direct = new ValueHistogram(1000);
  private readonly bus = new ValueHistogram(1000);
  private readonly lag = new ValueHistogram(1000);
  private readonly eventBytes = new ValueHistogram(1);
  private drift = 0;
  private readonly driftExamples: Drift['examples'] = [];
  private readonly fields = new Map<string, FieldState>();
  private untrackedFields = new Set<string>();
  private untrackedOverflow = 0;
  private mismatchesWithoutDiffs = 0;
  private rpcHeaderMismatches = 0;
  private readonly noise = new Map<string, number>();
  private readonly modes = new Map<string, number>();
  private readonly errorCodes = new Map<string, number>();
  private readonly timeline: TimelineCounter;
  /** Finer buckets than the chart's, for finding when parity changed. */
  private readonly changes: TimelineCounter;
  private firstMs = Infinity;
  private lastMs = -Infinity;
  private sampledMethod: string | undefined;
  private readonly saga = new SagaAggregate();

  constructor(
    readonly info: FlowInfo,
    private readonly limits: AggregateLimits = DEFAULT_LIMITS,
  ) {
    this.timeline = new TimelineCounter(limits.maxBuckets);
    this.changes = new TimelineCounter(CHANGE_BUCKETS);
  }

  /** Adds one record already checked by {@link recordTime}; `atMs` is what that returned. */
  add(record: ParityRecord, atMs: number): void {
    this.samples++;
    const outcome = record.outcome;
    this.outcomes[outcome]++;
    if (record.dlq === true) this.dlq++;
    if (atMs < this.firstMs) this.firstMs = atMs;
    if (atMs > this.lastMs) this.lastMs = atMs;
    this.timeline.add(atMs, BUCKET_OF[outcome]);
    this.changes.add(atMs, BUCKET_OF[outcome], outcome === 'error_bus', record.dlq === true);
    this.direct.record(record.directLatencyMs);
    this.bus.record(record.busLatencyMs);
    this.lag.record(record.busLagMs);
    this.eventBytes.record(record.eventBytes);
    if (typeof record.drift === 'string') {
      this.drift++;
      this.driftExamples.push({ correlationId: String(record.correlationId ?? ''), at: record.at, problem: record.drift.slice(0, 300) });
      if (this.driftExamples.length > this.limits.examplesPerField) this.driftExamples.shift();
    }
    if (Array.isArray(record.rpcHeaderMismatch) && record.rpcHeaderMismatch.length > 0) this.rpcHeaderMismatches++;
    if (typeof record.mode === 'string') this.count(this.modes, record.mode, MAX_MODES);
    if ((outcome === 'error_bus' || outcome === 'error_direct') && typeof record.errorCode === 'string') this.count(this.errorCodes, record.errorCode, MAX_ERROR_CODES);
    if (this.sampledMethod === undefined && typeof record.request?.method === 'string') this.sampledMethod = record.request.method.toUpperCase();
    if (Array.isArray(record.noise)) {
      for (const path of record.noise) if (typeof path === 'string') this.count(this.noise, fieldOf(path), this.limits.maxNoiseFields);
    }
    if (outcome === 'mismatch') this.addDiffs(record);
    if (record.saga !== undefined) this.saga.add(record);
  }

  private count(map: Map<string, number>, key: string, cap: number): void {
    const n = map.get(key);
    if (n !== undefined) map.set(key, n + 1);
    else if (map.size < cap) map.set(key, 1);
  }

  private addDiffs(record: ParityRecord): void {
    const diffs = Array.isArray(record.diffs) ? record.diffs : [];
    // One call counts once per field even when several array elements of that field differ.
    const seen = new Set<string>();
    for (const diff of diffs) {
      if (typeof diff !== 'object' || diff === null || typeof diff.path !== 'string') continue;
      const field = fieldOf(diff.path);
      if (seen.has(field)) continue;
      seen.add(field);
      let state = this.fields.get(field);
      if (!state) {
        if (this.fields.size >= this.limits.maxDiffFields) {
          // Count distinct overflow fields up to a bound, then just count.
          if (this.untrackedFields.size < 10_000) this.untrackedFields.add(field);
          else this.untrackedOverflow++;
          continue;
        }
        state = { count: 0, kinds: {}, examples: [] };
        this.fields.set(field, state);
      }
      state.count++;
      const kind = DIFF_KINDS.has(diff.kind) ? diff.kind : 'changed';
      state.kinds[kind] = (state.kinds[kind] ?? 0) + 1;
      state.examples.push({ correlationId: String(record.correlationId ?? ''), at: record.at, diff, request: record.request });
      if (state.examples.length > this.limits.examplesPerField) state.examples.shift();
    }
    if (seen.size === 0) this.mismatchesWithoutDiffs++;
  }

  private change(): ChangePoint | null {
    const buckets = this.changes.counts();
    const found = latestChange(buckets);
    if (!found) return null;
    return { at: new Date(buckets[found.index]!.startMs).toISOString(), llr: Math.round(found.llr * 100) / 100, before: segmentOf(found.before), after: segmentOf(found.after) };
  }

  /** The flow's section of the report, minus criteria and verdict (verdict.ts adds those). */
  summarize(baseUrl: string): Omit<FlowReport, 'criteria' | 'verdict' | 'versions' | 'droppedVersionPairs' | 'lastFlip'> {
    const samples = this.samples;
    const rate = (count: number): RateStat => ({ count, rate: samples > 0 ? count / samples : null });
    const topDiffs: DiffField[] = [...this.fields.entries()]
      .sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))
      .slice(0, this.limits.topFields)
      .map(([field, s]) => ({ field, count: s.count, kinds: { ...s.kinds }, examples: s.examples.map((e) => example(e, baseUrl)) }));
    const noise: NoiseField[] = [...this.noise.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([field, count]) => ({ field, count }));
    return {
      flow: this.info.name,
      mode: this.info.mode,
      method: this.info.method?.toUpperCase() ?? this.sampledMethod ?? null,
      modesObserved: Object.fromEntries(this.modes),
      samples,
      outcomes: { ...this.outcomes },
      parity: parityOf(this.outcomes.match, this.outcomes.mismatch),
      missingBus: rate(this.outcomes.missing_bus),
      missingDirect: rate(this.outcomes.missing_direct),
      missing: rate(this.outcomes.missing_bus + this.outcomes.missing_direct),
      errorBus: rate(this.outcomes.error_bus),
      errorDirect: rate(this.outcomes.error_direct),
      dlq: rate(this.dlq),
      errorCodes: [...this.errorCodes.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 10).map(([code, count]) => ({ code, count })),
      latency: { direct: this.direct.summary(), bus: this.bus.summary(), busLag: this.lag.summary() },
      eventBytes: this.eventBytes.summary(),
      drift: { ...rate(this.drift), examples: [...this.driftExamples] },
      topDiffs,
      saga: this.saga.summary(),
      untrackedDiffFields: this.untrackedFields.size + this.untrackedOverflow,
      mismatchesWithoutDiffs: this.mismatchesWithoutDiffs,
      rpcHeaderMismatches: this.rpcHeaderMismatches,
      noise,
      change: this.change(),
      timeline: this.timeline.result(),
      firstAt: Number.isFinite(this.firstMs) ? new Date(this.firstMs).toISOString() : null,
      lastAt: Number.isFinite(this.lastMs) ? new Date(this.lastMs).toISOString() : null,
    };
  }
}

/** Buckets of the change search: fine enough to place a change within a fraction of a percent of the span. */
const CHANGE_BUCKETS = 1000;

/** Parity of `match` and `mismatch` counts with both its intervals. */
export function parityOf(match: number, mismatch: number): Parity {
  const compared = match + mismatch;
  if (compared === 0) return { compared, value: null, lowerBound: null, upperBound: null, wilsonLowerBound: null, wilsonUpperBound: null };
  const anytime = anytimeInterval(match, compared);
  const w = wilson(match, compared);
  return { compared, value: match / compared, lowerBound: anytime.lower, upperBound: anytime.upper, wilsonLowerBound: w.lower, wilsonUpperBound: w.upper };
}

function segmentOf(c: Counts): Segment {
  const rate = (count: number): RateStat => ({ count, rate: c.samples > 0 ? count / c.samples : null });
  return { samples: c.samples, parity: parityOf(c.match, c.mismatch), missing: rate(c.missing), errorBus: rate(c.errorBus), dlq: rate(c.dlq) };
}

function example(e: FieldState['examples'][number], baseUrl: string): DiffExample {
  const curl = e.request && typeof e.request === 'object' ? buildCurl(e.request, baseUrl) : null;
  return {
    correlationId: e.correlationId,
    at: e.at,
    path: e.diff.path,
    kind: DIFF_KINDS.has(e.diff.kind) ? e.diff.kind : 'changed',
    direct: jsonSafe(e.diff.direct),
    bus: jsonSafe(e.diff.bus),
    curl: curl?.command ?? null,
    curlNote: curl?.note ?? null,
  };
}

/** Diff values come from the wire: keep them JSON (undefined → null) and small. */
function jsonSafe(value: unknown): unknown {
  if (value === undefined) return null;
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return null;
    return text.length > 500 ? `${text.slice(0, 500)}…` : (JSON.parse(text) as unknown);
  } catch {
    return String(value);
  }
}
