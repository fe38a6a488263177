import { ErrorCodes, ValidationError } from '../../errors.js';
import type { CloudEvent } from '../../events/types.js';
import { assertEvent, checkedEvent } from '../../events/cloudevent.js';
import type { BusMessage, Delivery } from '../types.js';
import { idTime } from './keys.js';

/** A message serialized for a stream entry: fields `key` (absent when null), `event`, `headers` (absent when empty). */
export interface EncodedMessage {
  key: string | null;
  event: string;
  /** JSON of the headers, '' when there are none. */
  headers: string;
}

/** One stream entry as RESP2 returns it: `[id, [field, value, ...]]` (fields null when the entry was deleted). */
export type RawEntry = [string, string[] | null];

/**
 * Serializes and checks one message. Throws CUTOVER_EVENT_INVALID on something that is not a CloudEvent and
 * CUTOVER_MESSAGE_TOO_LARGE over `maxBytes` (key + event + headers).
 */
export function encodeMessage(message: BusMessage, maxBytes: number, index: number): EncodedMessage {
  assertEvent(message?.event, `messages[${index}].event`);
  const key = message.key ?? null;
  if (key !== null && typeof key !== 'string') throw new ValidationError(ErrorCodes.EVENT_INVALID, `messages[${index}].key: expected a string or null, got ${typeof key}`);
  let headers = '';
  if (message.headers !== undefined && message.headers !== null) {
    const entries = typeof message.headers === 'object' ? Object.entries(message.headers) : [['', message.headers]];
    for (const [name, value] of entries) {
      if (typeof value !== 'string') throw new ValidationError(ErrorCodes.EVENT_INVALID, `messages[${index}].headers${name ? `.${name}` : ''}: expected string values`);
    }
    if (entries.length > 0) headers = JSON.stringify(message.headers);
  }
  const event = JSON.stringify(message.event);
  const size = Buffer.byteLength(event) + (headers ? Buffer.byteLength(headers) : 0) + (key === null ? 0 : Buffer.byteLength(key));
  if (size > maxBytes) {
    throw new ValidationError(ErrorCodes.MESSAGE_TOO_LARGE, `messages[${index}]: ${size} bytes serialized, over the limit of ${maxBytes} (bus.maxMessageBytes)`, {
      details: { index, size, limit: maxBytes },
    });
  }
  return { key, event, headers };
}

/**
 * Turns a stream entry back into a Delivery. Throws CUTOVER_EVENT_INVALID when the entry is not one cutover
 * wrote (the caller dead-letters it raw).
 */
export function decodeEntry(topic: string, id: string, fields: readonly string[], attempt: number): Delivery {
  let key: string | null = null;
  let eventText: string | undefined;
  let headersText: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i];
    if (name === 'event') eventText = fields[i + 1];
    else if (name === 'key') key = fields[i + 1]!;
    else if (name === 'headers') headersText = fields[i + 1];
  }
  if (eventText === undefined) throw new ValidationError(ErrorCodes.EVENT_INVALID, `stream entry ${id} has no event field`);
  let event: unknown;
  let headers: Record<string, string> = {};
  try {
    event = JSON.parse(eventText);
    if (headersText) headers = JSON.parse(headersText) as Record<string, string>;
  } catch (err) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `stream entry ${id} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return { topic, key, event: checkedEvent(event, `stream entry ${id}`), headers, position: id, publishedAt: idTime(id), attempt };
}

/** The raw fields of an entry, for dead-lettering one that does not decode. */
export function rawFields(fields: readonly string[]): EncodedMessage {
  const out: EncodedMessage = { key: null, event: '', headers: '' };
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'key') out.key = fields[i + 1]!;
    else if (fields[i] === 'event') out.event = fields[i + 1]!;
    else if (fields[i] === 'headers') out.headers = fields[i + 1]!;
  }
  return out;
}

/** Narrows an XREAD / XREADGROUP reply: `[[stream, [[id, fields], ...]], ...]` or null. */
export function streamsOf(reply: unknown): Array<[string, RawEntry[]]> {
  return Array.isArray(reply) ? (reply as Array<[string, RawEntry[]]>) : [];
}
