import { randomUUID } from 'node:crypto';
import type { BusMessage } from '../src/bus/types.js';
import type { FlowMode } from '../src/flows/schema.js';
import type { CloudEvent } from '../src/events/types.js';
import type { CallSample } from '../src/parity/types.js';
import type { EncodedBody } from './capture.js';

/** Where direct (and, in shadow mode, bus-driven) results go; the call event's `replyto`. */
export const OBSERVATIONS_TOPIC = 'cutover.observations';
/** CloudEvent type of the sidecar's record of the direct response. */
export const DIRECT_OBSERVATION_TYPE = 'cutover.observation.direct';

/**
 * Transport headers on a call event's bus message: what an exact HTTP replay needs, kept out of `data`
 * so that a bus-native consumer sees the business payload only.
 */
export const CallHeaders = {
  /** The HTTP method, e.g. `POST`. */
  method: 'cutover-http-method',
  /** The original path and query (`/reservations?dryRun=1`), secrets in the query masked. */
  target: 'cutover-http-target',
  /** JSON object of the allow-listed request headers (lowercase names), credentials never included. */
  headers: 'cutover-http-headers',
} as const;

/** `data` of a call event: the business payload. */
export interface CallData extends EncodedBody {
  /** The path template's parameters (`/stock/:sku` → `{ sku }`). */
  params: Record<string, string>;
  /** Query parameters; repeated names become arrays. */
  query: Record<string, string | string[]>;
}

/** `data` of a direct observation. */
export interface ObservationData extends EncodedBody {
  /** HTTP status the caller got (502/504 when the sidecar answered for an unreachable upstream). */
  status: number;
  /** Allow-listed response headers, lowercase names. */
  headers: Record<string, string>;
  /** From the request's arrival at the sidecar to the last byte of the response. */
  latencyMs: number;
  /** Set when the upstream failed and the sidecar answered. */
  error?: { code: string; message: string };
  /** Set when the body is not in the observation: `too_large` (over capture.maxResponseBytes). */
  bodySkipped?: 'too_large';
  /** Size of the response body as sent, in bytes. */
  bodyBytes?: number;
  /** The response's content-encoding when the body could not be decoded and travels encoded. */
  contentEncoding?: string;
  /**
   * The call that got this response, redacted exactly like the call event ({@link callSample}), so the
   * comparator can attach a replayable sample to a mismatch whoever produced the bus side (an SDK agent's
   * reply carries none).
   */
  request?: CallSample;
}

/** Longest request body (characters) kept in a call sample; the same bound the shadow side uses. */
export const SAMPLE_BODY_LIMIT = 1_024;

/**
 * The call sample of a call event, from the parts the event was built from: method, target (secret query
 * values masked), allow-listed headers (credentials never included) and the body as published (encrypted
 * fields stay encrypted), truncated. Binary bodies are left out: a text replay could not send them.
 */
export function callSample(parts: { method: string; target: string; headers: Record<string, string>; body: EncodedBody }): CallSample {
  const sample: CallSample = { method: parts.method, target: parts.target };
  if (Object.keys(parts.headers).length > 0) sample.headers = parts.headers;
  const { body, bodyEncoding } = parts.body;
  if (body !== undefined && bodyEncoding !== 'base64') {
    const text = bodyEncoding === 'utf8' && typeof body === 'string' ? body : JSON.stringify(body);
    if (text.length > SAMPLE_BODY_LIMIT) {
      sample.body = text.slice(0, SAMPLE_BODY_LIMIT);
      sample.bodyTruncated = true;
    } else {
      sample.body = text;
    }
  }
  return sample;
}

export interface FlowRef {
  name: string;
  schemaVersion: string;
  mode: FlowMode;
}

export interface CallEventInput {
  agent: string;
  flow: FlowRef;
  topic: string;
  /** The correlation id; also the event id. */
  id: string;
  traceparent: string;
  partitionKey: string | undefined;
  data: CallData;
  method: string;
  target: string;
  headers: Record<string, string>;
  /** Key id when fields of `data` were encrypted. */
  kid?: string;
  /** Where results go; default `cutover.observations`; null for none (fire-and-forget events). */
  replyTo?: string | null;
}

/**
 * The call event of a flow in shadow mode: CloudEvents 1.0, type = the flow name, id = correlation id,
 * replies to `cutover.observations`; keyed by the flow key so one key's calls stay in order.
 */
export function buildCallMessage(input: CallEventInput): BusMessage {
  const event: CloudEvent<CallData> = {
    specversion: '1.0',
    id: input.id,
    source: `/agents/${input.agent}`,
    type: input.flow.name,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    schemaversion: input.flow.schemaVersion,
    correlationid: input.id,
    traceparent: input.traceparent,
    cutoverflow: input.flow.name,
    cutovermode: input.flow.mode,
    data: input.data,
  };
  if (input.replyTo !== null) event.replyto = input.replyTo ?? OBSERVATIONS_TOPIC;
  if (input.partitionKey !== undefined) event.partitionkey = input.partitionKey;
  if (input.kid !== undefined) event.cutoverkid = input.kid;
  return {
    key: input.partitionKey ?? null,
    event,
    headers: {
      [CallHeaders.method]: input.method,
      [CallHeaders.target]: input.target,
      [CallHeaders.headers]: JSON.stringify(input.headers),
    },
  };
}

export interface ObservationInput {
  agent: string;
  flow: FlowRef;
  correlationId: string;
  traceparent: string;
  data: ObservationData;
  kid?: string;
}

/** The direct observation: keyed by the correlation id so it lands beside the bus-driven result. */
export function buildObservationMessage(input: ObservationInput): BusMessage {
  const event: CloudEvent<ObservationData> = {
    specversion: '1.0',
    id: randomUUID(),
    source: `/agents/${input.agent}`,
    type: DIRECT_OBSERVATION_TYPE,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    schemaversion: input.flow.schemaVersion,
    correlationid: input.correlationId,
    partitionkey: input.correlationId,
    traceparent: input.traceparent,
    cutoverflow: input.flow.name,
    cutovermode: input.flow.mode,
    data: input.data,
  };
  if (input.kid !== undefined) event.cutoverkid = input.kid;
  return { key: input.correlationId, event };
}
