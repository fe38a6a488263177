import { ControlError, ErrorCodes } from '../src/errors.js';
import type { FlowReport } from './types.js';
import { FLOW_MODE_HELP, isGated, parseMode, type FlowMode } from '../src/flips/mode.js';
import type { FlipReportSummary } from '../src/flips/types.js';

export interface FlipRequest {
  flow: string;
  from: FlowMode;
  /** As typed by the user: validated here. */
  to: string;
  /** The flow's report (for `→ bus` from a canary: built from the canary's own records). Needed only for gated flips. */
  report?: FlowReport | undefined;
  force?: boolean;
  reason?: string | undefined;
  /** How `report` was built, recorded in the summary. */
  basis?: { kind: 'all' | 'canary'; since: string | null; generatedAt: string };
}

/** What the gate decided for an allowed flip (refusals throw). */
export interface FlipDecision {
  /** `noop`: the flow is already in that mode; nothing is logged. */
  action: 'flip' | 'noop';
  to: FlowMode;
  /** True when the readiness verdict was checked (towards the bus, other than direct → shadow). */
  gated: boolean;
  /** True when the gate refused and `force` overrode it. */
  forced: boolean;
  /** Evidence to record; null when the flip needed none. */
  summary: FlipReportSummary | null;
}

/** Parses a mode typed by a user; CUTOVER_USAGE naming the allowed forms otherwise. */
export function parseTargetMode(value: string): FlowMode {
  if (!parseMode(value)) throw new ControlError(ErrorCodes.USAGE, `invalid mode ${JSON.stringify(value)}: ${FLOW_MODE_HELP}`, { status: 400 });
  return value as FlowMode;
}

/** Followers apply the same rule to every record they read (src/flips/judge.ts). */
export { isGated };

/** True when the `to: bus` gate should use the canary's own records (the flow is in a canary now). */
export function usesCanaryEvidence(from: FlowMode, to: FlowMode): boolean {
  return to === 'bus' && from.startsWith('canary:');
}

/** The report figures a flip records. */
export function summarizeReport(report: FlowReport, basis: FlipRequest['basis'] = { kind: 'all', since: null, generatedAt: new Date().toISOString() }): FlipReportSummary {
  return {
    verdict: report.verdict.status,
    reasons: report.verdict.reasons.map((r) => ({ criterion: r.criterion, status: r.status, measured: r.measured, threshold: r.threshold, message: r.message })),
    samples: report.samples,
    parity: report.parity.value,
    parityLowerBound: report.parity.lowerBound,
    missingRate: report.missing.rate,
    busErrorRate: report.errorBus.rate,
    busP99Ms: report.latency.bus?.p99 ?? null,
    basis: basis.kind,
    since: basis.since,
    generatedAt: basis.generatedAt,
    changeAt: report.change?.at ?? null,
  };
}

/**
 * The readiness gate. Rules, in order:
 * - `to` must be a mode (CUTOVER_USAGE); `force` needs a non-empty reason (CUTOVER_USAGE).
 * - Same mode: a no-op.
 * - Back towards direct: always allowed (rollback must never wait for evidence).
 * - direct → shadow: always allowed; shadowing is how evidence is collected.
 * - Any other flip towards the bus needs the flow's verdict READY. Otherwise CUTOVER_FLIP_REFUSED listing
 *   every failing criterion with its measured value and threshold — unless `force`, which lets it through
 *   and marks it `forced`.
 */
export function decideFlip(request: FlipRequest): FlipDecision {
  const to = parseTargetMode(request.to);
  const reason = request.reason?.trim() ?? '';
  if (request.force && reason === '') {
    throw new ControlError(ErrorCodes.USAGE, '--force needs --reason TEXT: a forced flip must say why (it is recorded in the flip log)', { status: 400 });
  }
  const summary = request.report ? summarizeReport(request.report, request.basis) : null;
  if (to === request.from) return { action: 'noop', to, gated: false, forced: false, summary: null };
  if (!isGated(request.from, to)) return { action: 'flip', to, gated: false, forced: false, summary };
  if (summary?.verdict === 'READY') return { action: 'flip', to, gated: true, forced: false, summary };
  if (request.force) return { action: 'flip', to, gated: true, forced: true, summary };
  throw refusal(request.flow, request.from, to, summary);
}

function refusal(flow: string, from: FlowMode, to: FlowMode, summary: FlipReportSummary | null): ControlError {
  const lines = summary
    ? summary.reasons.map((r) => `  - ${r.criterion} (${r.status}): ${r.message} [measured ${r.measured === null ? 'n/a' : formatNumber(r.measured)}, threshold ${formatNumber(r.threshold)}]`)
    : ['  - no readiness report for this flow'];
  const basis =
    (summary?.basis === 'canary' ? ` on the canary's own records${summary.since ? ` since ${summary.since}` : ''}` : '') +
    (summary?.changeAt ? ` since its parity changed at ${summary.changeAt}` : '');
  const message = `flip ${flow} ${from} -> ${to} refused: verdict ${summary?.verdict ?? 'unknown'}${basis}\n${lines.join('\n')}\n(use --force --reason TEXT to override; the log records it)`;
  return new ControlError(ErrorCodes.FLIP_REFUSED, message, { status: 409, details: { flow, from, to, verdict: summary?.verdict ?? null, reasons: summary?.reasons ?? [] } });
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Math.round(n * 10_000) / 10_000);
}
