import type { FieldDiff, ParityOutcome, ParityRecord } from '../src/parity/types.js';
import { compileRules, diffResults, type CompiledRules } from './diff.js';
import { NoiseBaseline } from './noise.js';
import type { Observation } from './observations.js';
import { sealDiffs } from './sealed.js';
import type { FlowCompareInput, FlowNoiseOptions } from '../src/config/shadow.js';
import { endSpan, SpanKind, startSpan, tracing } from '../src/tracing.js';

/**
 * The comparator's core, free of I/O and of the wall clock (every call passes `now`): pairs direct and bus
 * observations by correlation id, decides each pair with the flow's rules and noise baseline, and turns
 * pairs left alone for a whole window into missing_bus / missing_direct. Memory stays bounded: at most
 * `maxOpenPairs` open pairs (the oldest is dropped and counted beyond that) and as many remembered
 * decisions, so that duplicate or late observations of a decided pair do not open a new one.
 */

export interface FlowRules {
  compare?: FlowCompareInput;
  noise?: Pick<FlowNoiseOptions, 'sample'> & Partial<Pick<FlowNoiseOptions, 'warmup'>>;
}

export interface PairingOptions {
  /** ms an open pair waits for its other side. */
  window: number;
  maxOpenPairs: number;
  /** Rules per flow name; unknown flows use the default rules. */
  flows?: Readonly<Record<string, FlowRules>>;
  /** Direct results kept after a decision, per noise-sampling flow, for noise samples that arrive late. */
  maxRecentDirects?: number;
  /**
   * How long a decided correlation id is remembered (default 10 windows), so that a side arriving after
   * its pair was recorded missing is dropped instead of opening a new pair.
   */
  decidedTtl?: number;
  /**
   * Whether a body path (`['card', 'number']`) is, or lies inside, a configured encrypted field: its
   * differences show `[ENCRYPTED]` even where neither side held it encrypted.
   */
  secret?: (bodyPath: readonly string[]) => boolean;
}

export interface PairingStats {
  open: number;
  held: number;
  decided: number;
  /** Open pairs dropped because `maxOpenPairs` was reached. */
  overflow: number;
  /** Observations for a pair already decided (redeliveries, late sides). */
  duplicates: number;
  /** Noise samples whose direct side never arrived. */
  orphanNoise: number;
  noiseSamples: number;
  records: Record<ParityOutcome, number>;
}

interface OpenPair {
  id: string;
  flow: string;
  deadline: number;
  direct?: Observation;
  bus?: Observation;
  noise?: Observation;
  /** Complete but waiting for the flow's noise baseline to warm up. */
  held: boolean;
}

interface FlowState {
  rules: CompiledRules;
  noise: { sample: number; warmup: number } | undefined;
  baseline: NoiseBaseline;
  held: Set<string>;
}

export class PairingEngine {
  private readonly open = new Map<string, OpenPair>();
  /** Decided correlation ids → when to forget them. Insertion order = decision order. */
  private readonly decided = new Map<string, number>();
  private readonly recentDirects = new Map<string, { obs: Observation; until: number }>();
  private readonly flows = new Map<string, FlowState>();
  private readonly defaultRules: CompiledRules;
  private readonly maxRecentDirects: number;
  private lastIso = { ms: NaN, iso: '' };
  private readonly decidedTtl: number;
  private readonly counters = {
    overflow: 0,
    duplicates: 0,
    orphanNoise: 0,
    records: { match: 0, mismatch: 0, missing_bus: 0, missing_direct: 0, error_bus: 0, error_direct: 0 } as Record<ParityOutcome, number>,
  };

  constructor(private readonly options: PairingOptions) {
    this.defaultRules = compileRules({});
    this.maxRecentDirects = options.maxRecentDirects ?? Math.min(options.maxOpenPairs, 10_000);
    this.decidedTtl = options.decidedTtl ?? options.window * 10;
    for (const [name, f] of Object.entries(options.flows ?? {})) this.flows.set(name, this.newFlowState(f));
  }

  private newFlowState(f: FlowRules | undefined): FlowState {
    return {
      rules: f?.compare ? compileRules(f.compare) : this.defaultRules,
      noise: f?.noise && f.noise.sample > 0 ? { sample: f.noise.sample, warmup: f.noise.warmup ?? 3 } : undefined,
      baseline: new NoiseBaseline(),
      held: new Set(),
    };
  }

  private flowState(name: string): FlowState {
    let s = this.flows.get(name);
    if (!s) {
      s = this.newFlowState(undefined);
      this.flows.set(name, s);
    }
    return s;
  }

  /** Adds one observation; returns the records it completes (none, one, or held ones it released). */
  ingest(obs: Observation, now: number): ParityRecord[] {
    const id = obs.correlationId;
    if (this.decided.has(id)) {
      this.counters.duplicates += 1;
      if (obs.side === 'noise') {
        const recent = this.recentDirects.get(id);
        if (recent) {
          this.recentDirects.delete(id);
          return this.learnNoise(obs.flow, recent.obs, obs, now);
        }
      }
      return [];
    }
    const out: ParityRecord[] = [];
    let pair = this.open.get(id);
    if (!pair) {
      if (this.open.size >= this.options.maxOpenPairs) {
        const evicted = this.evictOldest(now);
        if (evicted) out.push(evicted);
      }
      pair = { id, flow: obs.flow, deadline: now + this.options.window, held: false };
      this.open.set(id, pair);
    }
    if (pair[obs.side]) {
      // A redelivered observation of an open pair: the first copy stands.
      this.counters.duplicates += 1;
      return out;
    }
    pair[obs.side] = obs;
    if ((obs.side === 'noise' || obs.side === 'direct') && pair.direct && pair.noise) {
      out.push(...this.learnNoise(pair.flow, pair.direct, pair.noise, now));
    }
    if (pair.direct && pair.bus && this.open.has(id)) {
      if (pair.held) {
        // Its own noise sample just arrived: it may explain the differences.
        pair.held = false;
        this.flows.get(pair.flow)?.held.delete(id);
      }
      const record = this.decide(pair, now, false);
      if (record) out.push(record);
    }
    return out;
  }

  /** Decides every open pair whose window has passed; returns their records. */
  expire(now: number): ParityRecord[] {
    const out: ParityRecord[] = [];
    for (const pair of this.open.values()) {
      if (pair.deadline > now) break;
      if (pair.direct && pair.bus) {
        const r = this.decide(pair, now, true);
        if (r) out.push(r);
      } else if (pair.direct) {
        out.push(this.finish(pair, this.record(pair, 'missing_bus', now), now));
      } else if (pair.bus) {
        out.push(this.finish(pair, this.record(pair, 'missing_direct', now), now));
      } else {
        // Only a noise sample: its direct observation was lost; nothing to say about parity.
        this.counters.orphanNoise += 1;
        this.forget(pair, now);
      }
    }
    for (const [id, until] of this.decided) {
      if (until > now) break;
      this.decided.delete(id);
    }
    for (const [id, r] of this.recentDirects) {
      if (r.until > now) break;
      this.recentDirects.delete(id);
    }
    return out;
  }

  /** Earliest deadline among open pairs, for a caller that wants to sleep until then. */
  nextDeadline(): number | undefined {
    for (const pair of this.open.values()) return pair.deadline;
    return undefined;
  }

  stats(): PairingStats {
    let held = 0;
    for (const f of this.flows.values()) held += f.held.size;
    let noiseSamples = 0;
    for (const f of this.flows.values()) noiseSamples += f.baseline.samples;
    return {
      open: this.open.size,
      held,
      decided: this.decided.size,
      overflow: this.counters.overflow,
      duplicates: this.counters.duplicates,
      orphanNoise: this.counters.orphanNoise,
      noiseSamples,
      records: { ...this.counters.records },
    };
  }

  /** The noise paths learned for a flow so far. */
  noisePaths(flow: string): string[] {
    return this.flows.get(flow)?.baseline.paths() ?? [];
  }

  private learnNoise(flow: string, direct: Observation, noise: Observation, now: number): ParityRecord[] {
    const state = this.flowState(flow);
    state.baseline.learn(direct.data, noise.data, state.rules);
    // Held pairs waited for this baseline: decide them once it is warm.
    if (!state.noise || state.baseline.samples < state.noise.warmup || state.held.size === 0) return [];
    const out: ParityRecord[] = [];
    for (const id of [...state.held]) {
      const pair = this.open.get(id);
      state.held.delete(id);
      if (!pair) continue;
      pair.held = false;
      const r = this.decide(pair, now, true);
      if (r) out.push(r);
    }
    return out;
  }

  /** The record of a complete pair, or undefined when it is held for the noise baseline. */
  private decide(pair: OpenPair, now: number, final: boolean): ParityRecord | undefined {
    const direct = pair.direct!;
    const bus = pair.bus!;
    const state = this.flowState(pair.flow);
    if (direct.data.error) {
      return this.finish(pair, { ...this.record(pair, 'error_direct', now), errorCode: direct.data.error.code }, now);
    }
    if (bus.data.error) {
      const r = this.record(pair, 'error_bus', now);
      r.errorCode = bus.data.error.code;
      if (bus.data.dlq) r.dlq = true;
      return this.finish(pair, r, now);
    }
    // Decrypted values are compared (the comparator opened both sides), and never leave in a record.
    const all = sealDiffs(diffResults(direct.data, bus.data, state.rules), direct, bus, this.options.secret);
    const { counted, noise } = state.baseline.split(all);
    if (counted.length > 0 && !final && state.noise && state.baseline.samples < state.noise.warmup) {
      pair.held = true;
      state.held.add(pair.id);
      return undefined;
    }
    const r = this.record(pair, counted.length > 0 ? 'mismatch' : 'match', now, counted.length === 0 ? [] : counted.slice(0, state.rules.maxDiffs));
    if (noise.length > 0) r.noise = noise.slice(0, state.rules.maxDiffs);
    return this.finish(pair, r, now);
  }

  private record(pair: OpenPair, outcome: ParityOutcome, now: number, diffs: FieldDiff[] = []): ParityRecord {
    const { direct, bus } = pair;
    const r: ParityRecord = {
      v: 1,
      flow: pair.flow,
      correlationId: pair.id,
      outcome,
      at: this.isoOf(now),
      mode: direct?.mode ?? bus?.mode ?? 'shadow',
      diffs,
    };
    if (direct?.data.status !== undefined) r.directStatus = direct.data.status;
    if (bus?.data.status !== undefined) r.busStatus = bus.data.status;
    if (direct?.data.latencyMs !== undefined) r.directLatencyMs = direct.data.latencyMs;
    const t = bus?.data;
    if (t?.eventPublishedAt !== undefined) {
      const replied = bus!.publishedAt || t.repliedAt;
      if (replied !== undefined) r.busLatencyMs = Math.max(0, replied - t.eventPublishedAt);
      if (t.consumedAt !== undefined) r.busLagMs = Math.max(0, t.consumedAt - t.eventPublishedAt);
    }
    if (t?.eventBytes !== undefined) r.eventBytes = t.eventBytes;
    if (typeof direct?.data.version === 'string') r.directVersion = direct.data.version;
    if (typeof direct?.data.drift === 'string') r.drift = direct.data.drift.slice(0, 300);
    if (typeof t?.version === 'string') r.busVersion = t.version;
    // The decision as a span of the call's trace (a no-op without an OpenTelemetry SDK).
    if (tracing()) endSpan(startSpan('cutover compare', SpanKind.INTERNAL, direct?.traceparent ?? bus?.traceparent, { 'cutover.flow': r.flow, 'cutover.outcome': outcome, 'cutover.correlation_id': r.correlationId }));
    if (Array.isArray(direct?.data.rpcHeaderMismatch) && direct.data.rpcHeaderMismatch.length > 0) r.rpcHeaderMismatch = direct.data.rpcHeaderMismatch;
    if (t?.saga) r.saga = t.saga;
    if (outcome !== 'match') {
      // The sidecar's own record of the call first; the bus side's copy when the direct side is missing or
      // predates call samples. SDK replies carry none, so without the direct one their mismatches had no curl.
      const request = direct?.data.request ?? t?.request;
      if (request) r.request = request;
    }
    return r;
  }

  /** `now` as an ISO string; records decided in the same millisecond share the conversion. */
  private isoOf(now: number): string {
    if (now !== this.lastIso.ms) this.lastIso = { ms: now, iso: new Date(now).toISOString() };
    return this.lastIso.iso;
  }

  private finish(pair: OpenPair, record: ParityRecord, now: number): ParityRecord {
    this.counters.records[record.outcome] += 1;
    const state = this.flows.get(pair.flow);
    if (state?.noise && pair.direct && !pair.noise) {
      // A noise sample may still come for this call: keep its direct result a little while.
      if (this.recentDirects.size >= this.maxRecentDirects) {
        const oldest = this.recentDirects.keys().next();
        if (!oldest.done) this.recentDirects.delete(oldest.value);
      }
      this.recentDirects.set(pair.id, { obs: pair.direct, until: now + this.options.window });
    }
    this.forget(pair, now);
    return record;
  }

  private forget(pair: OpenPair, now: number): void {
    this.open.delete(pair.id);
    this.flows.get(pair.flow)?.held.delete(pair.id);
    if (this.decided.size >= this.options.maxOpenPairs) {
      const oldest = this.decided.keys().next();
      if (!oldest.done) this.decided.delete(oldest.value);
    }
    this.decided.set(pair.id, now + this.decidedTtl);
  }

  /** Makes room for one pair: a complete (held) pair is decided now; an incomplete one is dropped and counted. */
  private evictOldest(now: number): ParityRecord | undefined {
    const oldest = this.open.values().next();
    if (oldest.done) return undefined;
    const pair = oldest.value;
    if (pair.direct && pair.bus) return this.decide(pair, now, true);
    this.counters.overflow += 1;
    this.forget(pair, now);
    return undefined;
  }
}
