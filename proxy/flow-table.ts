import { compileKey, type KeyExtractor } from '../src/flows/key.js';
import { compileFlows, isRpcRoute, type FlowMatch, type FlowMatcher, type RpcRoute } from '../src/flows/match.js';
import type { RpcCall } from '../src/flows/rpc.js';
import type { FlowConfig, FlowMode } from '../src/config/flow.js';
import { CutoverError, ErrorCodes } from '../src/errors.js';
import { OBSERVATIONS_TOPIC, observationsTopicOf } from '../src/events/wire.js';
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
  /** JSON-RPC calls whose MCP headers (`Mcp-Method`, `Mcp-Name`) disagree with the body, one per header. */
  rpcHeaderMismatches: number;
}

/** A flow as the running sidecar holds it: config, compiled key, current mode and counters. */
export interface FlowEntry {
  readonly config: FlowConfig;
  readonly key: KeyExtractor | undefined;
  /** Where its observations go and its shadow calls ask their reply: `<observationsTopic>.<flow>`. */
  readonly observationsTopic: string;
  /** Current mode; flips change it while running. */
  mode: FlowMode;
  readonly counters: FlowCounters;
}

/** A request's flow, or (JSON-RPC flows) how to find it once the body is read. */
export type FlowRoute =
  | { entry: FlowEntry; params: Record<string, string> }
  | { params: Record<string, string>; select(call: RpcCall | undefined): FlowEntry | undefined; entry?: undefined };

/** The configured flows, matched per request. */
export class FlowTable {
  readonly entries: readonly FlowEntry[];
  private readonly matcher: FlowMatcher;
  private readonly byName: Map<string, FlowEntry>;

  /** `observationsTopic`: the base of the flows' observation topics (the config's `observationsTopic`). */
  constructor(flows: readonly FlowConfig[], observationsTopic: string = OBSERVATIONS_TOPIC) {
    this.entries = flows.map((config) => ({
      config,
      key: config.key ? compileKey(config.key) : undefined,
      observationsTopic: observationsTopicOf(config.name, observationsTopic),
      mode: config.mode,
      counters: { requests: 0, events: 0, observations: 0, upstreamErrors: 0, keyMissing: 0, busServed: 0, fallbacks: 0, replyTimeouts: 0, busUnavailable: 0, skipped: {}, rpcHeaderMismatches: 0 },
    }));
    this.byName = new Map(this.entries.map((e) => [e.config.name, e]));
    this.matcher = compileFlows(flows);
  }

  /**
   * The flow of a request by method and path; on a URL whose flows select JSON-RPC calls, a route whose
   * `select` names the flow once the body is read.
   */
  match(method: string, path: string): FlowRoute | undefined {
    const m: FlowMatch | RpcRoute | undefined = this.matcher.match(method, path);
    if (!m) return undefined;
    if (!isRpcRoute(m)) return { entry: this.byName.get(m.flow.name)!, params: m.params };
    return {
      params: m.params,
      select: (call) => {
        const flow = m.select(call);
        return flow && this.byName.get(flow.name);
      },
    };
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
