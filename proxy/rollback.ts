import { createHash } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { Bus, ReadStream } from '../src/bus/types.js';
import type { FlowConfig } from '../src/config/flow.js';
import { READINESS_DEFAULTS, resolveCriteria, type FlowReadinessConfig, type ReadinessConfig } from '../src/config/readiness.js';
import { createFlipFollower, type FlipFollower } from '../src/flips/follower.js';
import { appendFlip } from '../src/flips/log.js';
import { isTowardsBus, parseMode, type FlowMode } from '../src/flips/mode.js';
import type { FlipPolicy } from '../src/flips/policy.js';
import type { FlipEntry } from '../src/flips/types.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { PARITY_TOPIC, type ParityRecord } from '../src/parity/types.js';
import { DEFAULT_LIMITS, recordTime } from '../reports/aggregate.js';
import { summarizeReport } from '../reports/gate.js';
import { judgeFlow } from '../reports/report.js';
import type { FlowReport } from '../reports/types.js';
import { VersionedFlow } from '../reports/versions.js';

/** Who the automatic rollback's flips are by, in the flip log and `cutover history`. */
export const ROLLBACK_WHO = 'cutover/auto-rollback';

export type RollbackFlow = Pick<FlowConfig, 'name' | 'mode' | 'rollback' | 'topic'> & { match?: { method?: string }; readiness?: FlowReadinessConfig };

export interface RollbackWatcherOptions {
  bus: Bus;
  flows: readonly RollbackFlow[];
  readiness?: ReadinessConfig;
  logger?: Logger;
  registry?: Registry;
  /** How often the evidence of watched flows is judged. Default 1 s. */
  intervalMs?: number;
  now?: () => Date;
  /** Called after each automatic flip or alert (tests, metrics). */
  onAction?: (action: RollbackAction) => void;
  /** Who may flip (the config's `trust:`): the watch follows the flips the sidecars apply, nothing else. */
  policy?: FlipPolicy | undefined;
}

export interface RollbackAction {
  flow: string;
  action: 'rolled_back' | 'alerted';
  from: FlowMode;
  to: FlowMode;
  report: FlowReport;
}

interface Watched {
  flow: RollbackFlow;
  mode: FlowMode;
  /** When the flow entered its current run of modes towards the bus (canary or bus); evidence counts from here. */
  sinceMs: number;
  /** The mode it came from: where a rollback takes it. */
  safe: FlowMode;
  evidence: VersionedFlow;
  /** Already acted on this run (one rollback or alert per run). */
  acted: boolean;
}

/**
 * After a flip towards the bus the evidence keeps coming: canary calls are compared, and bus mode with
 * `verify` calls the direct path too. This watcher follows the flip log and the parity records and judges
 * each flow in canary or bus on the records since it entered that run, with the same rule as the report
 * and the gate. When the verdict turns NOT_READY it rolls the flow back to the mode it came from (an
 * automatic flip on the log, which every sidecar applies) or only alerts, per the flow's `rollback`.
 *
 * Every replica may run one: the rollback flip of a run has an id derived from the flow and the run's
 * start, so replicas deciding together write the same flip, and a follower applying it twice changes nothing.
 */
export class RollbackWatcher {
  private readonly opts: RollbackWatcherOptions;
  private readonly log: Logger;
  private readonly watched = new Map<string, Watched>();
  private readonly configured: ReadonlyMap<string, RollbackFlow>;
  /** Flows some flip has moved (the others are in their configured mode). */
  private readonly flipped = new Set<string>();
  private follower: FlipFollower | undefined;
  private parity: ReadStream | undefined;
  private reading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private judging = false;
  private closed = false;
  private readonly actions: Counter<'flow' | 'action'> | undefined;

  constructor(options: RollbackWatcherOptions) {
    this.opts = options;
    this.log = (options.logger ?? silentLogger()).child({ component: 'rollback' });
    this.configured = new Map(options.flows.filter((f) => f.rollback !== 'off').map((f) => [f.name, f]));
    this.actions = options.registry
      ? (options.registry.getSingleMetric('cutover_sidecar_rollbacks_total') as Counter<'flow' | 'action'> | undefined) ??
        new Counter({ name: 'cutover_sidecar_rollbacks_total', help: 'Flows that turned NOT_READY after moving towards the bus: rolled back automatically, or alerted only', labelNames: ['flow', 'action'], registers: [options.registry] })
      : undefined;
  }

  async start(): Promise<void> {
    if (this.configured.size === 0) return;
    this.follower = createFlipFollower({
      bus: this.opts.bus,
      flows: { get: (name) => this.configured.get(name), setMode: () => undefined },
      onApplied: (flip) => this.onFlip(flip),
      logger: this.log,
      policy: this.opts.policy,
      configModes: new Map(this.opts.flows.map((f) => [f.name, f.mode])),
    });
    await this.follower.start();
    // A flow configured in canary or bus that no flip has moved: its run began no later than now.
    const now = Date.now();
    for (const flow of this.configured.values()) {
      if (this.flipped.has(flow.name)) continue;
      const kind = parseMode(flow.mode)?.kind;
      if (kind === 'canary' || kind === 'bus') this.watch(flow, flow.mode, now, 'shadow');
    }
    this.timer = setInterval(() => void this.judge(), this.opts.intervalMs ?? 1_000);
    this.timer.unref();
  }

  /** The parity records are read only once some flow is in a run worth watching (most sidecars never are). */
  private readParityOnce(): void {
    if (this.parity || this.closed) return;
    this.parity = this.opts.bus.read(PARITY_TOPIC, { from: 'start', follow: true });
    this.reading = this.readParity(this.parity);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.parity?.close();
    await this.reading?.catch(() => undefined);
    await this.follower?.close();
  }

  /** Flows being watched now, with the mode they are in and the records of the run read so far (tests, admin). */
  watching(): Array<{ flow: string; mode: FlowMode; since: string; records: number }> {
    return [...this.watched.values()].map((w) => ({
      flow: w.flow.name,
      mode: w.mode,
      since: new Date(w.sinceMs).toISOString(),
      records: w.evidence.byRecency().reduce((n, p) => n + p.aggregate.samples, 0),
    }));
  }

  /** Judges the watched flows now instead of at the next interval. */
  check(): Promise<void> {
    return this.judge();
  }

  private onFlip(flip: FlipEntry): void {
    const flow = this.configured.get(flip.flow);
    if (!flow) return;
    this.flipped.add(flip.flow);
    const kind = parseMode(flip.to)?.kind;
    const runs = kind === 'canary' || kind === 'bus';
    const current = this.watched.get(flip.flow);
    if (!runs) {
      this.watched.delete(flip.flow);
      return;
    }
    // canary:10 → canary:50 → bus is one run: the evidence of the run keeps counting.
    if (current && isTowardsBus(current.mode, flip.to)) {
      current.mode = flip.to;
      return;
    }
    this.watch(flow, flip.to, Date.parse(flip.at), isTowardsBus(flip.from, flip.to) ? flip.from : 'shadow');
  }

  private watch(flow: RollbackFlow, mode: FlowMode, sinceMs: number, safe: FlowMode): void {
    this.readParityOnce();
    this.watched.set(flow.name, {
      flow,
      mode,
      sinceMs,
      safe,
      evidence: new VersionedFlow({ name: flow.name, mode, ...(flow.match?.method ? { method: flow.match.method } : {}) }, DEFAULT_LIMITS),
      acted: false,
    });
  }

  private async readParity(stream: ReadStream): Promise<void> {
    try {
      for await (const delivery of stream) {
        const record = delivery.event.data as ParityRecord;
        const atMs = recordTime(record);
        if (atMs < 0) continue;
        const w = this.watched.get(record.flow);
        if (w && atMs >= w.sinceMs) w.evidence.add(record, atMs);
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err }, 'reading the parity records failed; the rollback watch stopped');
    }
  }

  private async judge(): Promise<void> {
    if (this.judging || this.closed) return;
    this.judging = true;
    try {
      for (const w of this.watched.values()) {
        if (w.acted) continue;
        const criteria = resolveCriteria(this.opts.readiness ?? READINESS_DEFAULTS, w.flow.readiness);
        const report = judgeFlow(w.evidence, criteria, { baseUrl: 'http://127.0.0.1:15000', topic: w.flow.topic });
        if (report.verdict.status !== 'NOT_READY') continue;
        w.acted = true;
        await this.act(w, report);
      }
    } finally {
      this.judging = false;
    }
  }

  private async act(w: Watched, report: FlowReport): Promise<void> {
    const reasons = report.verdict.reasons.map((r) => r.message).join('; ');
    const action: RollbackAction = { flow: w.flow.name, action: w.flow.rollback === 'auto' ? 'rolled_back' : 'alerted', from: w.mode, to: w.safe, report };
    this.actions?.inc({ flow: w.flow.name, action: action.action });
    if (w.flow.rollback === 'alert') {
      this.log.error({ flow: w.flow.name, mode: w.mode, reasons }, `flow turned NOT_READY in ${w.mode}; rollback is set to alert only`);
      this.opts.onAction?.(action);
      return;
    }
    const now = (this.opts.now ?? (() => new Date()))();
    const since = new Date(w.sinceMs).toISOString();
    try {
      await appendFlip(
        this.opts.bus,
        {
          flow: w.flow.name,
          from: w.mode,
          to: w.safe,
          reason: `automatic rollback: NOT_READY in ${w.mode} since ${since}: ${reasons}`.slice(0, 2_000),
          who: ROLLBACK_WHO,
          at: now.toISOString(),
          forced: false,
          automatic: true,
          report: summarizeReport(report, { kind: 'canary', since, generatedAt: now.toISOString() }),
        },
        { id: rollbackId(w.flow.name, since) },
      );
      this.log.error({ flow: w.flow.name, from: w.mode, to: w.safe, reasons }, 'flow turned NOT_READY; rolled back automatically');
      this.opts.onAction?.(action);
    } catch (err) {
      // Try again at the next look: the evidence is still NOT_READY.
      w.acted = false;
      this.log.error({ err, flow: w.flow.name }, 'could not write the automatic rollback to the flip log; retrying');
    }
  }
}

/** The same id from every replica for one run's rollback: the flow and when the run began. */
function rollbackId(flow: string, since: string): string {
  const h = createHash('sha256').update(`rollback\u0000${flow}\u0000${since}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
