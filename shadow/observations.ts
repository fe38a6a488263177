import type { Delivery } from '../src/bus/types.js';
import type { EncodedBody } from '../src/events/body.js';
import type { CloudEvent } from '../src/events/types.js';
import { callSample, CallHeaders, ObservationTypes, type BusReplyData } from '../src/events/wire.js';
import type { CallSample } from '../src/parity/types.js';

/** One observation as the comparator holds it. */
export interface Observation {
  side: 'direct' | 'noise' | 'bus';
  correlationId: string;
  flow: string;
  mode: string | undefined;
  data: BusReplyData;
  /** When the bus accepted this observation, epoch ms. */
  publishedAt: number;
  /** The observation's trace context (the call event's), so the comparator's span joins the call's trace. */
  traceparent?: string;
  /** Body paths that held encrypted values as published (set by `openObservation`): never shown in clear. */
  sealed?: string[][];
  /** Set by `openObservation` without a keyring: `sealed` is found from the body (as published) when the pair differs. */
  sealedDeferred?: boolean;
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
  const obs: Observation = { side, correlationId, flow, mode: event.cutovermode, data, publishedAt };
  if (event.traceparent) obs.traceparent = event.traceparent;
  return obs;
}

export function observationOf(delivery: Delivery): Observation | undefined {
  return toObservation(delivery.event, delivery.publishedAt);
}

/**
 * The call sample of a call event read back from the bus: method, target and allow-listed headers from
 * its message headers (`fallback` for an event another producer wrote without them), body truncated.
 */
export function callSampleOf(delivery: Delivery, fallback: { method: string; target: string }): CallSample {
  let headers: Record<string, string> | undefined;
  const rawHeaders = delivery.headers[CallHeaders.headers];
  if (rawHeaders) {
    try {
      const h = JSON.parse(rawHeaders) as unknown;
      if (typeof h === 'object' && h !== null && !Array.isArray(h)) headers = h as Record<string, string>;
    } catch {
      // A sample without headers still identifies the call.
    }
  }
  const data = delivery.event.data as EncodedBody | undefined;
  return callSample({
    method: delivery.headers[CallHeaders.method] ?? fallback.method,
    target: delivery.headers[CallHeaders.target] ?? fallback.target,
    headers,
    body: data && typeof data === 'object' ? data : undefined,
  });
}
