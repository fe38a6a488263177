import { compileKey, type KeyExtractor } from '../src/flows/key.js';
import { compileFlows, type FlowMatch, type FlowMatcher } from '../src/flows/match.js';
import type { FlowConfig, FlowMode } from '../src/config/flow.js';
import { CutoverError, ErrorCodes } from '../src/errors.js';
import type { SkipReason } from './metrics.js';

/** Counters per flow, served by the admin API's `/flows`. */
export interface FlowCounters {
  requests: number;
  /** Call events handed to the outbox. */
  events: number;
  /** Direct observations handed to the outbox. */
  observations: number;
  upstreamErrors: number;
  keyMissing: number;
  /** Calls answered by the bus path (a reply, or an event held by the bus or spool). */
  busServed: number;
  /** Bus-path calls served directly because of `fallback: direct`. */
  fallbacks: number;
  /** Bus-path calls whose reply did not come within the flow's `timeout`. */
  replyTimeouts: number;
  /** Bus-path calls the bus (or, for events, the spool) could not take. */
  busUnavailable: number;
  skipped: Partial<Record<SkipReason, number>>;
}

/** A flow as the running sidecar holds it: config, compiled key, current mode and counters. */
export interface FlowEntry {
  readonly config: FlowConfig;
  readonly key: KeyExtractor | undefined;
  /** Current mode; flips change it while running. */
  mode: FlowMode;
  readonly counters: FlowCounters;
}

/** The configured flows, matched per request. */
export class FlowTable {
  readonly entries: readonly FlowEntry[];
  private readonly matcher: FlowMatcher;
  private readonly byName: Map<string, FlowEntry>;

  constructor(flows: readonly FlowConfig[]) {
    this.entries = flows.map((config) => ({
      config,
      key: config.key ? compileKey(config.key) : undefined,
      mode: config.mode,
      counters: { requests: 0, events: 0, observations: 0, upstreamErrors: 0, keyMissing: 0, busServed: 0, fallbacks: 0, replyTimeouts: 0, busUnavailable: 0, skipped: {} },
    }));
    this.byName = new Map(this.entries.map((e) => [e.config.name, e]));
    this.matcher = compileFlows(flows);
  }

  match(method: string, path: string): { entry: FlowEntry; params: Record<string, string> } | undefined {
    const m: FlowMatch | undefined = this.matcher.match(method, path);
    if (!m) return undefined;
    return { entry: this.byName.get(m.flow.name)!, params: m.params };
  }

  get(name: string): FlowEntry | undefined {
    return this.byName.get(name);
  }

  /** Changes a flow's mode at once for every later request. Throws CUTOVER_FLOW_UNKNOWN for unknown names. */
  setMode(name: string, mode: FlowMode): void {
    const entry = this.byName.get(name);
    if (!entry) throw new CutoverError(ErrorCodes.FLOW_UNKNOWN, `no flow named ${JSON.stringify(name)} in this sidecar's config`);
    entry.mode = mode;
  }
}
