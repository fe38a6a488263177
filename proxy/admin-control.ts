import type { Bus } from '../src/bus/types.js';
import { BusError, ErrorCodes } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/logger.js';
import type { ReadinessConfig } from '../src/config/readiness.js';
import { renderHtml, type HtmlFlip } from '../reports/render-html.js';
import { renderJson } from '../reports/render-json.js';
import type { Signer } from '../src/events/signature.js';
import { appliedFlips, flipFlow, flowHistory, flowStatus, type ControlFlow, type FlipInput, type FlipResult, type HistoryFlip } from './flip-control.js';
import type { FlowModeTarget } from '../src/flips/follower.js';
import type { FlipPolicy } from '../src/flips/policy.js';

/** What the admin API calls for flips, history and the report. */
export interface AdminControl {
  flip(input: FlipInput): Promise<FlipResult>;
  history(flow: string): Promise<HistoryFlip[]>;
  /** `GET /report` (JSON) and `GET /report.html` bodies, the HTML with each flow's flips. */
  report(): Promise<{ json: string; html: string }>;
}

export interface AdminControlOptions {
  /** The sidecar's bus; undefined while it is unreachable (503). */
  bus: () => Bus | undefined;
  flows: readonly ControlFlow[];
  readiness: ReadinessConfig;
  baseUrl?: string;
  /** Applied at once on this sidecar after a flip is logged (the follower applies it again: same mode). */
  table?: FlowModeTarget;
  logger?: Logger;
  /** Who may flip (the config's `trust:`). */
  policy?: FlipPolicy | undefined;
  /** The key flips through the admin API are signed with: `admin.operatorIdentity`, else the sidecar's `identity:`. */
  signer?: Signer | undefined;
}

/** The admin API's control plane, over the sidecar's own bus and config. */
export function createAdminControl(options: AdminControlOptions): AdminControl {
  const logger = options.logger ?? silentLogger();
  const ctx = () => {
    const bus = options.bus();
    if (!bus) throw new BusError(ErrorCodes.BUS_UNAVAILABLE, 'the bus is not reachable yet: flips are recorded on it, so none can be made now', { retriable: true, status: 503 });
    return { bus, flows: options.flows, readiness: options.readiness, baseUrl: options.baseUrl, logger, policy: options.policy, signer: options.signer };
  };
  return {
    async flip(input) {
      const result = await flipFlow(ctx(), input);
      // The log is the truth and the follower applies it; applying here too makes a rollback through
      // this sidecar take effect before the HTTP answer, not up to one read cycle later.
      if (result.action === 'flip' && options.table?.get(result.record.flow) !== undefined) options.table.setMode(result.record.flow, result.record.to);
      return result;
    },
    history: (flow) => flowHistory(ctx(), flow),
    async report() {
      const c = ctx();
      const { report } = await flowStatus(c);
      const flips = new Map<string, HtmlFlip[]>();
      for (const f of await appliedFlips(c)) {
        if (!flips.has(f.flow)) flips.set(f.flow, []);
        flips.get(f.flow)!.push({ at: f.at, from: f.from, to: f.to, who: f.who, reason: f.reason, forced: f.forced, verdict: f.report?.verdict ?? null });
      }
      for (const f of options.flows) if (!flips.has(f.name)) flips.set(f.name, []);
      return { json: renderJson(report), html: renderHtml(report, { flips }) };
    },
  };
}
