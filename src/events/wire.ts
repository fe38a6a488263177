import type { CallSample, SagaSummary } from '../parity/types.js';
import { bodyText, type EncodedBody } from './body.js';

/**
 * The wire format cutover's parts agree on: the sidecar writes it, the shadow side and SDK agents read
 * and answer it, the comparator pairs it. Names and shapes live here once so the writers and the readers
 * cannot drift apart.
 */

/** Extension attributes cutover defines (CloudEvents names: lowercase letters and digits only). */
export const EXTENSIONS = ['schemaversion', 'correlationid', 'causationid', 'replyto', 'partitionkey', 'traceparent', 'cutoverflow', 'cutovermode'] as const;

/**
 * Extensions of a call event whose body is a JSON-RPC call (flows with `match.rpc`): its `method` and its
 * `id` (as a string; the typed id stays in `data.body.id`), so consumers and bus tooling can route and
 * filter without parsing `data`. They are copies of `data.body`, which the signature covers: a verifying
 * consumer refuses an event whose copies disagree with it ({@link rpcAttributesProblem}).
 */
export const RpcExtensions = { method: 'rpcmethod', id: 'rpcid' } as const;

/** The `rpcmethod` / `rpcid` attributes of a JSON-RPC call (no `rpcid` for a notification or a null id). */
export function rpcAttributes(call: { method: string; id?: string | number | null }): Record<string, string> {
  const out: Record<string, string> = { [RpcExtensions.method]: call.method };
  if (call.id !== undefined && call.id !== null) out[RpcExtensions.id] = String(call.id);
  return out;
}

/** Why an event's `rpcmethod` / `rpcid` do not agree with the JSON-RPC call in its `data.body`; undefined when they do (or are absent). */
export function rpcAttributesProblem(event: { data?: unknown; [name: string]: unknown }): string | undefined {
  const method = event[RpcExtensions.method];
  const id = event[RpcExtensions.id];
  if (method === undefined && id === undefined) return undefined;
  const body = (event.data as { body?: unknown } | undefined)?.body as { method?: unknown; id?: unknown } | undefined;
  if (body === null || typeof body !== 'object') return 'rpcmethod/rpcid on an event whose data.body is no JSON-RPC call';
  if (method !== body.method) return `rpcmethod ${JSON.stringify(method)} is not data.body.method ${JSON.stringify(body.method)}`;
  const bodyId = body.id === undefined || body.id === null ? undefined : String(body.id as string | number);
  if (id !== bodyId) return `rpcid ${JSON.stringify(id)} is not data.body.id ${JSON.stringify(bodyId)}`;
  return undefined;
}

/** Extension naming the key that encrypted fields of `data`, so consumers pick the right key after a rotation. */
export const KEY_ID_EXTENSION = 'cutoverkid';

/**
 * The base of the observation topics (the config's `observationsTopic`): the observations of flow F go to
 * `<base>.<F>` ({@link observationsTopicOf}). The base itself is the shared topic sidecars before per-flow
 * topics published every flow on.
 */
export const OBSERVATIONS_TOPIC = 'cutover.observations';

/**
 * The topic of flow `flow`'s observations: its direct observations and noise baselines, and the `replyto`
 * of its shadow-mode call events (so replay consumers and SDK agents reply there). One topic per flow lets
 * each comparator group read only its flow; the key stays the correlation id, so both sides of a pair meet
 * on one partition.
 */
export function observationsTopicOf(flow: string, base: string = OBSERVATIONS_TOPIC): string {
  return `${base}.${flow}`;
}

/**
 * The pattern covering every flow's observation topic below `base` (flow names may have several levels),
 * and the shared topic `base` itself (`#` matches zero levels too). Wildcards never match `.dlq` topics.
 */
export function observationsPattern(base: string = OBSERVATIONS_TOPIC): string {
  return `${base}.#`;
}

/**
 * The pattern covering every flow's observation topic below `base` but not `base` itself: `*` is one level
 * and `#` zero or more, so `<base>.*.#` is one level or more (flow names may have several).
 */
export function flowObservationsPattern(base: string = OBSERVATIONS_TOPIC): string {
  return `${base}.*.#`;
}

/**
 * Whether `topic` is one of the observation topics below `base`: a flow's topic `<base>.<flow>` or the
 * shared topic `base`; never a dead-letter topic.
 */
export function isObservationsTopic(topic: string, base: string = OBSERVATIONS_TOPIC): boolean {
  if (topic === base) return true;
  return topic.startsWith(`${base}.`) && topic.length > base.length + 1 && !topic.endsWith('.dlq');
}

/**
 * CloudEvent types of the observations the comparator pairs, keyed by correlation id so both sides of a
 * pair land on one partition:
 * - `direct`: the sidecar's record of the direct response;
 * - `noise`: a second direct call of the same request (noise baseline);
 * - `bus`: the bus-driven result, the reply a replay consumer or an SDK agent publishes on `replyto`.
 */
export const ObservationTypes = {
  direct: 'cutover.observation.direct',
  noise: 'cutover.observation.direct.noise',
  bus: 'cutover.observation.bus',
} as const;

/**
 * CloudEvent type of one event of a streamed bus reply (`data`: {@link StreamEventData}), published on a
 * sidecar's reply channel while the bus side still works, so that the sidecar relays it to its caller at
 * once. The bus reply that follows carries the whole stream; only reply channels ever see these.
 */
export const REPLY_STREAM_EVENT_TYPE = 'cutover.reply.stream';

/** `data` of a {@link REPLY_STREAM_EVENT_TYPE} event. */
export interface StreamEventData {
  /** 0, 1, 2... in the order the bus side produced them (a redelivery repeats them; readers drop repeats). */
  seq: number;
  /** The event as stream text (`data: ...\n\n`). */
  text: string;
}

/**
 * Transport headers on a call event's bus message: what an exact HTTP replay needs, kept out of `data`
 * so that a bus-native consumer sees the business payload only.
 */
export const CallHeaders = {
  /** The HTTP method, e.g. `POST`. */
  method: 'cutover-http-method',
  /** The original path and query (`/reservations?dryRun=1`), secrets in the query masked. */
  target: 'cutover-http-target',
  /** JSON object of the allow-listed request headers (lowercase names), credentials never included. */
  headers: 'cutover-http-headers',
} as const;

/**
 * Request headers a replayed or repeated call never forwards: the hop-by-hop headers (RFC 9110 §7.6.1)
 * belong to the caller's connection, and `content-length` is recomputed for the body actually sent.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length']);

/** `data` of a call event: the business payload. */
export interface CallData extends EncodedBody {
  /** The path template's parameters (`/stock/:sku` → `{ sku }`). */
  params: Record<string, string>;
  /** Query parameters; repeated names become arrays. */
  query: Record<string, string | string[]>;
}

export interface ObservationError {
  code: string;
  message?: string;
}

/** `data` shared by every observation type: what one side answered for one call. */
export interface ObservationData extends EncodedBody {
  /** HTTP status (a direct observation: what the caller got, 502/504 when the sidecar answered for the upstream). */
  status?: number;
  /** Allow-listed response headers, lowercase names. */
  headers?: Record<string, string>;
  /** Direct: arrival at the sidecar to the last byte; bus side: the handler's or the replay's run time. */
  latencyMs?: number;
  /** The side failed (sidecar: upstream unreachable; bus side: gave up, see `dlq`). */
  error?: ObservationError;
  /** Set when the body is not in the observation: `too_large`; the comparator then cannot compare bodies. */
  bodySkipped?: string;
  /** Size of the response body as sent, in bytes. */
  bodyBytes?: number;
  /** The response's content-encoding when the body could not be decoded and travels encoded. */
  contentEncoding?: string;
  /**
   * The call, redacted as the sidecar published it (body truncated, see {@link callSample}), so a report
   * can print a replay. The sidecar and replay consumers attach it; SDK agents do not.
   */
  request?: CallSample;
  /** Version of the code that produced this result (the flow's `versions`, or an SDK agent's `version`). */
  version?: string;
  /** Direct observations: where the call stopped fitting the flow's contract (`contract:`), when it did. */
  drift?: string;
  /** Direct observations of JSON-RPC calls: the MCP headers (`mcp-method`, `mcp-name`) that disagreed with the body. */
  rpcHeaderMismatch?: string[];
}

/** `data` of a bus reply (`cutover.observation.bus`): the result plus the timing of the bus path. */
export interface BusReplyData extends ObservationData {
  /** When the bus accepted the call event (Delivery.publishedAt on the consumer side), epoch ms. */
  eventPublishedAt?: number;
  /** When the bus side began handling it, epoch ms (bus lag = consumedAt - eventPublishedAt). */
  consumedAt?: number;
  /** When the reply was handed to the bus, epoch ms. */
  repliedAt?: number;
  /** The delivery attempt that produced the reply. */
  attempt?: number;
  /** The call event went to the DLQ after this error reply. */
  dlq?: boolean;
  /** Size of the serialized call event, bytes (reports advise slimming large events). */
  eventBytes?: number;
  /** The reply of a saga flow: how the saga that answered the call ran, per step. */
  saga?: SagaSummary;
}

/** Longest request body (characters) kept in a call sample. */
export const SAMPLE_BODY_LIMIT = 1_024;

/**
 * The call sample of a call event, from the parts the event was built from (or read back from it):
 * method, target (secret query values masked), allow-listed headers (credentials never included) and the
 * body as published (encrypted fields stay encrypted), truncated. Binary bodies are left out: a text
 * replay could not send them.
 */
export function callSample(parts: { method: string; target: string; headers?: Record<string, string> | undefined; body?: EncodedBody | undefined }): CallSample {
  const sample: CallSample = { method: parts.method, target: parts.target };
  if (parts.headers && Object.keys(parts.headers).length > 0) sample.headers = parts.headers;
  const text = parts.body ? bodyText(parts.body) : undefined;
  if (text !== undefined) {
    if (text.length > SAMPLE_BODY_LIMIT) {
      sample.body = text.slice(0, SAMPLE_BODY_LIMIT);
      sample.bodyTruncated = true;
    } else {
      sample.body = text;
    }
  }
  return sample;
}
