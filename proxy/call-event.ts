import { randomUUID } from 'node:crypto';
import type { BusMessage } from '../src/bus/types.js';
import type { CloudEvent } from '../src/events/types.js';
import { CallHeaders, KEY_ID_EXTENSION, rpcAttributes, observationsTopicOf, ObservationTypes, type CallData, type ObservationData } from '../src/events/wire.js';
import type { FlowMode } from '../src/config/flow.js';

// The data plane builds its observations and samples from these; they belong to the wire format.

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
  /** The JSON-RPC call of the body (flows with `match.rpc`): stamped as `rpcmethod` / `rpcid`. */
  rpc?: { method: string; id?: string | number | null } | undefined;
  /**
   * Where results go; default the flow's observation topic `cutover.observations.<flow>`; null for none
   * (fire-and-forget events).
   */
  replyTo?: string | null;
}

/**
 * The call event of a flow in shadow mode: CloudEvents 1.0, type = the flow name, id = correlation id,
 * replies to the flow's observation topic (`cutover.observations.<flow>`); keyed by the flow key so one
 * key's calls stay in order.
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
  if (input.replyTo !== null) event.replyto = input.replyTo ?? observationsTopicOf(input.flow.name);
  if (input.partitionKey !== undefined) event.partitionkey = input.partitionKey;
  if (input.kid !== undefined) event[KEY_ID_EXTENSION] = input.kid;
  if (input.rpc) Object.assign(event, rpcAttributes(input.rpc));
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
    type: ObservationTypes.direct,
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
  if (input.kid !== undefined) event[KEY_ID_EXTENSION] = input.kid;
  return { key: input.correlationId, event };
}
