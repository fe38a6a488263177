import { randomFillSync, randomUUID } from 'node:crypto';
import { datetimeRegex, z } from 'zod';
import { ErrorCodes, ValidationError } from '../errors.js';
import type { CloudEvent } from './types.js';
import { EXTENSIONS } from './wire.js';

const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const SCHEMA_VERSION = /^\d+(\.\d+){0,2}$/;

const cloudEventObject = z
  .object({
    specversion: z.literal('1.0', { errorMap: () => ({ message: 'expected "1.0"' }) }),
    id: z.string().min(1),
    source: z.string().min(1),
    type: z.string().min(1),
    time: z.string().datetime({ offset: true }).optional(),
    datacontenttype: z.string().min(1).optional(),
    dataschema: z.string().min(1).optional(),
    subject: z.string().optional(),
    data: z.unknown().optional(),
    data_base64: z.string().optional(),
    schemaversion: z.string().regex(SCHEMA_VERSION, 'expected a version like 1, 1.2 or 1.2.3').optional(),
    correlationid: z.string().min(1).optional(),
    causationid: z.string().min(1).optional(),
    replyto: z.string().min(1).optional(),
    partitionkey: z.string().optional(),
    traceparent: z.string().regex(TRACEPARENT, 'expected a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)').optional(),
    cutoverflow: z.string().min(1).optional(),
    cutovermode: z.string().min(1).optional(),
  })
  .passthrough();

const cloudEventSchema = cloudEventObject.refine((e) => e.data === undefined || e.data_base64 === undefined, {
  path: ['data_base64'],
  message: 'data and data_base64 are mutually exclusive',
});

/** The schema's attributes in its order: the order of the attributes of a validated event. */
const SHAPE_KEYS = Object.keys(cloudEventObject.shape);
const SHAPE = new Set(SHAPE_KEYS);
/** The exact test zod's `datetime({ offset: true })` applies. */
const DATETIME = datetimeRegex({ precision: null, offset: true, local: false });

/** How each attribute is checked by hand; data is anything, specversion is checked apart. */
const enum Rule {
  NonEmpty,
  Text,
  Time,
  SchemaVersion,
  Traceparent,
  Any,
}
const RULES: Record<string, Rule> = {
  id: Rule.NonEmpty,
  source: Rule.NonEmpty,
  type: Rule.NonEmpty,
  time: Rule.Time,
  datacontenttype: Rule.NonEmpty,
  dataschema: Rule.NonEmpty,
  subject: Rule.Text,
  data: Rule.Any,
  data_base64: Rule.Text,
  schemaversion: Rule.SchemaVersion,
  correlationid: Rule.NonEmpty,
  causationid: Rule.NonEmpty,
  replyto: Rule.NonEmpty,
  partitionkey: Rule.Text,
  traceparent: Rule.Traceparent,
  cutoverflow: Rule.NonEmpty,
  cutovermode: Rule.NonEmpty,
};

const RULE_OF = new Map<string, Rule>(Object.entries(RULES));

function passes(rule: Rule, v: unknown): boolean {
  switch (rule) {
    case Rule.Any:
      return true;
    case Rule.Text:
      return typeof v === 'string';
    case Rule.NonEmpty:
      return typeof v === 'string' && v.length > 0;
    case Rule.Time:
      return typeof v === 'string' && DATETIME.test(v);
    case Rule.SchemaVersion:
      return typeof v === 'string' && SCHEMA_VERSION.test(v);
    case Rule.Traceparent:
      return typeof v === 'string' && TRACEPARENT.test(v);
  }
}

/** The attributes checked one by one: the schema's, in its order, but specversion (checked first). */
const CHECKED_KEYS = SHAPE_KEYS.filter((k) => k !== 'specversion');

/**
 * Whether the schema accepts `value`, decided without zod for the usual event: true only for a plain object
 * whose every attribute passes; false sends it to the schema, which decides (and words the errors). Never
 * true for what the schema refuses (checked against it in test/events/cloudevent.test.ts). An attribute of
 * the schema without a rule here is left to the schema. With `out` (holding specversion), fills it with
 * what the schema returns for an accepted event: a shallow copy, the schema's attributes first in its order
 * (one present but undefined kept), then the extensions in the event's order (undefined ones left out).
 * Without `out` only the attributes the event lists (`for…in`) are read, which is the same as long as
 * Object.prototype holds none of the schema's names.
 */
function passesByHand(value: unknown, out?: Record<string, unknown>): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false;
  const v = value as Record<string, unknown>;
  // zod reads an object with then() and catch() as a promise.
  if (typeof v.then === 'function') return false;
  if (v.specversion !== '1.0' || v.id === undefined || v.source === undefined || v.type === undefined) return false;
  if (v.data !== undefined && v.data_base64 !== undefined) return false;
  if (!out) {
    // No copy wanted: one pass over the attributes the event has (a third of the time of the loops below).
    for (const key in v) {
      if (key === 'specversion') continue;
      const rule = RULE_OF.get(key);
      if (rule !== undefined) {
        const attr = v[key];
        if (attr !== undefined && !passes(rule, attr)) return false;
      } else if (SHAPE.has(key) || !EXTENSION_NAME.test(key)) return false;
    }
    return true;
  }
  for (const key of CHECKED_KEYS) {
    const attr = v[key];
    if (attr === undefined) {
      if (key in v) out[key] = undefined;
      continue;
    }
    const rule = RULE_OF.get(key);
    if (rule === undefined || !passes(rule, attr)) return false;
    out[key] = attr;
  }
  for (const key in v) {
    if (SHAPE.has(key)) continue;
    if (!EXTENSION_NAME.test(key)) return false;
    if (v[key] !== undefined) out[key] = v[key];
  }
  return true;
}

/** The schema's result for `value` when the hand-written check accepts it, else undefined. */
function acceptedByHand(value: unknown): CloudEvent | undefined {
  const out: Record<string, unknown> = { specversion: '1.0' };
  return passesByHand(value, out) ? (out as unknown as CloudEvent) : undefined;
}

/** Attribute names the spec allows; checked apart from the schema so one report lists every problem. */
function nameIssues(value: unknown): string[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.keys(value)
    .filter((name) => name !== 'data_base64' && !EXTENSION_NAME.test(name))
    .map((name) => `${name}: attribute names must be 1-20 lowercase letters or digits`);
}

/** What {@link buildEvent} takes: the source and type, and any optional attribute or cutover extension. */
export interface NewEvent<T> extends Partial<Pick<CloudEvent<T>, 'data' | 'datacontenttype' | 'id' | 'subject' | (typeof EXTENSIONS)[number]>> {
  source: string;
  type: string;
  /** Default now. */
  time?: Date | string;
}

/** Builds a CloudEvent with a fresh id and the current time; omits attributes left undefined. */
export function buildEvent<T>(input: NewEvent<T>): CloudEvent<T> {
  const event: CloudEvent<T> = {
    specversion: '1.0',
    id: input.id ?? randomUUID(),
    source: input.source,
    type: input.type,
    time: input.time instanceof Date ? input.time.toISOString() : (input.time ?? new Date().toISOString()),
    datacontenttype: input.datacontenttype ?? 'application/json',
  };
  for (const name of ['subject', ...EXTENSIONS] as const) {
    const value = input[name];
    if (value !== undefined) event[name] = value;
  }
  if (input.data !== undefined) event.data = input.data;
  return event;
}

/**
 * Validates an object as a CloudEvent; throws CUTOVER_EVENT_INVALID naming each bad attribute. Every event
 * a consumer takes off a bus comes through here, so the usual valid event is checked by hand (a fifth of
 * zod's time); anything else goes through the schema.
 */
export function validateEvent(value: unknown): CloudEvent {
  return acceptedByHand(value) ?? validateEventBySchema(value);
}

/**
 * {@link validateEvent} for a value just parsed from JSON text found at `where` (an entry read off a bus):
 * nothing else holds it, so an accepted value is returned itself rather than copied (its attributes in the
 * text's order); the CUTOVER_EVENT_INVALID it throws starts with `where`.
 */
export function checkedEvent(value: unknown, where: string): CloudEvent {
  return passesByHand(value) ? (value as CloudEvent) : bySchemaAt(value, where);
}

/**
 * The same check for a message being published, without the copy (what is published is serialized from
 * the caller's object): throws CUTOVER_EVENT_INVALID starting with `where`.
 */
export function assertEvent(value: unknown, where: string): asserts value is CloudEvent {
  if (!passesByHand(value)) bySchemaAt(value, where);
}

function bySchemaAt(value: unknown, where: string): CloudEvent {
  try {
    return validateEventBySchema(value);
  } catch (err) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `${where}: ${(err as Error).message}`, { cause: err, ...(err instanceof ValidationError && err.details ? { details: err.details } : {}) });
  }
}

/** {@link validateEvent} through the zod schema alone: the reference the hand-written check must agree with. */
export function validateEventBySchema(value: unknown): CloudEvent {
  const result = cloudEventSchema.safeParse(value);
  const issues = [...(result.success ? [] : result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'event'}: ${i.message}`)), ...nameIssues(value)];
  if (!result.success || issues.length > 0) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `invalid CloudEvent: ${issues.join('; ')}`, { details: { issues } });
  }
  return result.data as CloudEvent;
}

/** Structured-mode JSON text of an event. */
export function serializeEvent(event: CloudEvent): string {
  return JSON.stringify(event);
}

/** Parses structured-mode JSON text; throws CUTOVER_EVENT_INVALID on bad JSON or attributes. */
export function parseEvent(text: string | Buffer): CloudEvent {
  let value: unknown;
  try {
    value = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch (err) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `invalid CloudEvent: not JSON (${(err as Error).message})`, { cause: err });
  }
  // The parsed value is this call's own: checked, not copied.
  return passesByHand(value) ? (value as CloudEvent) : validateEventBySchema(value);
}

/** The major part of a schema version (`2.1.0` → 2); undefined when absent or malformed. */
export function schemaMajor(version: string | undefined): number | undefined {
  if (!version) return undefined;
  const major = Number.parseInt(version.split('.')[0] ?? '', 10);
  return Number.isFinite(major) ? major : undefined;
}

/** Random bytes for trace ids, refilled 256 ids at a time: one per untraced request is on the sidecar's hot path. */
const TRACE_ID_BYTES = 24;
const tracePool = Buffer.alloc(TRACE_ID_BYTES * 256);
let tracePoolOffset = tracePool.length;

/** A new W3C traceparent with random trace and span ids, sampled. */
export function newTraceparent(): string {
  for (;;) {
    if (tracePoolOffset === tracePool.length) {
      randomFillSync(tracePool);
      tracePoolOffset = 0;
    }
    const hex = tracePool.toString('hex', tracePoolOffset, tracePoolOffset + TRACE_ID_BYTES);
    tracePoolOffset += TRACE_ID_BYTES;
    const traceId = hex.slice(0, 32);
    const spanId = hex.slice(32);
    // All-zero ids are invalid (W3C); vanishingly rare, but never emit one.
    if (!ALL_ZERO.test(traceId) && !ALL_ZERO.test(spanId)) return `00-${traceId}-${spanId}-01`;
  }
}

const ALL_ZERO = /^0+$/;

export function isTraceparent(value: string): boolean {
  return TRACEPARENT.test(value) && !/^[0-9a-f]{2}-0{32}-/.test(value) && !/-0{16}-[0-9a-f]{2}$/.test(value);
}
