import type { Bus } from '../bus/types.js';
import { ControlError, ErrorCodes } from '../errors.js';
import type { FlowConfig } from '../flows/schema.js';
import { silentLogger, type Logger } from '../logger.js';
import type { ParityRecord } from '../parity/types.js';
import type { FlowReadinessConfig, ReadinessConfig } from '../../reports/options.js';
import { buildReport, parityRecordsFromBus, reportFlowsFromConfig } from '../../reports/report.js';
import type { FlowReport, Report } from '../../reports/types.js';
import { decideFlip, isGated, parseTargetMode, usesCanaryEvidence, type FlipDecision } from './gate.js';
import { appendFlip, canarySince, currentModes, defaultWho, readFlips } from './log.js';
import type { FlowMode } from './mode.js';
import type { FlipEntry, FlipRecord } from './types.js';

/** A configured flow with its optional `readiness:` overrides. */
export type ControlFlow = FlowConfig & { readiness?: FlowReadinessConfig };

/** What flips, status and history need: the bus with the log and parity records, and the config's flows. */
export interface ControlContext {
  bus: Bus;
  flows: readonly ControlFlow[];
  readiness: ReadinessConfig;
  /** `readiness:` overrides loaded apart from the flow objects (reports/cli loadReportConfig). */
  flowReadiness?: ReadonlyMap<string, FlowReadinessConfig>;
  /** Sidecar URL for curls in reports. */
  baseUrl?: string;
  now?: () => Date;
  logger?: Logger;
}

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
  const [reportFlow] = await reportFlowsFromConfig([flow], () => from, ctx.flowReadiness);
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

/**
 * Flips one flow: reads its current mode from the log, asks the gate (building the report only when the
 * flip is gated, so a rollback never waits on reading the parity records), and appends the flip.
 * Throws ControlError: CUTOVER_FLOW_UNKNOWN, CUTOVER_USAGE, CUTOVER_FLIP_REFUSED.
 */
export async function flipFlow(ctx: ControlContext, input: FlipInput): Promise<FlipResult> {
  const logger = (ctx.logger ?? silentLogger()).child({ component: 'flip', flow: input.flow });
  const flow = flowOf(ctx, input.flow);
  const to = parseTargetMode(input.to);
  const flips = await readFlips(ctx.bus, { flow: flow.name });
  const from = flips.at(-1)?.to ?? flow.mode;
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
  const published = await appendFlip(ctx.bus, record);
  logger.info({ from, to: record.to, who: record.who, forced: record.forced, verdict: record.report?.verdict ?? null, flipId: published.id }, 'flip recorded');
  return { action: 'flip', record: published, decision };
}

/** The flow's flips, oldest first. */
export async function flowHistory(ctx: ControlContext, name: string): Promise<FlipEntry[]> {
  const flow = flowOf(ctx, name);
  return readFlips(ctx.bus, { flow: flow.name });
}

export interface FlowStatus {
  flow: string;
  mode: FlowMode;
  report: FlowReport;
  lastFlip: FlipEntry | null;
}

/** Every configured flow: current mode from the log, and its readiness report over all records. */
export async function flowStatus(ctx: ControlContext): Promise<{ report: Report; flows: FlowStatus[] }> {
  const flips = await readFlips(ctx.bus);
  const modes = currentModes(flips, configModes(ctx));
  const reportFlows = await reportFlowsFromConfig(ctx.flows, (f) => modes.get(f.name) ?? f.mode, ctx.flowReadiness);
  const report = await buildReport(parityRecordsFromBus(ctx.bus), { flows: reportFlows, readiness: ctx.readiness, now: (ctx.now ?? (() => new Date()))(), baseUrl: ctx.baseUrl, logger: ctx.logger });
  const flows = report.flows.map((r) => ({
    flow: r.flow,
    mode: modes.get(r.flow)!,
    report: r,
    lastFlip: flips.filter((f) => f.flow === r.flow).at(-1) ?? null,
  }));
  return { report, flows };
}

/** Current modes of the configured flows from the log (for `cutover report`'s modeOf). */
export async function modesFromLog(bus: Bus, flows: readonly FlowConfig[]): Promise<Map<string, FlowMode>> {
  return currentModes(await readFlips(bus), new Map(flows.map((f) => [f.name, f.mode])));
}
