import type { FieldDiff, ParityOutcome } from '../src/parity/types.js';

/**
 * The report model. It is also the JSON output (`--format json`, admin `GET /report`), so every field is
 * plain JSON: numbers are finite, absent values are `null`, times are ISO strings. The shape is described
 * by docs/report-schema.json; bump {@link REPORT_SCHEMA_VERSION} (major on breaking changes) when it changes.
 */
export const REPORT_SCHEMA_VERSION = '1.2.0';
/** `$id` of docs/report-schema.json, echoed in every report as `schema`. */
export const REPORT_SCHEMA_ID = 'urn:cutover:report-schema:1';

export { VERDICTS, CRITERIA, type VerdictStatus, type CriterionName } from '../src/parity/types.js';
export type { Criteria } from '../src/config/readiness.js';
import type { Criteria } from '../src/config/readiness.js';
import type { VerdictStatus, CriterionName } from '../src/parity/types.js';

/**
 * A criterion the flow does not meet. `fail`: the data shows the flow misses the threshold.
 * `insufficient`: the data is too thin to show that it meets it.
 */
export interface Reason {
  criterion: CriterionName;
  status: 'fail' | 'insufficient';
  /** The measured value the threshold applies to (`null` when there is nothing to measure yet). */
  measured: number | null;
  threshold: number;
  /** True when the 95% interval lies wholly on the wrong side of the threshold (fails even with few samples). */
  conclusive: boolean;
  /** One line for humans. */
  message: string;
}

export interface Advice {
  code: 'keep-on-rest' | 'slim-events' | 'inspect-dlq' | 'collect-more' | 'mcp-headers';
  message: string;
}

export interface Verdict {
  status: VerdictStatus;
  reasons: Reason[];
  advice: Advice[];
}

export interface RateStat {
  count: number;
  /** count / samples; `null` with no samples. */
  rate: number | null;
}

/** Latency percentiles in milliseconds (HDR histogram, 3 significant digits, microsecond unit). */
export interface Percentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export interface Parity {
  /** match + mismatch: the calls that could be compared. */
  compared: number;
  /** match / compared; `null` when nothing was compared. */
  value: number | null;
  /**
   * Anytime-valid 95% confidence sequence (reports/stats.ts): valid however often the report is looked at,
   * so the verdict judges parity by `lowerBound`.
   */
  lowerBound: number | null;
  upperBound: number | null;
  /** The 95% Wilson interval, for reading: valid for a single look only, so the verdict does not use it. */
  wilsonLowerBound: number | null;
  wilsonUpperBound: number | null;
}

/** A stretch of a flow's records: counts and parity, the evidence a verdict can judge. */
export interface Segment {
  samples: number;
  parity: Parity;
  missing: RateStat;
  errorBus: RateStat;
  dlq: RateStat;
}

/** A flow's last flip as the report shows it. */
export interface LastFlip {
  at: string;
  from: string;
  to: string;
  who: string;
  reason: string | null;
  forced: boolean;
  /** Made by the automatic rollback. */
  automatic: boolean;
}

/** One version pair of a flow: the direct side's code version and the bus side's, with its own evidence. */
export interface VersionPair {
  /** `null` when that side reports no version. */
  direct: string | null;
  bus: string | null;
  /** The pair seen last: the code running now, the one the flow is judged on. */
  current: boolean;
  samples: number;
  parity: Parity;
  firstAt: string;
  lastAt: string;
  /** This pair's own verdict (older pairs: what it would have been; never pooled with the current one). */
  verdict: VerdictStatus;
}

/** The latest change in a flow's parity that no version announced (reports/change.ts). */
export interface ChangePoint {
  /** Start of the first time bucket after the change, ISO. */
  at: string;
  /** Log-likelihood ratio of the split (at least 10). */
  llr: number;
  before: Segment;
  /** What the verdict judges. */
  after: Segment;
}

export interface DiffExample {
  correlationId: string;
  at: string;
  /** The actual JSON pointer (the field group may have replaced array indices by `*`). */
  path: string;
  kind: FieldDiff['kind'];
  direct: unknown;
  bus: unknown;
  /** Copy-paste command that repeats the call through the sidecar; `null` when the record carried no request. */
  curl: string | null;
  /** Why the `curl` may not reproduce the call exactly (truncated body), else `null`. */
  curlNote: string | null;
}

export interface DiffField {
  /** JSON pointer with numeric segments replaced by `*`, so `/body/items/0/price` and `/body/items/7/price` group. */
  field: string;
  /** Mismatching calls in which this field differed. */
  count: number;
  kinds: Partial<Record<FieldDiff['kind'], number>>;
  /** Up to three, most recent last. */
  examples: DiffExample[];
}

/** Contract drift: calls that no longer fit the payload schemas of the flow's AsyncAPI contract. */
export interface Drift {
  count: number;
  /** count / samples; `null` with no samples. */
  rate: number | null;
  /** The latest few, most recent last: where each call stopped fitting. */
  examples: Array<{ correlationId: string; at: string; problem: string }>;
}

export interface NoiseField {
  field: string;
  count: number;
}

export interface TimeBucket {
  /** Bucket start, ISO. */
  start: string;
  samples: number;
  match: number;
  mismatch: number;
  missing: number;
  errors: number;
  /** match / (match + mismatch) within the bucket; `null` when nothing was compared. */
  parity: number | null;
}

export interface Timeline {
  bucketMs: number;
  buckets: TimeBucket[];
}

/** One step of a saga flow's saga, over the flow's calls. */
export interface SagaStepFigures {
  name: string;
  /** Sagas where the step got no reply in time or an error reply on every send. */
  failed: number;
  /** Sagas where the participant refused the step (a reply that is not a success). */
  refused: number;
  /** Sagas where the step was undone. */
  compensated: number;
  /** Sagas where undoing the step failed (the saga is stuck). */
  compensationFailed: number;
  /** Send to deciding reply, ms; null when the step never answered. */
  latency: Percentiles | null;
}

/** A saga flow's bus side, step by step (from the saga summaries of its parity records). */
export interface SagaFigures {
  /** The saga's name. */
  name: string;
  /** Sagas by how they ended. */
  ended: { completed: number; compensated: number; stuck: number };
  steps: SagaStepFigures[];
  /**
   * Mismatching calls by the saga step whose failure made the outcome differ from the REST chain's, most
   * first: the failed step, for a stuck saga the step it is stuck at (`reserve (undo)` when undoing it kept
   * failing), `(completed)` when the saga completed and the chain answered otherwise.
   */
  mismatchSteps: Array<{ step: string; count: number }>;
}

export interface FlowReport {
  flow: string;
  /** The flow's current mode (from the flip log once flips exist; from config until then). */
  mode: string;
  /** HTTP method of the flow, when known (from config or from sampled requests). */
  method: string | null;
  /** Modes the calls were made in, with counts (at most 20 distinct). */
  modesObserved: Record<string, number>;
  samples: number;
  outcomes: Record<ParityOutcome, number>;
  parity: Parity;
  missingBus: RateStat;
  missingDirect: RateStat;
  /** missingBus + missingDirect: what `maxMissingRate` gates. */
  missing: RateStat;
  errorBus: RateStat;
  errorDirect: RateStat;
  dlq: RateStat;
  /** Error codes of error_* outcomes with counts (top 10). */
  errorCodes: Array<{ code: string; count: number }>;
  latency: {
    direct: Percentiles | null;
    bus: Percentiles | null;
    busLag: Percentiles | null;
  };
  /** Size of the published events in bytes; `null` when records do not carry `eventBytes`. */
  eventBytes: Percentiles | null;
  /** Calls whose payload stopped fitting the flow's contract (the sidecar's `contract:`). */
  drift: Drift;
  topDiffs: DiffField[];
  /** Saga flows: the saga's figures per step; null for other flows. */
  saga: SagaFigures | null;
  /** Distinct differing fields beyond the tracking cap, counted but not itemised. */
  untrackedDiffFields: number;
  /** Mismatches whose record carried no diff detail. */
  mismatchesWithoutDiffs: number;
  /**
   * JSON-RPC (MCP) calls whose `Mcp-Method` / `Mcp-Name` headers disagreed with their body: the sidecar
   * matched them by the body, but a gateway routing on the headers would send them elsewhere.
   */
  rpcHeaderMismatches: number;
  noise: NoiseField[];
  /** The latest change point of the flow's parity; when set, the verdict judges only the records after it. */
  change: ChangePoint | null;
  /**
   * Every version pair seen, the current one first. The flow's figures above are the current pair's: a new
   * version on either side starts the evidence afresh, and older pairs are shown, not counted.
   */
  versions: VersionPair[];
  /** Version pairs left out because more than 20 were seen. */
  droppedVersionPairs: number;
  /** The flow's last flip (null: none, or the report was built without the flip log). */
  lastFlip: LastFlip | null;
  timeline: Timeline;
  firstAt: string | null;
  lastAt: string | null;
  criteria: Criteria;
  verdict: Verdict;
}

export interface InputStats {
  /** Records read from the source. */
  read: number;
  /** Records aggregated into a flow. */
  used: number;
  /** Older than `since`. */
  beforeSince: number;
  /** For flows not selected (other agents' flows share the parity topic). */
  otherFlows: number;
  /** From a newer major version of the record format. */
  unsupportedVersion: number;
  /** Not a parity record (missing or wrongly typed fields). */
  invalid: number;
}

export interface Report {
  schema: typeof REPORT_SCHEMA_ID;
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  generatedAt: string;
  /** Records older than this were left out (`--since`); `null` for all records. */
  since: string | null;
  /** Worst verdict over the flows: NOT_READY, then INSUFFICIENT_DATA, then READY. */
  verdict: VerdictStatus;
  summary: Record<VerdictStatus, number>;
  input: InputStats;
  flows: FlowReport[];
}

/** Exit codes of `cutover report`: CI gates on them. NOT_READY wins over INSUFFICIENT_DATA. */
export const ReportExitCode = { READY: 0, NOT_READY: 1, INSUFFICIENT_DATA: 3 } as const satisfies Record<VerdictStatus, number>;
