import type { Bus } from '../src/bus/types.js';
import type { FlowConfig } from '../src/config/flow.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { PARITY_TOPIC, type ParityRecord } from '../src/parity/types.js';
import { DEFAULT_LIMITS, INVALID, recordTime, type AggregateLimits, type FlowInfo } from './aggregate.js';
import { VersionedFlow } from './versions.js';
import { READINESS_DEFAULTS, resolveCriteria, type FlowReadinessConfig, type ReadinessConfig } from '../src/config/readiness.js';
import { renderHtml } from './render-html.js';
import { renderJson } from './render-json.js';
import type { FlipEntry } from '../src/flips/types.js';
import { REPORT_SCHEMA_ID, REPORT_SCHEMA_VERSION, type Criteria, type FlowReport, type LastFlip, type InputStats, type Report, type VersionPair, type VerdictStatus } from './types.js';
import { decideVerdict, worstVerdict } from './verdict.js';

/** A flow the report covers, with what config knows about it. */
export interface ReportFlow extends FlowInfo {
  /** The flow's bus topic (names its DLQ in advice). */
  topic?: string;
  /** The flow's `readiness:` overrides. */
  readiness?: FlowReadinessConfig;
  /** The flow's last flip, as the log has it. */
  lastFlip?: LastFlip | null;
}

export interface BuildReportOptions {
  /**
   * The flows to report on, in this order. Records of other flows are counted (`input.otherFlows`) and
   * skipped: several agents share the parity topic. When omitted, every flow in the stream is reported
   * (mode `unknown`), up to 1,000 flows.
   */
  flows?: readonly ReportFlow[];
  /** Top-level `readiness:` defaults. */
  readiness?: ReadinessConfig;
  /** Leave out records decided before this time (`--since`). */
  since?: Date | null;
  /** The report's `generatedAt`; default now. */
  now?: Date;
  /** Where example `curl`s send the call: the sidecar's listen address. */
  baseUrl?: string;
  logger?: Logger;
  limits?: Partial<AggregateLimits>;
}

const MAX_DISCOVERED_FLOWS = 1000;
/** Skipped records logged one by one before going quiet (the counts are in the report either way). */
const LOGGED_PROBLEMS = 5;

/**
 * Builds the report by streaming over `records` once: memory stays bounded by the number of flows, not
 * the number of records. The source is injected: a bus reader in the CLI ({@link parityRecordsFromBus}),
 * an array or generator in tests.
 */
export async function buildReport(records: AsyncIterable<ParityRecord> | Iterable<ParityRecord>, options: BuildReportOptions = {}): Promise<Report> {
  const logger = (options.logger ?? silentLogger()).child({ component: 'report' });
  const limits: AggregateLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const sinceMs = options.since ? options.since.getTime() : -Infinity;
  const input: InputStats = { read: 0, used: 0, beforeSince: 0, otherFlows: 0, unsupportedVersion: 0, invalid: 0 };
  const selected = options.flows ? new Map(options.flows.map((f) => [f.name, f])) : null;
  const aggregates = new Map<string, VersionedFlow>();
  if (options.flows) for (const f of options.flows) aggregates.set(f.name, new VersionedFlow(f, limits));

  for await (const record of records as AsyncIterable<unknown>) {
    input.read++;
    const atMs = recordTime(record);
    if (atMs < 0) {
      if (atMs === INVALID) input.invalid++;
      else input.unsupportedVersion++;
      if (input.invalid + input.unsupportedVersion <= LOGGED_PROBLEMS) {
        logger.warn({ problem: atMs === INVALID ? 'invalid' : 'unsupported version', correlationId: (record as { correlationId?: unknown } | null)?.correlationId }, 'skipping a parity record');
      }
      continue;
    }
    const r = record as ParityRecord;
    let aggregate = aggregates.get(r.flow);
    if (!aggregate && (selected || aggregates.size >= MAX_DISCOVERED_FLOWS)) {
      input.otherFlows++;
      continue;
    }
    if (atMs < sinceMs) {
      input.beforeSince++;
      continue;
    }
    if (!aggregate) {
      aggregate = new VersionedFlow({ name: r.flow, mode: 'unknown' }, limits);
      aggregates.set(r.flow, aggregate);
    }
    aggregate.add(r, atMs);
    input.used++;
  }
  if (input.invalid + input.unsupportedVersion > 0) {
    logger.warn({ invalid: input.invalid, unsupportedVersion: input.unsupportedVersion }, 'parity records skipped');
  }

  const baseUrl = options.baseUrl ?? 'http://127.0.0.1:15000';
  const flows: FlowReport[] = [];
  const ordered = options.flows ? options.flows.map((f) => aggregates.get(f.name)!) : [...aggregates.values()].sort((a, b) => a.info.name.localeCompare(b.info.name));
  for (const aggregate of ordered) {
    const flow = selected?.get(aggregate.info.name);
    const judged = judgeFlow(aggregate, resolveCriteria(options.readiness ?? READINESS_DEFAULTS, flow?.readiness), { baseUrl, ...(flow?.topic ? { topic: flow.topic } : {}) });
    flows.push({ ...judged, lastFlip: flow?.lastFlip ?? null });
  }
  const summary: Record<VerdictStatus, number> = { READY: 0, NOT_READY: 0, INSUFFICIENT_DATA: 0 };
  for (const f of flows) summary[f.verdict.status]++;
  return {
    schema: REPORT_SCHEMA_ID,
    schemaVersion: REPORT_SCHEMA_VERSION,
    generatedAt: (options.now ?? new Date()).toISOString(),
    since: options.since ? options.since.toISOString() : null,
    verdict: worstVerdict(flows.map((f) => f.verdict.status)),
    summary,
    input,
    flows,
  };
}

/**
 * A flow's section of the report with its verdict: the one rule the report, the gate, `cutover status`, the
 * admin API and the automatic rollback all apply. The flow is judged on the version pair seen last; the
 * others are shown with their own verdicts.
 */
export function judgeFlow(aggregate: VersionedFlow, criteria: Criteria, context: { baseUrl: string; topic?: string }): FlowReport {
  const current = aggregate.current();
  const facts = current.aggregate.summarize(context.baseUrl);
  const verdict = decideVerdict(facts, criteria, context.topic ? { topic: context.topic } : {});
  const versions: VersionPair[] = aggregate.byRecency().map((p) => {
    const pairFacts = p === current ? facts : p.aggregate.summarize(context.baseUrl);
    return {
      direct: p.direct,
      bus: p.bus,
      current: p === current,
      samples: pairFacts.samples,
      parity: pairFacts.parity,
      firstAt: new Date(p.firstMs).toISOString(),
      lastAt: new Date(p.lastMs).toISOString(),
      verdict: p === current ? verdict.status : decideVerdict(pairFacts, criteria).status,
    };
  });
  return { ...facts, versions, droppedVersionPairs: aggregate.droppedPairs, lastFlip: null, criteria, verdict };
}

/**
 * Parity records from the bus: reads `cutover.parity` from the start to its current end (no consumer
 * group, so reports never disturb the comparator) and yields each event's `data`. Validation happens in
 * {@link buildReport}, which counts what it skips.
 */
export async function* parityRecordsFromBus(bus: Bus): AsyncGenerator<ParityRecord> {
  const stream = bus.read(PARITY_TOPIC, { from: 'start', follow: false });
  try {
    for await (const delivery of stream) {
      // Unvalidated on purpose: buildReport checks and counts bad records instead of throwing mid-stream.
      yield delivery.event.data as ParityRecord;
    }
  } finally {
    await stream.close();
  }
}

/**
 * The report's view of configured flows: name, current mode (from `modes`, as read from the flip log;
 * the config's `mode` for a flow never flipped), method, topic and `readiness:` overrides. Shared by the
 * CLI and the admin API.
 */
export function reportFlowsFromConfig(
  flows: ReadonlyArray<FlowConfig & { readiness?: FlowReadinessConfig }>,
  modes: ReadonlyMap<string, string> = new Map(),
  flips: readonly FlipEntry[] = [],
): ReportFlow[] {
  const last = new Map<string, FlipEntry>();
  for (const f of flips) last.set(f.flow, f);
  return flows.map((flow) => {
    const f = last.get(flow.name);
    return {
      name: flow.name,
      mode: modes.get(flow.name) ?? flow.mode,
      method: flow.match.method,
      topic: flow.topic,
      readiness: flow.readiness,
      lastFlip: f ? { at: f.at, from: f.from, to: f.to, who: f.who, reason: f.reason, forced: f.forced, automatic: f.automatic === true } : null,
    };
  });
}

/** What the admin API serves: `GET /report` (JSON) and `GET /report.html`. */
export interface AdminReport {
  report: Report;
  /** `GET /report` body (application/json). */
  json: string;
  /** `GET /report.html` body (text/html; charset=utf-8). */
  html: string;
}

/** Builds the report once and renders both admin API bodies from it. */
export async function adminReport(records: AsyncIterable<ParityRecord> | Iterable<ParityRecord>, options: BuildReportOptions = {}): Promise<AdminReport> {
  const report = await buildReport(records, options);
  return { report, json: renderJson(report), html: renderHtml(report) };
}
