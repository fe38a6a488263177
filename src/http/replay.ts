import http from 'node:http';
import https from 'node:https';
import type { Delivery } from '../bus/types.js';
import { ErrorCodes, ProxyError, ValidationError } from '../errors.js';
import { bodyBytes, encodeContent, type EncodedContent } from '../events/body.js';
import { CallHeaders, HOP_BY_HOP_HEADERS, isObservationsTopic, OBSERVATIONS_TOPIC, type CallData } from '../events/wire.js';
import { DEFAULT_REDACTED_HEADERS, DEFAULT_REQUEST_HEADERS } from '../config/sidecar.js';
import { compilePathTemplate, type PathTemplate } from '../flows/match.js';

/**
 * The HTTP replay client: rebuilds a call's request from its call event and sends it to a target (a shadow
 * target, the callee's agent, the direct path again), answering with the response as it travels on the bus.
 */

/** Response headers a reply keeps by default: the sidecar's default allow-list for direct observations. */
export const DEFAULT_REPLY_HEADERS = ['content-type', 'location', 'etag', 'retry-after'];

/** An HTTP request rebuilt from a call event. */
export interface ReplayRequest {
  method: string;
  /** Path and query, as the caller sent them. */
  target: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

export interface ReplayResponse {
  status: number;
  headers: Record<string, string>;
  /** The body as it travels on the bus (content-encoding undone when possible). */
  body: EncodedContent & { bodySkipped?: 'too_large'; bodyBytes: number };
  latencyMs: number;
  /** The answering code's version, from `SendOptions.versionHeader`. */
  version?: string;
}

/**
 * The headers of a request as a replay sends them again: hop-by-hop and recomputed ones dropped
 * ({@link HOP_BY_HOP_HEADERS}), repeated values joined with `, `. `host` is dropped too, so the target
 * sees its own name, unless `keepHost` (a call repeated exactly as the sidecar forwarded it, which keeps
 * the caller's `host`).
 */
export function replayHeaders(headers: http.IncomingHttpHeaders | Record<string, string>, options: { keepHost?: boolean } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || (name === 'host' && !options.keepHost)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Prefix of the sidecars' own reply channels (`cutover.replies.<agent>.<instance>`). */
export const REPLY_CHANNEL_PREFIX = 'cutover.replies.';

const REPLY_CHANNEL = /^cutover\.replies\.[a-z0-9][a-z0-9_-]*\.[a-z0-9][a-z0-9_-]{0,62}$/;

/** Whether `topic` is a sidecar's reply channel, the only `replyto` a bus-mode command may name. */
export function isReplyChannel(topic: string): boolean {
  return REPLY_CHANNEL.test(topic);
}

/**
 * Header names that carry credentials whatever the config says. A sidecar never publishes them (redaction
 * drops them), so a command that carries one was written by someone else: refused, not stripped.
 */
const CREDENTIAL_HEADER = /^(?:authorization|proxy-authorization|cookie|set-cookie)$|api[-_]?key|auth|token|secret|password|session|credential/;

/**
 * Whether a (lowercase) header name carries credentials: a denied one always, one whose name looks like
 * a credential unless the allow-list names it (an operator who captures `x-session-id` on purpose).
 */
export function isCredentialHeader(name: string, denied: ReadonlySet<string> = DEFAULT_DENIED, allowed: ReadonlySet<string> = new Set()): boolean {
  return denied.has(name) || (CREDENTIAL_HEADER.test(name) && !allowed.has(name));
}

const DEFAULT_DENIED: ReadonlySet<string> = new Set(DEFAULT_REDACTED_HEADERS);

/**
 * What a replay of a flow's commands may send. Anyone who can write to the bus can write a command, so
 * the request is held to the flow's own `match`, headers to an allow-list, and replies to topics cutover
 * created: a forged command cannot make the agent run another route, carry someone's credentials, or
 * send the agent's answer to a topic of the forger's choosing.
 */
export interface ReplayPolicy {
  method: string;
  path: PathTemplate;
  /** Headers the replay sends (lowercase); `*` = all that are not credentials. */
  headers: ReadonlySet<string>;
  /** Credential headers beyond the built-in ones (the sidecar's `redact.headers`). */
  denied: ReadonlySet<string>;
  /** Whether the command's `replyto` may receive the answer. */
  replyTo: (topic: string) => boolean;
}

export interface ReplayPolicyOptions {
  /** The request header allow-list (the sidecar's `capture.requestHeaders`). Default {@link DEFAULT_REQUEST_HEADERS}. */
  headers?: readonly string[];
  /** The sidecar's `redact.headers`: never replayed, refused when present. */
  denied?: readonly string[];
  /** Allowed `replyto` topics. Default: the observations topic and the sidecars' reply channels. */
  replyTo?: (topic: string) => boolean;
}

/**
 * Replies of the shadow side: an observation topic (shadow copies: a flow's `<observationsTopic>.<flow>`, or
 * the shared `observationsTopic` older sidecars name) or a sidecar's reply channel (bus mode).
 */
export function shadowReplyTopics(observationsTopic: string = OBSERVATIONS_TOPIC): (topic: string) => boolean {
  return (topic) => isObservationsTopic(topic, observationsTopic) || isReplyChannel(topic);
}

export function replayPolicy(flow: { match: { method: string; path: string } }, options: ReplayPolicyOptions = {}): ReplayPolicy {
  return {
    method: flow.match.method.toUpperCase(),
    path: compilePathTemplate(flow.match.path),
    headers: new Set((options.headers ?? DEFAULT_REQUEST_HEADERS).map((h) => h.toLowerCase())),
    denied: new Set([...DEFAULT_REDACTED_HEADERS, ...(options.denied ?? [])].map((h) => h.toLowerCase())),
    replyTo: options.replyTo ?? shadowReplyTopics(),
  };
}

/** Why a replay was refused: the `reason` label of the refusal metric and `details.reason` of the error. */
export type RefusalReason = 'method' | 'path' | 'credential_header' | 'replyto';

function refused(id: string, reason: RefusalReason, message: string): ValidationError {
  const code = reason === 'replyto' ? ErrorCodes.AUTH_REPLYTO_REFUSED : ErrorCodes.AUTH_REPLAY_REFUSED;
  return new ValidationError(code, `event ${id}: ${message}`, { details: { reason } });
}

/** The refusal reason of an error thrown by {@link checkReplyTo} or {@link rebuildRequest}, if it is one. */
export function refusalReason(err: unknown): RefusalReason | undefined {
  if (!(err instanceof ValidationError) || (err.code !== ErrorCodes.AUTH_REPLAY_REFUSED && err.code !== ErrorCodes.AUTH_REPLYTO_REFUSED)) return undefined;
  return err.details?.reason as RefusalReason;
}

/**
 * Throws CUTOVER_AUTH_REPLYTO_REFUSED when the event names a `replyto` the policy does not allow. The topic
 * is quoted (truncated): it is the forger's text, not a secret.
 */
export function checkReplyTo(event: Delivery['event'], policy: Pick<ReplayPolicy, 'replyTo'>): void {
  const topic = event.replyto;
  if (topic === undefined || policy.replyTo(topic)) return;
  throw refused(event.id, 'replyto', `replyto ${JSON.stringify(topic.slice(0, 200))} is not a reply topic cutover created (${OBSERVATIONS_TOPIC}.<flow> or ${REPLY_CHANNEL_PREFIX}<agent>.<instance>)`);
}

/** Dot segments a server would resolve (`/stock/..` reaches `/`), also percent-encoded. */
function hasDotSegment(path: string): boolean {
  return path.split('/').some((segment) => {
    let decoded = segment;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      // Left raw: a malformed escape cannot spell a dot segment.
    }
    return decoded === '.' || decoded === '..' || decoded.includes('/') || decoded.includes('\\');
  });
}

/**
 * Rebuilds the caller's request from a call event: method, path+query and allow-listed headers from the
 * message headers the sidecar set, the body from `data`. Without those headers (an event another producer
 * wrote) it falls back to the flow's method and path template filled from `data.params` and `data.query`.
 * The request must be one the flow allows: its method, a path its template matches, no credential header
 * (CUTOVER_AUTH_REPLAY_REFUSED); headers outside the allow-list are dropped. Throws CUTOVER_EVENT_INVALID
 * when the event cannot be replayed. Neither is retriable.
 */
export function rebuildRequest(delivery: Delivery, flow: { match: { method: string; path: string } }, policy: ReplayPolicy = replayPolicy(flow)): ReplayRequest {
  const id = delivery.event.id;
  const data = (typeof delivery.event.data === 'object' && delivery.event.data !== null ? delivery.event.data : {}) as Partial<CallData>;
  const method = (delivery.headers[CallHeaders.method] ?? flow.match.method).toUpperCase();
  const target = delivery.headers[CallHeaders.target] ?? fillTemplate(flow.match.path, data.params ?? {}, data.query ?? {});
  if (!target.startsWith('/')) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${id}: ${CallHeaders.target} must start with /, got ${JSON.stringify(target.slice(0, 100))}`);
  }
  if (method !== policy.method) throw refused(id, 'method', `method ${JSON.stringify(method.slice(0, 20))} is not the flow's ${policy.method}`);
  const path = target.split(/[?#]/, 1)[0]!;
  if (target.includes('#') || hasDotSegment(path) || !policy.path.match(path)) {
    throw refused(id, 'path', `path ${JSON.stringify(path.slice(0, 200))} does not match the flow's ${policy.path.template}`);
  }
  let sent: Record<string, string> = {};
  const rawHeaders = delivery.headers[CallHeaders.headers];
  if (rawHeaders !== undefined) {
    try {
      const parsed = JSON.parse(rawHeaders) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TypeError('not an object');
      sent = Object.fromEntries(Object.entries(parsed as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]));
    } catch (err) {
      throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${id}: ${CallHeaders.headers} is not a JSON object of strings`, { cause: err });
    }
  }
  const credential = Object.keys(sent).find((name) => isCredentialHeader(name, policy.denied, policy.headers));
  // Named, never quoted with its value: the value is someone's credential.
  if (credential !== undefined) throw refused(id, 'credential_header', `carries the credential header ${credential}, which cutover never publishes`);
  const allowAll = policy.headers.has('*');
  const headers = replayHeaders(Object.fromEntries(Object.entries(sent).filter(([name]) => allowAll || policy.headers.has(name))));
  // The sidecar withheld a body it could not encrypt: replaying the call without it would run another call.
  const skipped = (data as { bodySkipped?: unknown }).bodySkipped;
  if (skipped !== undefined) throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${id}: its body was not published (bodySkipped: ${JSON.stringify(String(skipped).slice(0, 40))}), so the call cannot be replayed`);
  const body = data.body === undefined ? undefined : bodyBytes(data);
  if (body && headers['content-type'] === undefined) {
    headers['content-type'] = data.contentType ?? (data.bodyEncoding === undefined ? 'application/json' : 'application/octet-stream');
  }
  return { method, target, headers, body };
}

function fillTemplate(template: string, params: Record<string, string>, query: Record<string, string | string[]>): string {
  const path = template
    .split('/')
    .map((s) => (s.startsWith(':') ? encodeURIComponent(params[s.slice(1)] ?? '') : s))
    .join('/');
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const one of Array.isArray(v) ? v : [v]) qs.append(k, one);
  const q = qs.toString();
  return q ? `${path}?${q}` : path;
}

export interface SendOptions {
  /** Whole exchange, connect to last byte. */
  timeout: number;
  /** Response bodies larger than this are not kept (the reply says `bodySkipped: too_large`). */
  maxResponseBytes: number;
  /** Response headers kept in the reply: these (lowercase names), or those a function picks. */
  keepHeaders: ReadonlySet<string> | ((headers: http.IncomingHttpHeaders) => Record<string, string>);
  agent: http.Agent | https.Agent;
  /** Names the target in error messages. Default `shadow target`. */
  label?: string;
  /** A response header carrying the version of the answering code (lowercase), read into `version`. */
  versionHeader?: string;
}

/**
 * Sends a request to `base` (a path prefix in it is kept, as the sidecar's proxy keeps it). Rejects with a
 * retriable ProxyError: CUTOVER_UPSTREAM_UNREACHABLE on connection errors, CUTOVER_UPSTREAM_TIMEOUT after
 * `timeout`. Any status resolves; the caller decides what a 5xx means.
 */
export function sendReplay(base: URL, req: ReplayRequest, options: SendOptions): Promise<ReplayResponse> {
  const started = performance.now();
  const prefix = base.pathname.endsWith('/') ? base.pathname.slice(0, -1) : base.pathname;
  const client = base.protocol === 'https:' ? https : http;
  const label = options.label ?? 'shadow target';
  const keep = options.keepHeaders;
  return new Promise<ReplayResponse>((resolve, reject) => {
    let settled = false;
    const fail = (err: ProxyError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      reject(err);
    };
    const request = client.request(
      {
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port || undefined,
        method: req.method,
        path: prefix + req.target,
        headers: req.body ? { ...req.headers, 'content-length': String(req.body.length) } : req.headers,
        agent: options.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= options.maxResponseBytes) chunks.push(chunk);
        });
        res.on('error', (err) => fail(unreachable(label, base, err)));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          let headers: Record<string, string>;
          if (typeof keep === 'function') {
            headers = keep(res.headers);
          } else {
            headers = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v !== undefined && keep.has(k)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
            }
          }
          const body: ReplayResponse['body'] =
            size > options.maxResponseBytes
              ? { bodySkipped: 'too_large', bodyBytes: size }
              : { ...encodeContent(Buffer.concat(chunks, size), res.headers['content-type'], res.headers['content-encoding'], options.maxResponseBytes), bodyBytes: size };
          const response: ReplayResponse = { status: res.statusCode ?? 0, headers, body, latencyMs: performance.now() - started };
          const version = options.versionHeader ? res.headers[options.versionHeader] : undefined;
          if (typeof version === 'string' && version !== '') response.version = version.slice(0, 100);
          resolve(response);
        });
      },
    );
    const timer = setTimeout(() => fail(new ProxyError(ErrorCodes.UPSTREAM_TIMEOUT, `${label} ${base.origin} did not answer within ${options.timeout} ms`, { retriable: true, status: 504 })), options.timeout);
    request.on('error', (err) => fail(unreachable(label, base, err)));
    request.end(req.body);
  });
}

function unreachable(label: string, base: URL, err: Error): ProxyError {
  return new ProxyError(ErrorCodes.UPSTREAM_UNREACHABLE, `${label} ${base.origin} unreachable: ${err.message}`, { cause: err, retriable: true, status: 502 });
}
