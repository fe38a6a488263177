import type { SidecarHandle } from '../../proxy/sidecar.js';
import type { FlowReport, Report } from '../../reports/types.js';
import type { Bus } from '../../src/bus/types.js';
import { CutoverError, describeError, ErrorCodes } from '../../src/errors.js';
import type { Logger } from '../../src/logger.js';
import { decideFlip } from '../../reports/gate.js';
import { appendFlip, currentModes, readFlips } from '../../src/flips/log.js';
import type { FlipEntry, FlipRecord } from '../../src/flips/types.js';
import type { FlowMode } from '../../src/flips/mode.js';

/**
 * The demo's flip step: move a READY flow to the bus, and show the readiness gate refusing a NOT_READY
 * one, with the gate `cutover flip` uses, judging the report the demo just printed.
 */

export interface FlipStepContext {
  /** The readiness report just built: the gate's evidence. */
  report: Report;
  /** The sidecar serving each flow, by flow name. */
  sidecars: ReadonlyMap<string, SidecarHandle>;
  /** The demo's started bus (flips are events on `cutover.control`). */
  bus: Bus;
  /** Prints one line of the demo's output. */
  out: (line: string) => void;
  logger: Logger;
  /** Recorded as the flip's author. */
  who: string;
  /** READY flows to prefer for the flip, best first (default: the first READY flow of the report). */
  prefer?: readonly string[];
  /** The gate and the flip log; default {@link logEngine}. Tests inject one. */
  engine?: FlipsEngine;
  /** How long to wait for the flow's sidecar to apply a flip. Default 2 s (the design promises 1 s). */
  applyTimeoutMs?: number;
  /** Sends some traffic through the flipped flow once its sidecar applied the flip; returns one line to print. */
  afterFlip?: (flow: string) => Promise<string>;
}

export interface FlipStepResult {
  /** The READY flow moved to the bus (or that would be); null when no flow was READY. */
  flipped: string | null;
  /** Whether the flow's sidecar reported the new mode. */
  applied: boolean;
  /** The NOT_READY flow the gate refused (or would refuse); null when none was NOT_READY. */
  refused: string | null;
  /** Engine errors other than the expected refusal. */
  problems: string[];
}

/** One flip as the demo asks for it. */
export interface FlipRequest {
  flow: string;
  /** The flow's current mode. */
  from: string;
  to: string;
  reason: string;
  who: string;
  force: boolean;
  /** The flow's report: the gate's evidence (none needed for a flip back towards direct). */
  report?: FlowReport;
  bus: Bus;
}

/** What the demo needs of the flips engine: a gated flip, recorded in the flip log; refusals throw CUTOVER_FLIP_REFUSED. */
export interface FlipsEngine {
  flip(request: FlipRequest): Promise<void>;
  /** Each flow's current mode by the flip log (flows without flips keep the mode given). */
  modes?(bus: Bus, configured: ReadonlyMap<string, string>): Promise<Map<string, string>>;
}

/** Where the demo's flips are read and written: the flip log on the bus. */
export interface FlipLog {
  append(bus: Bus, record: FlipRecord): Promise<unknown>;
  read(bus: Bus): Promise<FlipEntry[]>;
}

/** Flips judged by the readiness gate and recorded on `cutover.control`, where the sidecars follow them. */
export function logEngine(log: FlipLog = { append: appendFlip, read: readFlips }): FlipsEngine {
  return {
    async modes(bus, configured) {
      return currentModes(await log.read(bus), configured as ReadonlyMap<string, FlowMode>);
    },
    async flip(r) {
      const decision = decideFlip({ flow: r.flow, from: r.from as FlowMode, to: r.to, report: r.report, force: r.force, reason: r.reason });
      if (decision.action !== 'flip') return;
      await log.append(r.bus, { flow: r.flow, from: r.from as FlowMode, to: decision.to, reason: r.reason, who: r.who, at: new Date().toISOString(), forced: decision.forced, report: decision.summary });
    },
  };
}

function pct(value: number | null): string {
  return value === null ? '–' : `${(value * 100).toFixed(2)}%`;
}

function evidence(f: FlowReport): string {
  return `parity ${pct(f.parity.value)} over ${f.parity.compared} compared calls, 95% lower bound ${pct(f.parity.lowerBound)} (needs ${pct(f.criteria.minParityLowerBound)}), ${f.samples} samples (needs ${f.criteria.minSamples})`;
}

/** Waits until `sidecar` serves `flow` in `mode` (a flip applied); false after `timeoutMs`. */
export async function waitForMode(sidecar: SidecarHandle | undefined, flow: string, mode: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (sidecar?.flows.get(flow)?.mode === mode) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the flip step; never throws (engine failures are printed and returned as problems). */
export async function runFlipStep(ctx: FlipStepContext): Promise<FlipStepResult> {
  const { report, out } = ctx;
  const ready = report.flows.filter((f) => f.verdict.status === 'READY');
  const preferred = (ctx.prefer ?? []).map((name) => ready.find((f) => f.flow === name)).find((f) => f !== undefined);
  const toFlip = preferred ?? ready[0];
  const toRefuse = report.flows.find((f) => f.verdict.status === 'NOT_READY');
  const result: FlipStepResult = { flipped: toFlip?.flow ?? null, applied: false, refused: toRefuse?.flow ?? null, problems: [] };

  out('Flip step: move a READY flow to the bus; the gate refuses a NOT_READY one');
  const engine = ctx.engine ?? logEngine();
  const request = (f: FlowReport, reason: string): FlipRequest => ({ flow: f.flow, from: f.mode, to: 'bus', reason, who: ctx.who, force: false, report: f, bus: ctx.bus });
  if (toFlip) {
    out(`  $ cutover flip ${toFlip.flow} --to bus --reason "readiness report READY"`);
    try {
      await engine.flip(request(toFlip, 'readiness report READY'));
      out(`    flipped ${toFlip.flow} ${toFlip.mode} -> bus, recorded on cutover.control (${evidence(toFlip)})`);
      const sidecar = ctx.sidecars.get(toFlip.flow);
      result.applied = await waitForMode(sidecar, toFlip.flow, 'bus', ctx.applyTimeoutMs ?? 2_000);
      if (result.applied) {
        out(`    the ${sidecar!.config.agent} sidecar now serves ${toFlip.flow} over the bus`);
        if (ctx.afterFlip) out(`    ${await ctx.afterFlip(toFlip.flow)}`);
      } else {
        const who = sidecar ? `the ${sidecar.config.agent} sidecar` : 'no sidecar of this flow';
        out(`    ${who} did not report mode bus within ${((ctx.applyTimeoutMs ?? 2_000) / 1000).toFixed(1)} s (is it following the flip log on this bus?)`);
      }
    } catch (err) {
      const { code, message } = describeError(err);
      result.problems.push(`${code}: ${message}`);
      out(`    the flip failed: ${code}: ${message}`);
    }
  }
  if (toRefuse) {
    out(`  $ cutover flip ${toRefuse.flow} --to bus`);
    try {
      await engine.flip(request(toRefuse, 'cutover demo: showing the gate'));
      result.problems.push(`the gate let NOT_READY ${toRefuse.flow} through`);
      out(`    UNEXPECTED: the gate let ${toRefuse.flow} through although it is NOT_READY`);
    } catch (err) {
      const { code, message } = describeError(err);
      if (code === ErrorCodes.FLIP_REFUSED) {
        const [first, ...rest] = message.split('\n');
        out(`    refused (${code}): ${first}`);
        for (const line of rest) out(`    ${line}`);
      } else {
        result.problems.push(`${code}: ${message}`);
        out(`    the flip failed for another reason: ${code}: ${message}`);
      }
    }
  }
  return result;
}

/**
 * Puts `flows` back in their configured mode in the flip log, with flips back towards direct (never gated).
 * For buses whose `cutover.control` outlives a run (Kafka): a flip an earlier run made would otherwise be
 * applied by this run's sidecars at boot. Returns the flows it reset.
 */
export async function resetFlowModes(options: {
  bus: Bus;
  flows: ReadonlyArray<{ name: string; mode: string }>;
  who: string;
  reason: string;
  engine?: FlipsEngine;
  /** The mode of a flow the log has no flip for (the sidecars' config); default the mode asked for. */
  unflipped?: string;
}): Promise<string[]> {
  const engine = options.engine ?? logEngine();
  if (!engine.modes) return [];
  const configured = new Map(options.flows.map((f) => [f.name, f.mode]));
  const current = await engine.modes(options.bus, options.unflipped === undefined ? configured : new Map(options.flows.map((f) => [f.name, options.unflipped!])));
  const reset: string[] = [];
  for (const [flow, mode] of configured) {
    const now = current.get(flow) ?? mode;
    if (now === mode) continue;
    await engine.flip({ flow, from: now, to: mode, reason: options.reason, who: options.who, force: false, bus: options.bus });
    reset.push(flow);
  }
  return reset;
}
