import { randomUUID } from 'node:crypto';
import type { BusMessage } from '../bus/types.js';
import { serializeEvent } from './cloudevent.js';
import type { CloudEvent } from './types.js';
import { ObservationTypes, REPLY_STREAM_EVENT_TYPE, type BusReplyData, type StreamEventData } from './wire.js';

/** What a bus reply reports of the result; the timing of the bus path is filled in by {@link buildBusReply}. */
export type BusReplyResult = Omit<BusReplyData, 'eventPublishedAt' | 'consumedAt' | 'repliedAt' | 'attempt' | 'eventBytes'>;

export interface BusReplyInput {
  /** The call event being answered. */
  call: CloudEvent;
  /** Delivery.publishedAt of the call event. */
  eventPublishedAt: number;
  consumedAt: number;
  attempt: number;
  /** Who replies (`/agents/<agent>`, `/cutover/shadow` or `/cutover/deliver`). */
  source: string;
  result: BusReplyResult;
  now?: () => number;
}

/**
 * The bus reply to a call event (`cutover.observation.bus`), for its `replyto`: keyed by the correlation id
 * (the call event's `correlationid`, else its id) so it lands beside the direct observation. Replay
 * consumers and SDK agents both answer with it, so the comparator and a waiting sidecar read one shape.
 * `causationid` names the call event answered, so a saga tells which of its commands (one correlation id,
 * the saga's) a reply is for.
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
    eventBytes: Buffer.byteLength(serializeEvent(call)),
  };
  const event: CloudEvent<BusReplyData> = {
    specversion: '1.0',
    id: randomUUID(),
    source: input.source,
    type: ObservationTypes.bus,
    time: new Date(repliedAt).toISOString(),
    datacontenttype: 'application/json',
    correlationid: correlationId,
    causationid: call.id,
    partitionkey: correlationId,
    data,
  };
  if (call.schemaversion !== undefined) event.schemaversion = call.schemaversion;
  if (call.traceparent !== undefined) event.traceparent = call.traceparent;
  event.cutoverflow = call.cutoverflow ?? call.type;
  if (call.cutovermode !== undefined) event.cutovermode = call.cutovermode;
  return { key: correlationId, event };
}

/**
 * One event of a streamed bus reply ({@link REPLY_STREAM_EVENT_TYPE}) for the call's `replyto`, keyed by
 * the correlation id like the reply that ends the stream, so the two stay in order.
 */
export function buildStreamEvent(input: { call: CloudEvent; source: string; seq: number; text: string }): BusMessage {
  const { call } = input;
  const correlationId = call.correlationid ?? call.id;
  const data: StreamEventData = { seq: input.seq, text: input.text };
  const event: CloudEvent<StreamEventData> = {
    specversion: '1.0',
    id: randomUUID(),
    source: input.source,
    type: REPLY_STREAM_EVENT_TYPE,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    correlationid: correlationId,
    partitionkey: correlationId,
    cutoverflow: call.cutoverflow ?? call.type,
    data,
  };
  if (call.traceparent !== undefined) event.traceparent = call.traceparent;
  return { key: correlationId, event };
}
