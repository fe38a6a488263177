import type { CriterionName, VerdictStatus } from '../parity/types.js';
import type { FlowMode } from './mode.js';

/** The flip log: one CloudEvent per flip, read in full by every sidecar (no consumer group). */
export const FLIP_TOPIC = 'cutover.control';
export const FLIP_EVENT_TYPE = 'cutover.flip.v1';
export const FLIP_SOURCE = '/cutover/control';

/** One failing or unproven readiness criterion, as the flip recorded it. */
export interface FlipReason {
  criterion: CriterionName;
  status: 'fail' | 'insufficient';
  measured: number | null;
  threshold: number;
  message: string;
}

/**
 * The readiness evidence a flip relied on: the verdict and key figures of the flow's report, small enough
 * to keep in every log entry. `null` on flips that need no evidence (back towards direct, direct → shadow).
 */
export interface FlipReportSummary {
  verdict: VerdictStatus;
  reasons: FlipReason[];
  samples: number;
  /** match / compared; null when nothing was compared. */
  parity: number | null;
  /** Anytime-valid 95% lower bound of parity over the whole history (the verdict judges `changeAt` on when set). */
  parityLowerBound: number | null;
  missingRate: number | null;
  busErrorRate: number | null;
  busP99Ms: number | null;
  /** `all` records of the flow, or only the `canary` records since the flow entered canary (→ bus). */
  basis: 'all' | 'canary';
  /** Records older than this were not counted (canary basis); null for all records. */
  since: string | null;
  generatedAt: string;
  /** When the flow's parity last changed: the verdict judged only the records since. Absent in older records. */
  changeAt?: string | null;
}

/** `data` of a `cutover.flip.v1` event. */
export interface FlipRecord {
  flow: string;
  from: FlowMode;
  to: FlowMode;
  reason: string | null;
  /** `--who`, else `$USER@hostname` of whoever ran the flip. */
  who: string;
  /** ISO time of the flip. */
  at: string;
  /** True when the gate refused and `--force` overrode it. */
  forced: boolean;
  report: FlipReportSummary | null;
  /** Made by the automatic rollback (a flow that turned NOT_READY after moving towards the bus), not by an operator. */
  automatic?: boolean;
}

/** A flip as read back from the log, with where it sits. */
export interface FlipEntry extends FlipRecord {
  /** CloudEvent id: the flip's identity. */
  id: string;
  /** Adapter position in the log. */
  position: string;
}
