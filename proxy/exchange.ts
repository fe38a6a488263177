import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { FlowMode } from '../src/config/flow.js';
import type { CallSample } from '../src/parity/types.js';
import type { BodyCapture } from './capture.js';
import type { FlowEntry } from './flow-table.js';
import type { NoiseRequest } from './noise-call.js';
import type { ObservedExchange } from './observed-exchange.js';
import type { Span } from '../src/tracing.js';
import type { RpcCall } from '../src/flows/rpc.js';

/** Where a request carries its {@link Exchange}, so that http-proxy's events find it. */
export const EXCHANGE = Symbol('cutover.exchange');
/** A request as the data plane handles it: an IncomingMessage (or a replay of one) with its exchange. */
export type SidecarRequest = IncomingMessage & { [EXCHANGE]?: Exchange };

/** Why the sidecar answered for the upstream, kept for the direct observation. */
export interface Failure {
  code: string;
  message: string;
  /** The JSON error body the caller got; absent when the caller got the upstream's own partial response. */
  body?: Buffer;
}

/**
 * Per-request state. Only flows in shadow mode capture anything; every other request carries just its
 * start time and flow label for metrics.
 */
export class Exchange {
  readonly started = performance.now();
  entry: FlowEntry | undefined;
  params: Record<string, string> = {};
  /** Mode at arrival: a flip while the request runs does not change what this request does. */
  mode: FlowMode = 'direct';
  id: string | undefined;
  /** The call event's trace context: set by the publish or bus span when an OpenTelemetry SDK records them. */
  traceparent: string | undefined;
  /** The forward span, when an OpenTelemetry SDK records it. */
  span: Span | undefined;
  /** The call as published (redacted, body truncated), for the direct observation. Set by callParts. */
  sample: CallSample | undefined;
  reqCapture: BodyCapture | undefined;
  resCapture: BodyCapture | undefined;
  /** The call event went to the outbox: an observation must follow. */
  published = false;
  /** The response finished (the upstream may answer before reading the whole request body). */
  responded = false;
  observed = false;
  /** Milliseconds from arrival to the end of the response. */
  elapsed = 0;
  res: ServerResponse | undefined;
  proxyReq: ClientRequest | undefined;
  upstreamStarted = 0;
  timer: NodeJS.Timeout | undefined;
  /** Set when the sidecar answered for the upstream (502/504). */
  failure: Failure | undefined;
  /** The JSON-RPC call of the body, on URLs whose flows select JSON-RPC methods. */
  rpc: RpcCall | undefined;
  /** MCP headers of the call that disagree with its JSON-RPC body (`mcp-method`, `mcp-name`). */
  rpcHeaderMismatch: string[] | undefined;
  /** Set when this request is sampled for the noise baseline: the agent is called a second time. */
  noise: NoiseRequest | undefined;
  /** Set when discovery (`observe:`) sampled this request. */
  discovery: ObservedExchange | undefined;
}
