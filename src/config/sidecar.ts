import { z } from 'zod';
import { OBSERVATIONS_TOPIC } from '../events/wire.js';
import { httpUrl } from './fields.js';
import { conventionProblem } from '../bus/topics.js';
import { durationSchema } from '../duration.js';

const UNITS: Record<string, number> = { b: 1, kb: 1_000, kib: 1_024, mb: 1_000_000, mib: 1_048_576, gb: 1_000_000_000, gib: 1_073_741_824 };

/** Parses `512`, `64KiB`, `1MB`, `2GiB` (case-insensitive) into bytes; undefined when malformed. */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  if (!m) return undefined;
  const unit = UNITS[(m[2] || 'b').toLowerCase()];
  return unit === undefined ? undefined : Math.floor(Number(m[1]) * unit);
}

/** zod type for sizes in config: `256KiB`, `1MB` or a number of bytes; yields bytes. */
export const byteSizeSchema = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseByteSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a size like 512KiB, 1MB or a number of bytes, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return bytes;
});

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name')
  .transform((h) => h.toLowerCase());

/** Headers that never reach the bus unless the operator explicitly removes them from `redact.headers`. */
export const DEFAULT_REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];
/** Query parameters whose values are masked in everything published. */
export const DEFAULT_REDACTED_QUERY = ['access_token', 'api_key', 'apikey'];
/** Request headers an exact HTTP replay needs, carried beside the event (never in `data`). */
export const DEFAULT_REQUEST_HEADERS = ['content-type', 'accept', 'accept-language', 'idempotency-key', 'x-request-id'];
/** Response headers kept in the direct observation: the ones a comparison of results can use. */
export const DEFAULT_RESPONSE_HEADERS = ['content-type', 'location', 'etag', 'retry-after'];

/**
 * One routing rule for a sidecar beside a caller: requests whose Host header equals `host` (port
 * included when the caller sends it) and/or whose path starts with `prefix` go to `upstream`. Rules are
 * tried in order; the top-level `upstream`, when set, takes what no rule matched.
 */
export const routeSchema = z
  .object({
    host: z.string().min(1).transform((h) => h.toLowerCase()).optional(),
    prefix: z.string().regex(/^\//, 'expected a path prefix starting with /').optional(),
    upstream: httpUrl,
  })
  .strict()
  .refine((r) => r.host !== undefined || r.prefix !== undefined, { message: 'a route needs host, prefix or both' });

export const captureSchema = z
  .object({
    /** Request bodies larger than this are forwarded but not dual-written (counted as skipped). */
    maxBodyBytes: byteSizeSchema.default('256KiB'),
    /** Response bodies larger than this are forwarded; the observation carries no body (flagged). */
    maxResponseBytes: byteSizeSchema.default('256KiB'),
    /** Request headers carried for replay in the `cutover-http-headers` message header; `*` = all. */
    requestHeaders: z.array(z.union([z.literal('*'), headerName])).default(DEFAULT_REQUEST_HEADERS),
    /** Response headers kept in the direct observation; `*` = all. */
    responseHeaders: z.array(z.union([z.literal('*'), headerName])).default(DEFAULT_RESPONSE_HEADERS),
  })
  .strict();

export const redactSchema = z
  .object({
    /** Dropped from everything published, whatever the allow-lists say. Replaces the default list. */
    headers: z.array(headerName).default(DEFAULT_REDACTED_HEADERS),
    /** Query parameters whose values are replaced by `[REDACTED]` in everything published. */
    query: z.array(z.string().min(1)).default(DEFAULT_REDACTED_QUERY),
  })
  .strict();

const jsonPointer = z.string().regex(/^(\/([^~/]|~[01])*)+$/, 'expected a JSON pointer like /card/number');

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name');
const keyIdSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, dots, _ or -');

/** A key that only decrypts (`encryption.keys`): an older key during a rotation, or a caller's key. */
export const decryptionKeySchema = z
  .object({
    /** The `kid` of the values it decrypts. */
    keyId: keyIdSchema,
    /** Name of the environment variable holding it (64 hex characters or base64 of 32 bytes). */
    keyEnv: envName,
  })
  .strict();

export const encryptionSchema = z
  .object({
    /** Name of the environment variable holding the 256-bit key (64 hex characters or base64 of 32 bytes). */
    keyEnv: envName,
    /** Identifies the key in events (`cutoverkid`), so consumers pick the right key after a rotation. */
    keyId: keyIdSchema,
    /** JSON pointers of request and response body fields to encrypt (AES-256-GCM). */
    fields: z.array(jsonPointer).min(1),
    /**
     * More keys this process decrypts with, never encrypts with, chosen by each value's `kid`: the old key
     * while a rotation drains the bus. The shadow side, `deliver:` and the comparator decrypt with
     * `keyEnv` and these.
     */
    keys: z.array(decryptionKeySchema).default([]),
  })
  .strict();

export const spoolSchema = z
  .object({
    /** Directory of the spool; default `<dataDir>/spool/<agent>`. One sidecar per directory (locked). */
    dir: z.string().min(1).optional(),
    /** Cap on the spool's files; past it, events are dropped (counted and logged). */
    maxBytes: byteSizeSchema.default('256MiB'),
    /** Size at which the spool starts a new segment file (drained segments are deleted whole). */
    segmentBytes: byteSizeSchema.default('8MiB'),
    /**
     * What a crash may lose of the events the sidecar accepted. With `interval` and `strict` every event is
     * also written to a journal in the spool directory as soon as the event loop is free, and sent again
     * after a crash (at-least-once), so a killed process (SIGKILL, OOM kill) loses only what it accepted
     * after its last journal write began. They differ on a power loss or kernel crash: `interval` fdatasyncs
     * the journal every `commitInterval` (at most that much is lost), `strict` after every write (at most
     * one write is lost), for more disk flushes. `none`: no journal; a crash loses everything waiting in
     * memory (up to `publisher.linger` plus a publish round, up to `publisher.publishTimeout`). The caller
     * never waits for the journal.
     */
    durability: z.enum(['none', 'interval', 'strict']).default('interval'),
    /** `durability: interval`: time between fdatasyncs of the journal (what a power loss may lose). */
    commitInterval: durationSchema.default('10ms'),
  })
  .strict();

export const publisherSchema = z
  .object({
    /** In-memory queue bound; when full, the queue moves to the spool. */
    queueSize: z.number().int().min(1).default(10_000),
    /** Most events per publish round. */
    maxBatch: z.number().int().min(1).default(500),
    /**
     * How long a round waits to gather events. Bus clients pay mostly per call, not per event (measured:
     * one-event publishes cost 10-15x more CPU per event than 100-event ones). Shadow copies and
     * observations are off the request path, so waiting buys CPU at no cost to callers: at 1,000 req/s on
     * Kafka, 50ms used 18% less sidecar CPU than 5ms (bench:proxy). Bus-mode commands do not wait here.
     * 0 sends as soon as the loop is free.
     */
    linger: durationSchema.default('50ms'),
    /** A publish round slower than this is treated as failed and its events are spooled. */
    publishTimeout: durationSchema.default('2s'),
    /** Wait before retrying the bus after a failure; doubles up to `maxBackoff`. */
    backoff: durationSchema.default('250ms'),
    maxBackoff: durationSchema.default('5s'),
    /** On shutdown, how long to keep sending the queue and spool before leaving the rest spooled. */
    drainTimeout: durationSchema.default('10s'),
    /** Refuse to start when the bus is unreachable (otherwise start, spool, and keep retrying). */
    requireBus: z.boolean().default(false),
  })
  .strict();

/**
 * Top-level `deliver:` — the callee side of bus mode. The sidecar consumes the topics of the named flows
 * (consumer group `cutover.deliver.<flow>`), calls its local agent over HTTP and replies to each command's
 * `replyto`. Shadow-mode copies are skipped: the direct call already reached the agent.
 */
export const deliverSchema = z
  .object({
    /** Names of flows declared under `flows:` whose commands this sidecar serves. */
    flows: z.array(z.string().min(1)).min(1),
    /** Where commands are sent; default the sidecar's `upstream`. */
    target: httpUrl.optional(),
    /** Keys delivered in parallel per flow (per-key order always holds). */
    concurrency: z.number().int().min(1).max(1024).default(8),
    /** Per call to the agent; a timeout is retried like a connection error. */
    timeout: durationSchema.default('5s'),
    /** Attempts before an error reply is sent and the command goes to `<topic>.dlq`. */
    maxAttempts: z.number().int().min(1).max(100).default(3),
    /** Where a new consumer group starts: `end` ignores commands published before the first start. */
    from: z.enum(['start', 'end']).default('start'),
  })
  .strict();

/** Top-level `replies:` — this replica's reply channel for bus-mode calls. */
export const repliesSchema = z
  .object({
    /**
     * Names this replica's reply topic `cutover.replies.<agent>.<instance>`. Default: a random id per
     * start. Set it (e.g. to the pod name) to reuse one topic across restarts instead of leaving one behind.
     */
    instance: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected lowercase letters, digits, _ or -').optional(),
  })
  .strict();

/** The sidecar's keys of the config file, beside the contract keys (agent, listen, upstream, admin, bus, flows). */
export const sidecarConfigShape = {
  /**
   * Base of the observation topics: flow F's direct observations, and the `replyto` of its call events,
   * are on `<observationsTopic>.F`. Leave the default (`cutover.observations`) unless several installations
   * share one broker (benchmarks, staging); then pick bases that are not below one another.
   */
  observationsTopic: z
    .string()
    .superRefine((topic, ctx) => {
      const problem = conventionProblem(topic);
      if (problem || !topic.startsWith('cutover.')) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem ?? 'expected a topic under cutover.' });
    })
    .default(OBSERVATIONS_TOPIC),
  routes: z.array(routeSchema).default([]),
  /** No response headers from the upstream within this time → 504 CUTOVER_UPSTREAM_TIMEOUT. */
  upstreamTimeout: durationSchema.default('30s'),
  /** Free keep-alive sockets to the upstream are closed after this; keep it below the upstream's own. */
  upstreamIdleTimeout: durationSchema.default('4s'),
  /** On SIGTERM, how long in-flight requests may take to finish. */
  shutdownTimeout: durationSchema.default('15s'),
  capture: captureSchema.default({}),
  redact: redactSchema.default({}),
  encryption: encryptionSchema.optional(),
  spool: spoolSchema.default({}),
  publisher: publisherSchema.default({}),
  deliver: deliverSchema.optional(),
  replies: repliesSchema.default({}),
};

export type RouteConfig = z.infer<typeof routeSchema>;
export type CaptureConfig = z.infer<typeof captureSchema>;
export type RedactConfig = z.infer<typeof redactSchema>;
export type EncryptionConfig = z.infer<typeof encryptionSchema>;
export type EncryptionConfigInput = z.input<typeof encryptionSchema>;
export type SpoolConfig = z.infer<typeof spoolSchema>;
export type PublisherConfig = z.infer<typeof publisherSchema>;
export type DeliverConfig = z.infer<typeof deliverSchema>;
export type RepliesConfig = z.infer<typeof repliesSchema>;
