import type { ConsumeMessage, Options } from 'amqplib';
import { ErrorCodes, ValidationError } from '../../errors.js';
import { assertEvent, parseEvent, serializeEvent } from '../../events/cloudevent.js';
import { CLOUDEVENTS_JSON } from '../../events/types.js';
import { partitionOf } from '../hash.js';
import type { BusMessage, Delivery } from '../types.js';

/** Headers the adapter itself sets on a message; never handed back as caller headers. */
export const Internal = {
  key: 'cutover-key',
  partition: 'cutover-partition',
  publishedAt: 'cutover-published-at',
  /** Marks the end-of-read marker a `follow: false` reader writes into a log stream (see reader.ts). */
  marker: 'cutover-read-marker',
  /** Ends a history queue of a new `from: 'start'` group; its body lists event ids also routed live (backfill.ts). */
  historyEnd: 'cutover-history-end',
  /** A registry entry: the topic a log stream was declared for. */
  registered: 'cutover-registered-topic',
} as const;

/** Headers RabbitMQ adds on delivery: broker bookkeeping, not caller data. */
const BROKER_HEADERS = new Set(['x-delivery-count', 'x-acquired-count', 'x-stream-offset', 'x-death', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason', 'x-last-death-exchange', 'x-last-death-queue', 'x-last-death-reason']);
const INTERNAL_HEADERS = new Set<string>(Object.values(Internal));
/** Rough per-message framing (method, content header and body frames, property flags). */
const FRAME_OVERHEAD = 64;

/** One message ready for channel.publish. */
export interface OutgoingMessage {
  content: Buffer;
  options: Options.Publish;
  bytes: number;
}

/**
 * Turns bus messages into AMQP messages: body = structured-mode CloudEvent JSON (content type
 * application/cloudevents+json), key, partition and caller headers in the headers table. Validates the
 * whole batch first, so a bad message means nothing of the call is published.
 */
export function encodeMessages(topic: string, messages: readonly BusMessage[], partitions: number, maxMessageBytes: number, nextUnkeyed: () => number): OutgoingMessage[] {
  return messages.map((m, i) => {
    const where = `messages[${i}] to ${topic}`;
    if (m === null || typeof m !== 'object') throw new ValidationError(ErrorCodes.EVENT_INVALID, `${where}: expected { key, event, headers? }`);
    const key = m.key ?? null;
    if (key !== null && typeof key !== 'string') throw new ValidationError(ErrorCodes.EVENT_INVALID, `${where}.key: expected a string or null, got ${typeof key}`);
    assertEvent(m.event, `messages[${i}].event to ${topic}`);
    const headers: Record<string, string> = {};
    let bytes = FRAME_OVERHEAD;
    for (const [name, value] of Object.entries(m.headers ?? {})) {
      if (typeof value !== 'string') throw new ValidationError(ErrorCodes.EVENT_INVALID, `${where}.headers.${name}: expected a string value`);
      if (INTERNAL_HEADERS.has(name) || BROKER_HEADERS.has(name)) throw new ValidationError(ErrorCodes.EVENT_INVALID, `${where}.headers.${name}: reserved by the RabbitMQ adapter`);
      headers[name] = value;
      bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 6;
    }
    const content = Buffer.from(serializeEvent(m.event));
    bytes += content.length + (key === null ? 0 : Buffer.byteLength(key));
    if (bytes > maxMessageBytes) {
      throw new ValidationError(ErrorCodes.MESSAGE_TOO_LARGE, `${where}: ${bytes} bytes serialized, over the limit of ${maxMessageBytes} (bus.maxMessageBytes)`, {
        details: { topic, index: i, bytes, limit: maxMessageBytes },
      });
    }
    if (key !== null) headers[Internal.key] = key;
    // A string: the group's headers exchange matches it against the string its partition queue is bound with.
    headers[Internal.partition] = String(key === null ? nextUnkeyed() % partitions : partitionOf(key, partitions));
    const now = Date.now();
    headers[Internal.publishedAt] = String(now);
    return {
      content,
      bytes,
      options: { persistent: true, contentType: CLOUDEVENTS_JSON, messageId: m.event.id, type: m.event.type, timestamp: Math.floor(now / 1000), headers },
    };
  });
}

/** A delivery re-sent as it came (a dead letter of something that is not a CloudEvent keeps its body). */
export function rawOutgoing(message: ConsumeMessage, headers: Record<string, string>): OutgoingMessage {
  const key = headerString(message, Internal.key);
  return {
    content: message.content,
    bytes: message.content.length + FRAME_OVERHEAD,
    options: { persistent: true, contentType: message.properties.contentType, headers: { ...headers, ...(key === undefined ? {} : { [Internal.key]: key }), [Internal.partition]: '0', [Internal.publishedAt]: String(Date.now()) } },
  };
}

/** Caller headers of a delivery (as strings), without the adapter's and the broker's own. */
export function callerHeaders(message: ConsumeMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
    if (INTERNAL_HEADERS.has(name) || BROKER_HEADERS.has(name) || value === undefined || value === null) continue;
    out[name] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
  return out;
}

export function headerString(message: ConsumeMessage, name: string): string | undefined {
  const value = message.properties.headers?.[name];
  if (value === undefined || value === null) return undefined;
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** The topic a delivery was published to: its routing key (the topic exchange routes on it unchanged). */
export function topicOf(message: ConsumeMessage): string {
  return message.fields.routingKey;
}

export type Decoded = { ok: true; delivery: Delivery } | { ok: false; error: unknown };

/**
 * How often RabbitMQ handed this message out before: quorum queues count failed deliveries (a consumer that
 * died holding it) in x-delivery-count and, from 4.3, every earlier hand-out in x-acquired-count. The larger
 * of the two, so a crash counts on every version.
 */
function previousDeliveries(message: ConsumeMessage): number {
  const count = (name: string): number => {
    const n = Number(message.properties.headers?.[name] ?? 0);
    return Number.isFinite(n) && n > 0 ? n : 0;
  };
  return Math.max(count('x-delivery-count'), count('x-acquired-count'));
}

/**
 * An AMQP delivery as a Delivery. `attempt` is 1 plus the earlier deliveries RabbitMQ counted. A body that is not a CloudEvent comes back as `ok: false` so the caller
 * can dead-letter it instead of looping on it.
 */
export function decodeMessage(message: ConsumeMessage, position: string): Decoded {
  try {
    const event = parseEvent(message.content);
    const count = previousDeliveries(message);
    const publishedAt = Number(headerString(message, Internal.publishedAt));
    return {
      ok: true,
      delivery: {
        topic: topicOf(message),
        key: headerString(message, Internal.key) ?? null,
        event,
        headers: callerHeaders(message),
        position,
        publishedAt: Number.isFinite(publishedAt) && publishedAt > 0 ? publishedAt : (message.properties.timestamp ?? 0) * 1000,
        attempt: 1 + count,
      },
    };
  } catch (error) {
    return { ok: false, error };
  }
}
