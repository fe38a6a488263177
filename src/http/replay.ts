import http from 'node:http';
import https from 'node:https';
import type { Delivery } from '../bus/types.js';
import { ErrorCodes, ProxyError, ValidationError } from '../errors.js';
import { bodyBytes, encodeContent, type EncodedContent } from '../events/body.js';
import { CallHeaders, HOP_BY_HOP_HEADERS, type CallData } from '../events/wire.js';

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

/**
 * Rebuilds the caller's request from a call event: method, path+query and allow-listed headers from the
 * message headers the sidecar set, the body from `data`. Without those headers (an event another producer
 * wrote) it falls back to the flow's method and path template filled from `data.params` and `data.query`.
 * Throws CUTOVER_EVENT_INVALID (not retriable) when the event cannot be replayed.
 */
export function rebuildRequest(delivery: Delivery, flow: { match: { method: string; path: string } }): ReplayRequest {
  const data = (typeof delivery.event.data === 'object' && delivery.event.data !== null ? delivery.event.data : {}) as Partial<CallData>;
  const method = (delivery.headers[CallHeaders.method] ?? flow.match.method).toUpperCase();
  const target = delivery.headers[CallHeaders.target] ?? fillTemplate(flow.match.path, data.params ?? {}, data.query ?? {});
  if (!target.startsWith('/')) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${delivery.event.id}: ${CallHeaders.target} must start with /, got ${JSON.stringify(target.slice(0, 100))}`);
  }
  let sent: Record<string, string> = {};
  const rawHeaders = delivery.headers[CallHeaders.headers];
  if (rawHeaders !== undefined) {
    try {
      const parsed = JSON.parse(rawHeaders) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TypeError('not an object');
      sent = Object.fromEntries(Object.entries(parsed as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]));
    } catch (err) {
      throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${delivery.event.id}: ${CallHeaders.headers} is not a JSON object of strings`, { cause: err });
    }
  }
  const headers = replayHeaders(sent);
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
