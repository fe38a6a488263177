import { randomFillSync, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ErrorCodes, ValidationError } from '../errors.js';
import type { CloudEvent } from './types.js';
import { EXTENSIONS } from './wire.js';

const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

const cloudEventSchema = z
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
    schemaversion: z.string().regex(/^\d+(\.\d+){0,2}$/, 'expected a version like 1, 1.2 or 1.2.3').optional(),
    correlationid: z.string().min(1).optional(),
    causationid: z.string().min(1).optional(),
    replyto: z.string().min(1).optional(),
    partitionkey: z.string().optional(),
    traceparent: z.string().regex(TRACEPARENT, 'expected a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)').optional(),
    cutoverflow: z.string().min(1).optional(),
    cutovermode: z.string().min(1).optional(),
  })
  .passthrough()
  .refine((e) => e.data === undefined || e.data_base64 === undefined, { path: ['data_base64'], message: 'data and data_base64 are mutually exclusive' });

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

/** Validates an object as a CloudEvent; throws CUTOVER_EVENT_INVALID naming each bad attribute. */
export function validateEvent(value: unknown): CloudEvent {
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
  return validateEvent(value);
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
