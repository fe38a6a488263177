import type { IHeaders, KafkaMessage } from 'kafkajs';
import { ErrorCodes, ValidationError } from '../../errors.js';
import { assertEvent, parseEvent, serializeEvent } from '../../events/cloudevent.js';
import { CLOUDEVENTS_JSON } from '../../events/types.js';
import type { BusMessage, Delivery } from '../types.js';

export const CONTENT_TYPE_HEADER = 'content-type';
/** Rough per-record framing in a Kafka record batch (lengths, varints, timestamp delta, attributes). */
const RECORD_OVERHEAD = 24;

/**
 * One Kafka record as the publisher hands it to a producer client. Strings are written as UTF-8; a record
 * moved to a dead-letter topic as it is keeps its raw bytes.
 */
export interface OutgoingRecord {
  key: string | Buffer | null;
  value: string | Buffer;
  headers: Record<string, string>;
}

/** One record ready for the producer, with its approximate size on the wire for batching decisions. */
export interface OutgoingMessage {
  message: OutgoingRecord;
  bytes: number;
}

/**
 * Turns bus messages into Kafka records: value = structured-mode CloudEvent JSON, key and headers native,
 * plus the CloudEvents content type. Validates the whole batch first (size limit), so a bad message
 * means nothing of the call is published.
 */
export function encodeMessages(topic: string, messages: readonly BusMessage[], maxMessageBytes: number): OutgoingMessage[] {
  const out: OutgoingMessage[] = [];
  messages.forEach((m, i) => {
    assertEvent(m?.event, `messages[${i}].event to ${topic}`);
    // A string, not a Buffer: kafkajs writes it straight into the request, one copy fewer per message.
    const value = serializeEvent(m.event);
    const valueBytes = Buffer.byteLength(value, 'utf8');
    if (valueBytes > maxMessageBytes) {
      throw new ValidationError(
        ErrorCodes.MESSAGE_TOO_LARGE,
        `messages[${i}] to ${topic}: serialized event is ${valueBytes} bytes, over maxMessageBytes ${maxMessageBytes}`,
        { details: { topic, index: i, bytes: valueBytes, limit: maxMessageBytes } },
      );
    }
    const headers: Record<string, string> = { ...(m.headers ?? {}), [CONTENT_TYPE_HEADER]: CLOUDEVENTS_JSON };
    let bytes = valueBytes + RECORD_OVERHEAD + (m.key === null ? 0 : Buffer.byteLength(m.key));
    for (const [name, v] of Object.entries(headers)) bytes += name.length + Buffer.byteLength(v) + 4;
    out.push({ message: { key: m.key, value, headers }, bytes });
  });
  return out;
}

/** Header values as strings; a header repeated on the record keeps its last value. */
export function decodeHeaders(headers: IHeaders | undefined, dropContentType: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    if (dropContentType && name === CONTENT_TYPE_HEADER) continue;
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (value === undefined) continue;
    out[name] = typeof value === 'string' ? value : value.toString('utf8');
  }
  return out;
}

export type Decoded = { ok: true; delivery: Delivery } | { ok: false; error: unknown };

/**
 * A record as a Delivery (attempt 1: Kafka keeps no delivery count). The content-type header the adapter
 * adds is transport framing, not caller data, so it is not handed back. A record whose value is not a
 * CloudEvent comes back as `ok: false` so the caller can dead-letter it instead of looping on it.
 */
export function decodeMessage(topic: string, partition: number, m: KafkaMessage): Decoded {
  const headers = decodeHeaders(m.headers, true);
  try {
    if (m.value === null) throw new ValidationError(ErrorCodes.EVENT_INVALID, 'invalid CloudEvent: record has no value (tombstone)');
    const event = parseEvent(m.value);
    return {
      ok: true,
      delivery: {
        topic,
        key: m.key === null ? null : m.key.toString('utf8'),
        event,
        headers,
        position: `${partition}:${m.offset}`,
        publishedAt: Number(m.timestamp),
        attempt: 1,
      },
    };
  } catch (error) {
    return { ok: false, error };
  }
}
