import { randomUUID } from 'node:crypto';
import type { BusMessage, Delivery } from '../src/bus/types.js';
import type { CloudEvent } from '../src/events/types.js';
import type { CallSample } from '../src/parity/types.js';
import { bodyBytes, type EncodedBody } from './body.js';

/**
 * The observations the comparator pairs, all on `cutover.observations` (or the call event's `replyto`),
 * keyed by correlation id so both sides of a pair land on one partition:
 * - `cutover.observation.direct`: the sidecar's record of the direct response (proxy/call-event.ts);
 * - `cutover.observation.direct.noise`: a second direct call of the same request (noise baseline);
 * - `cutover.observation.bus`: the bus-driven result, published by a delivery consumer or an SDK agent.
 */
export const ObservationTypes = {
  direct: 'cutover.observation.direct',
  noise: 'cutover.observation.direct.noise',
  bus: 'cutover.observation.bus',
} as const;

/** Transport headers of a call event that carry what an exact HTTP replay needs (set by the sidecar). */
export const CallHeaders = {
  method: 'cutover-http-method',
  target: 'cutover-http-target',
  headers: 'cutover-http-headers',
} as const;

export interface ObservationError {
  code: string;
  message?: string;
}

/** `data` shared by every observation type. */
export interface ObservationData extends EncodedBody {
  status?: number;
  headers?: Record<string, string>;
  latencyMs?: number;
  /** The side failed (sidecar: upstream unreachable; bus side: gave up, see `dlq`). */
  error?: ObservationError;
  /** The body was too large to capture; the comparator then cannot compare bodies. */
  bodySkipped?: string;
  bodyBytes?: number;
  contentEncoding?: string;
  /**
   * The call, redacted as the sidecar published it (body truncated), so a report can print a replay. The
   * sidecar puts it on its direct observation; delivery consumers put it on their replies; SDK agents do not.
   */
  request?: CallSample;
}

/** `data` of a bus reply (`cutover.observation.bus`): the result plus the timing of the bus path. */
export interface BusReplyData extends ObservationData {
  /** When the bus accepted the call event (Delivery.publishedAt on the consumer side), epoch ms. */
  eventPublishedAt?: number;
  /** When the shadow side began handling it, epoch ms (bus lag = consumedAt - eventPublishedAt). */
  consumedAt?: number;
  /** When the reply was handed to the bus, epoch ms. */
  repliedAt?: number;
  /** The delivery attempt that produced the reply. */
  attempt?: number;
  /** The call event went to the DLQ after this error reply. */
  dlq?: boolean;
  /** Size of the serialized call event, bytes (reports advise slimming large events). */
  eventBytes?: number;
}

/** One observation as the comparator holds it. */
export interface Observation {
  side: 'direct' | 'noise' | 'bus';
  correlationId: string;
  flow: string;
  mode: string | undefined;
  data: BusReplyData;
  /** When the bus accepted this observation, epoch ms. */
  publishedAt: number;
}

const SIDES: Record<string, Observation['side']> = {
  [ObservationTypes.direct]: 'direct',
  [ObservationTypes.noise]: 'noise',
  [ObservationTypes.bus]: 'bus',
};

/** Reads an observation out of a delivery; undefined for events that are not observations (counted by the caller). */
export function toObservation(event: CloudEvent, publishedAt: number): Observation | undefined {
  const side = SIDES[event.type];
  if (!side) return undefined;
  const correlationId = event.correlationid;
  const flow = event.cutoverflow;
  if (!correlationId || !flow) return undefined;
  const data = (typeof event.data === 'object' && event.data !== null ? event.data : {}) as BusReplyData;
  return { side, correlationId, flow, mode: event.cutovermode, data, publishedAt };
}

export function observationOf(delivery: Delivery): Observation | undefined {
  return toObservation(delivery.event, delivery.publishedAt);
}

export interface BusReplyInput {
  /** The call event being answered. */
  call: CloudEvent;
  /** Delivery.publishedAt of the call event. */
  eventPublishedAt: number;
  consumedAt: number;
  attempt: number;
  /** Who replies (`/agents/<agent>` or `/cutover/shadow`). */
  source: string;
  result: Omit<BusReplyData, 'eventPublishedAt' | 'consumedAt' | 'repliedAt' | 'attempt'>;
  now?: () => number;
}

/**
 * The bus reply to a call event, for its `replyto`: keyed by the correlation id (the call event's
 * `correlationid`, else its id) so it lands beside the direct observation.
 */
export function buildBusReply(input: BusReplyInput): BusMessage {
  const { call } = input;
  const correlationId = call.correlationid ?? call.id;
  const repliedAt = (input.now ?? Date.now)();
  const data: BusReplyData = {
    ...input.result,
    eventPublishedAt: input.eventPublishedAt,
    consumedAt: input.consumedAt,
    repliedAt,
    attempt: input.attempt,
  };
  const event: CloudEvent<BusReplyData> = {
    specversion: '1.0',
    id: randomUUID(),
    source: input.source,
    type: ObservationTypes.bus,
    time: new Date(repliedAt).toISOString(),
    datacontenttype: 'application/json',
    correlationid: correlationId,
    partitionkey: correlationId,
    data,
  };
  if (call.schemaversion !== undefined) event.schemaversion = call.schemaversion;
  if (call.traceparent !== undefined) event.traceparent = call.traceparent;
  const flow = call.cutoverflow ?? call.type;
  event.cutoverflow = flow;
  if (call.cutovermode !== undefined) event.cutovermode = call.cutovermode;
  return { key: correlationId, event };
}

/** Longest request body kept in a reply's call sample. */
export const SAMPLE_BODY_LIMIT = 1_024;

/** The call sample of a call event: method, target and allow-listed headers from its message headers, body truncated. */
export function callSampleOf(delivery: Delivery, fallback: { method: string; target: string }): CallSample {
  const sample: CallSample = {
    method: delivery.headers[CallHeaders.method] ?? fallback.method,
    target: delivery.headers[CallHeaders.target] ?? fallback.target,
  };
  const rawHeaders = delivery.headers[CallHeaders.headers];
  if (rawHeaders) {
    try {
      const h = JSON.parse(rawHeaders) as unknown;
      if (typeof h === 'object' && h !== null && !Array.isArray(h)) sample.headers = h as Record<string, string>;
    } catch {
      // A sample without headers still identifies the call.
    }
  }
  const data = delivery.event.data as EncodedBody | undefined;
  if (data && typeof data === 'object' && data.body !== undefined && data.bodyEncoding !== 'base64') {
    const text = bodyBytes(data).toString('utf8');
    sample.body = text.length > SAMPLE_BODY_LIMIT ? text.slice(0, SAMPLE_BODY_LIMIT) : text;
    if (text.length > SAMPLE_BODY_LIMIT) sample.bodyTruncated = true;
  }
  return sample;
}
