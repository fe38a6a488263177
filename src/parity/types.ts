/**
 * The parity record: what the comparator concludes for one call, published on `cutover.parity`
 * (CloudEvent type `cutover.parity.v1`, key = flow name, data = ParityRecord). Reports aggregate these.
 * Versioned: readers check `v` and skip records from a newer major with a counted warning.
 */
export const PARITY_TOPIC = 'cutover.parity';
export const PARITY_EVENT_TYPE = 'cutover.parity.v1';

export const PARITY_OUTCOMES = ['match', 'mismatch', 'missing_bus', 'missing_direct', 'error_bus', 'error_direct'] as const;
export type ParityOutcome = (typeof PARITY_OUTCOMES)[number];

/** One difference between the direct and the bus-driven result. */
export interface FieldDiff {
  /** JSON pointer into the compared document: `/status`, `/headers/content-type`, `/body/items/0/price`. */
  path: string;
  /** `changed` value, `missing` on the bus side, `extra` on the bus side, `type` differs. */
  kind: 'changed' | 'missing' | 'extra' | 'type';
  /** Values, truncated (strings to ~200 chars, objects summarised) so records stay small. */
  direct?: unknown;
  bus?: unknown;
}

/** The original call, redacted, kept only on non-matching records so a report can print a `curl`. */
export interface CallSample {
  method: string;
  /** Path and query as the caller sent them. */
  target: string;
  /** Allow-listed request headers (never credentials). */
  headers?: Record<string, string>;
  /** Request body as text (truncated), when it was captured. */
  body?: string;
  /** True when `body` was cut short, so a replay from it would not send the original bytes. */
  bodyTruncated?: boolean;
}

/** How one step of a saga that answered a call ran. */
export interface SagaStepSummary {
  name: string;
  /** `succeeded`, `refused` (a reply that is not a success), `failed` (no reply in time or an error reply on every send), `skipped` (never sent). */
  outcome: 'succeeded' | 'refused' | 'failed' | 'skipped';
  /** Send to the reply (or the last timeout) that decided the step, ms. */
  latencyMs?: number;
  /** `compensated` when it was undone, `failed` when its compensation failed; absent when it was not compensated. */
  compensation?: 'compensated' | 'failed';
}

/** The bus side of a saga flow: how the saga that answered the call ran, from its events. */
export interface SagaSummary {
  /** The saga's name (`sagas[].name`). */
  name: string;
  status: 'completed' | 'compensated' | 'stuck';
  /** The step whose failure made the saga compensate (or stick). */
  failedStep?: string;
  /** Its error code: CUTOVER_SAGA_STEP_REFUSED, CUTOVER_REPLY_TIMEOUT, CUTOVER_SAGA_STUCK or the participant's. */
  failureCode?: string;
  /** A stuck saga: the step it is stuck at, and whether undoing it (`compensate`) or running it (`forward`, past the point of no return) kept failing. */
  stuck?: { step: string; phase: 'forward' | 'compensate' };
  /** Every step in order. */
  steps: SagaStepSummary[];
}

export interface ParityRecord {
  v: 1;
  flow: string;
  correlationId: string;
  outcome: ParityOutcome;
  /** ISO time when the comparator decided. */
  at: string;
  /** The flow's mode when the call was made (`shadow`, `canary:10`, `bus`...). */
  mode: string;
  /** Differences that count (noise excluded); empty unless outcome is `mismatch`. Capped in length. */
  diffs: FieldDiff[];
  /** Paths that differed but are classified as noise for this flow, so excluded from parity. */
  noise?: string[];
  directStatus?: number;
  busStatus?: number;
  /** Direct call latency as the sidecar measured it. */
  directLatencyMs?: number;
  /** Bus path end to end: call event published → bus reply published. */
  busLatencyMs?: number;
  /** Bus lag: call event published → consumed by the shadow side. */
  busLagMs?: number;
  /** The bus side ended in a DLQ (error_bus records). */
  dlq?: boolean;
  /** Error code of the failing side for error_* outcomes. */
  errorCode?: string;
  request?: CallSample;
  /** Size in bytes of the serialized CloudEvent the sidecar published for this call (reports advise slimming large events). */
  eventBytes?: number;
  /** Version of the direct side's code, when it says (reports judge each version pair on its own). */
  directVersion?: string;
  /** Where the call stopped fitting the flow's contract (`contract:`), when it did: contract drift. */
  drift?: string;
  /** Version of the bus side's code: the shadow target's or the bus-native agent's. */
  busVersion?: string;
  /** JSON-RPC calls: the MCP headers (`mcp-method`, `mcp-name`) that disagreed with the call's body. */
  rpcHeaderMismatch?: string[];
  /** Saga flows: how the saga that answered the call ran (the bus reply carries it). */
  saga?: SagaSummary;
}

/** A flow's readiness verdict; reports produce it, flips record it. */
export const VERDICTS = ['READY', 'NOT_READY', 'INSUFFICIENT_DATA'] as const;
export type VerdictStatus = (typeof VERDICTS)[number];

/** The names a criterion has in the `readiness:` config; reasons use the same names. */
export const CRITERIA = ['minSamples', 'minParityLowerBound', 'maxMissingRate', 'maxDlqRate', 'maxBusErrorRate', 'maxBusP99Ms'] as const;
export type CriterionName = (typeof CRITERIA)[number];
