import type { Bus } from '../src/bus/types.js';
import { ControlError, ErrorCodes } from '../src/errors.js';
import type { FlowConfig } from '../src/config/flow.js';
import { silentLogger, type Logger } from '../src/logger.js';
import type { ParityRecord } from '../src/parity/types.js';
import type { FlowReadinessConfig, ReadinessConfig } from '../src/config/readiness.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../reports/report.js';
import type { FlowReport, Report } from '../reports/types.js';
import { decideFlip, isGated, parseTargetMode, usesCanaryEvidence, type FlipDecision } from '../reports/gate.js';
import type { Signer } from '../src/events/signature.js';
import type { FlipRejection } from '../src/flips/judge.js';
import { appendFlip, canarySince, currentModes, defaultWho, readFlipLog, readFlips } from '../src/flips/log.js';
import type { FlowMode } from '../src/flips/mode.js';
import { whyNotOperator, type FlipPolicy } from '../src/flips/policy.js';
import type { FlipEntry, FlipRecord } from '../src/flips/types.js';

/** A configured flow with its optional `readiness:` overrides. */
export type ControlFlow = FlowConfig & { readiness?: FlowReadinessConfig };

/** What flips, status and history need: the bus with the log and parity records, and the config's flows. */
export interface ControlContext {
  bus: Bus;
  flows: readonly ControlFlow[];
  readiness: ReadinessConfig;
  /** Sidecar URL for curls in reports. */
  baseUrl?: string;
  now?: () => Date;
  logger?: Logger;
  /** Who may flip (the config's `trust:`): modes are read as followers judge the log, and a flip this process cannot sign as an operator is refused. */
  policy?: FlipPolicy | undefined;
  /** The key flips are signed with (the CLI's `identity:`, the admin API's operator key). */
  signer?: Signer | undefined;
}

/** A record of `cutover history`: every flip record of the flow, with who verifiably signed it and, when followers ignore it, why. */
export type HistoryFlip = FlipEntry & { signer?: string; rejected?: FlipRejection };

export interface FlipInput {
  flow: string;
  to: string;
  reason?: string | undefined;
  force?: boolean;
  /** Default `$USER@hostname`. */
  who?: string;
}

export type FlipResult =
  | { action: 'noop'; flow: string; mode: FlowMode }
  | { action: 'flip'; record: FlipRecord & { id: string }; decision: FlipDecision };

function flowOf(ctx: ControlContext, name: string): ControlFlow {
  const flow = ctx.flows.find((f) => f.name === name);
  if (!flow) {
    throw new ControlError(ErrorCodes.FLOW_UNKNOWN, `unknown flow ${JSON.stringify(name)} (the config declares ${ctx.flows.map((f) => f.name).join(', ') || 'no flows'})`, { status: 404 });
  }
  return flow;
}

function configModes(ctx: ControlContext): Map<string, FlowMode> {
  return new Map(ctx.flows.map((f) => [f.name, f.mode]));
}

/** Parity records of one flow made in a canary mode, for the `canary → bus` gate. */
async function* canaryRecords(records: AsyncIterable<ParityRecord>, flow: string): AsyncGenerator<ParityRecord> {
  for await (const r of records) {
    const rec = r as Partial<ParityRecord> | null;
    if (rec?.flow === flow && typeof rec.mode === 'string' && rec.mode.startsWith('canary:')) yield r;
  }
}

/**
 * The report a flip of `flow` is judged on: every record of the flow, or for `canary → bus` only the
 * records made in canary modes since the flow entered canary (the canary's own evidence).
 */
export async function gateReport(ctx: ControlContext, flow: ControlFlow, from: FlowMode, to: FlowMode, flips: readonly FlipEntry[]): Promise<{ report: FlowReport; basis: { kind: 'all' | 'canary'; since: string | null; generatedAt: string } }> {
  const now = (ctx.now ?? (() => new Date()))();
  const canary = usesCanaryEvidence(from, to);
  const since = canary ? canarySince(flips, flow.name) : null;
  const [reportFlow] = reportFlowsFromConfig([flow], new Map([[flow.name, from]]));
  const records = parityRecordsFromBus(ctx.bus);
  const report = await buildReport(canary ? canaryRecords(records, flow.name) : records, {
    flows: [reportFlow!],
    readiness: ctx.readiness,
    since: since ? new Date(since) : null,
    now,
    baseUrl: ctx.baseUrl,
    logger: ctx.logger,
  });
  return { report: report.flows[0]!, basis: { kind: canary ? 'canary' : 'all', since, generatedAt: now.toISOString() } };
}

/** The flips followers apply (all flows', or `flow`'s), read the way they judge the log. */
export function appliedFlips(ctx: ControlContext, flow?: string): Promise<FlipEntry[]> {
  return readFlips(ctx.bus, { flow, policy: ctx.policy, configModes: configModes(ctx) });
}

/**
 * Flips one flow: reads its current mode from the log, asks the gate (building the report only when the
 * flip is gated, so a rollback never waits on reading the parity records), and appends the flip, signed
 * with `ctx.signer`. Throws ControlError: CUTOVER_FLOW_UNKNOWN, CUTOVER_USAGE, CUTOVER_FLIP_REFUSED, and
 * CUTOVER_FLIP_NOT_OPERATOR when followers would ignore a flip signed by this process.
 */
export async function flipFlow(ctx: ControlContext, input: FlipInput): Promise<FlipResult> {
  const logger = (ctx.logger ?? silentLogger()).child({ component: 'flip', flow: input.flow });
  const flow = flowOf(ctx, input.flow);
  const to = parseTargetMode(input.to);
  const flips = await appliedFlips(ctx, flow.name);
  const from = flips.at(-1)?.to ?? flow.mode;
  const notOperator = to === from ? undefined : whyNotOperator(ctx.policy, ctx.signer);
  if (notOperator) {
    throw new ControlError(ErrorCodes.FLIP_NOT_OPERATOR, `flip ${flow.name} ${from} -> ${to} not written: ${notOperator} (see docs/security.md, Control plane)`, { status: 403 });
  }
  let evidence: Awaited<ReturnType<typeof gateReport>> | undefined;
  if (to !== from && isGated(from, to)) evidence = await gateReport(ctx, flow, from, to, flips);
  const decision = decideFlip({ flow: flow.name, from, to, report: evidence?.report, basis: evidence?.basis, force: input.force, reason: input.reason });
  if (decision.action === 'noop') return { action: 'noop', flow: flow.name, mode: from };
  const record: FlipRecord = {
    flow: flow.name,
    from,
    to: decision.to,
    reason: input.reason?.trim() || null,
    who: input.who?.trim() || defaultWho(),
    at: (ctx.now ?? (() => new Date()))().toISOString(),
    forced: decision.forced,
    report: decision.summary,
  };
  const published = await appendFlip(ctx.bus, record, { signer: ctx.signer });
  logger.info({ from, to: record.to, who: record.who, forced: record.forced, verdict: record.report?.verdict ?? null, flipId: published.id }, 'flip recorded');
  return { action: 'flip', record: published, decision };
}

/**
 * The flow's flip records, oldest first: those followers apply, and those they ignore (marked `rejected`
 * with the reason: unsigned, forged, not an operator, towards the bus without evidence).
 */
export async function flowHistory(ctx: ControlContext, name: string): Promise<HistoryFlip[]> {
  const flow = flowOf(ctx, name);
  const judged = await readFlipLog(ctx.bus, { flow: flow.name, policy: ctx.policy, configModes: configModes(ctx) });
  return judged.map((j) => ({ ...j.flip, ...(j.signer !== null ? { signer: j.signer } : {}), ...(j.rejection ? { rejected: j.rejection } : {}) }));
}

export interface FlowStatus {
  flow: string;
  mode: FlowMode;
  report: FlowReport;
  lastFlip: FlipEntry | null;
}

/** Every configured flow: current mode from the log, and its readiness report over all records. */
export async function flowStatus(ctx: ControlContext): Promise<{ report: Report; flows: FlowStatus[] }> {
  const flips = await appliedFlips(ctx);
  const modes = currentModes(flips, configModes(ctx));
  const reportFlows = reportFlowsFromConfig(ctx.flows, modes, flips);
  const report = await buildReport(parityRecordsFromBus(ctx.bus), { flows: reportFlows, readiness: ctx.readiness, now: (ctx.now ?? (() => new Date()))(), baseUrl: ctx.baseUrl, logger: ctx.logger });
  const flows = report.flows.map((r) => ({
    flow: r.flow,
    mode: modes.get(r.flow)!,
    report: r,
    lastFlip: flips.filter((f) => f.flow === r.flow).at(-1) ?? null,
  }));
  return { report, flows };
}
