import { Counter, Gauge, type Registry } from 'prom-client';
import { ResolvedCounter, ResolvedHistogram, type CounterIncrement, type HistogramObserver } from '../src/metrics.js';
import type { OutboxHooks } from './outbox.js';

/** Label value for requests that matched no flow. */
export const UNMATCHED = '_unmatched';

/** Why a flow's call was forwarded but not dual-written (or its observation not recorded in full). */
export type SkipReason = 'body_too_large' | 'response_too_large' | 'client_aborted' | 'capture_failed' | 'unencryptable';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface FlowMetrics {
  duration: HistogramObserver;
  upstream: HistogramObserver;
  request(status: number): void;
}

/**
 * The sidecar's Prometheus metrics, registered on an injected registry (never the global one, so several
 * sidecars can live in one test process).
 */
export class SidecarMetrics {
  readonly requestDuration: ResolvedHistogram<'flow' | 'mode'>;
  readonly upstreamDuration: ResolvedHistogram<'flow'>;
  readonly requests: ResolvedCounter<'flow' | 'mode' | 'status'>;
  readonly unmatched: Counter;
  readonly upstreamErrors: Counter<'code'>;
  readonly skipped: Counter<'flow' | 'reason'>;
  readonly keyMissing: Counter<'flow'>;
  readonly busPath: Counter<'flow' | 'outcome'>;
  readonly rpcUnparsed: Counter<'reason'>;
  readonly rpcHeaderMismatch: Counter<'flow' | 'header'>;
  readonly publishDuration: ResolvedHistogram<'outcome'>;
  readonly publishFailures: Counter<'code'>;
  readonly events: ResolvedCounter<'agent' | 'topic'>;
  readonly spooled: Counter;
  readonly dropped: Counter<'reason'>;
  readonly queueDepth: Gauge;
  readonly spoolDepth: Gauge;
  readonly spoolBytes: Gauge;
  readonly spoolErrors: Counter<'op' | 'reason'>;
  readonly spoolHealthy: Gauge;
  readonly flipsRejected: Counter<'flow' | 'reason'>;
  private readonly agent: string;
  private readonly perFlow = new Map<string, FlowMetrics>();

  constructor(registry: Registry, agent: string, sources: { queueDepth: () => number; spoolDepth: () => number; spoolBytes: () => number; spoolHealthy: () => boolean }) {
    const registers = [registry];
    this.requestDuration = new ResolvedHistogram({
      name: 'cutover_sidecar_request_duration_seconds',
      help: 'Time from a request arriving at the sidecar to the last byte of its response, by flow and mode',
      labelNames: ['flow', 'mode'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.upstreamDuration = new ResolvedHistogram({
      name: 'cutover_sidecar_upstream_duration_seconds',
      help: 'Time from forwarding a request to the upstream response headers, by flow',
      labelNames: ['flow'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.requests = new ResolvedCounter({ name: 'cutover_sidecar_requests_total', help: 'Requests forwarded, by flow, mode and status class', labelNames: ['flow', 'mode', 'status'], registers });
    this.unmatched = new Counter({ name: 'cutover_sidecar_unmatched_requests_total', help: 'Requests that matched no flow (forwarded, nothing published)', registers });
    this.upstreamErrors = new Counter({ name: 'cutover_sidecar_upstream_errors_total', help: 'Requests the sidecar answered itself because the upstream failed', labelNames: ['code'], registers });
    this.skipped = new Counter({ name: 'cutover_sidecar_capture_skipped_total', help: 'Flow calls forwarded but not (fully) dual-written, by reason', labelNames: ['flow', 'reason'], registers });
    this.keyMissing = new Counter({ name: 'cutover_sidecar_key_missing_total', help: 'Flow calls without their partition key (published with a null key)', labelNames: ['flow'], registers });
    this.busPath = new Counter({
      name: 'cutover_sidecar_bus_path_total',
      help: 'Calls on the bus path (canary share, bus mode) by flow and outcome: replied, accepted, spooled, reply_timeout, bus_unavailable, fallback_timeout, fallback_unavailable, body_too_large',
      labelNames: ['flow', 'outcome'],
      registers,
    });
    this.rpcUnparsed = new Counter({
      name: 'cutover_sidecar_rpc_unparsed_total',
      help: 'Requests on a URL with JSON-RPC flows whose body is no single JSON-RPC call (batch, not_json, not_jsonrpc, body_too_large): they go to the URL\'s flow without rpc, if any',
      labelNames: ['reason'],
      registers,
    });
    this.rpcHeaderMismatch = new Counter({
      name: 'cutover_sidecar_rpc_header_mismatch_total',
      help: 'JSON-RPC calls whose MCP header (mcp-method, mcp-name) disagrees with the body, by flow and header; the flow is chosen by the body',
      labelNames: ['flow', 'header'],
      registers,
    });
    this.publishDuration = new ResolvedHistogram({ name: 'cutover_sidecar_publish_duration_seconds', help: 'Duration of one bus publish call', labelNames: ['outcome'], buckets: LATENCY_BUCKETS, registers });
    this.publishFailures = new Counter({ name: 'cutover_sidecar_publish_failures_total', help: 'Failed bus publish calls, by error code', labelNames: ['code'], registers });
    this.flipsRejected = new Counter({
      name: 'cutover_flips_rejected_total',
      help: 'Flip records of flows this sidecar serves that break the control policy (unsigned, forged, not an operator, towards the bus without evidence), by flow and reason',
      labelNames: ['flow', 'reason'],
      registers,
    });
    this.events = new ResolvedCounter({ name: 'cutover_sidecar_events_published_total', help: 'Events the bus accepted, by agent and topic', labelNames: ['agent', 'topic'], registers });
    this.spooled = new Counter({ name: 'cutover_sidecar_events_spooled_total', help: 'Events written to the local spool', registers });
    this.dropped = new Counter({ name: 'cutover_sidecar_events_dropped_total', help: 'Events lost: spool full, spool unwritable, or refused by the bus for good', labelNames: ['reason'], registers });
    this.queueDepth = new Gauge({ name: 'cutover_sidecar_publish_queue_depth', help: 'Events waiting in memory to be published', registers, collect() { this.set(sources.queueDepth()); } });
    this.spoolDepth = new Gauge({ name: 'cutover_sidecar_spool_depth', help: 'Events waiting in the local spool', registers, collect() { this.set(sources.spoolDepth()); } });
    this.spoolBytes = new Gauge({ name: 'cutover_sidecar_spool_bytes', help: 'Bytes of the local spool files', registers, collect() { this.set(sources.spoolBytes()); } });
    this.spoolErrors = new Counter({
      name: 'cutover_sidecar_spool_errors_total',
      help: 'Disk failures of the spool and its journal, by operation (open, append, read, commit, journal) and reason (no_space, short_write, io_error, read_only, permission, missing, other)',
      labelNames: ['op', 'reason'],
      registers,
    });
    this.spoolHealthy = new Gauge({
      name: 'cutover_sidecar_spool_healthy',
      help: '1 while the spool and its journal can write; 0 after a disk failure until a later spool operation succeeds (events the bus does not take are dropped meanwhile)',
      registers,
      collect() {
        this.set(sources.spoolHealthy() ? 1 : 0);
      },
    });
    this.agent = agent;
  }

  /**
   * The per-request metrics of one flow and mode, resolved once: label lookups hash the label set on
   * every call, which is measurable on the hot path.
   */
  forFlow(flow: string, mode: string): FlowMetrics {
    const id = `${flow}\u0000${mode}`;
    let m = this.perFlow.get(id);
    if (!m) {
      const statuses = new Map<number, CounterIncrement>();
      const requests = this.requests;
      m = {
        duration: this.requestDuration.series(flow, mode),
        upstream: this.upstreamDuration.series(flow),
        request(status: number) {
          const cls = Math.floor(status / 100);
          let c = statuses.get(cls);
          if (!c) statuses.set(cls, (c = requests.series(flow, mode, `${cls}xx`)));
          c.inc();
        },
      };
      this.perFlow.set(id, m);
    }
    return m;
  }

  /** Hooks for the outbox. */
  outboxHooks(): OutboxHooks {
    const published = new Map<string, CounterIncrement>();
    const latency = { ok: this.publishDuration.series('ok'), error: this.publishDuration.series('error') };
    return {
      published: (topic, count) => {
        let c = published.get(topic);
        if (!c) published.set(topic, (c = this.events.series(this.agent, topic)));
        c.inc(count);
      },
      publishLatency: (seconds, ok) => (ok ? latency.ok : latency.error).observe(seconds),
      failed: (code) => this.publishFailures.inc({ code }),
      spooled: (count) => this.spooled.inc(count),
      dropped: (reason, count) => this.dropped.inc({ reason }, count),
    };
  }
}
