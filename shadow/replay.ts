import http from 'node:http';
import https from 'node:https';
import type { Delivery } from '../src/bus/types.js';
import { ErrorCodes, ProxyError, ValidationError } from '../src/errors.js';
import { bodyBytes, decodeContent, encodeBody, type EncodedBody } from './body.js';
import { CallHeaders } from './observations.js';

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
  body: EncodedBody & { bodySkipped?: 'too_large'; bodyBytes: number; contentEncoding?: string };
  latencyMs: number;
}

/** Headers a replay never forwards: hop-by-hop, recomputed, or the sidecar's own. */
const DROPPED = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'te', 'trailer', 'upgrade', 'proxy-connection']);

interface CallData extends EncodedBody {
  params?: Record<string, string>;
  query?: Record<string, string | string[]>;
}

/**
 * Rebuilds the caller's request from a call event: method, path+query and allow-listed headers from the
 * message headers the sidecar set, the body from `data`. Without those headers (an event another producer
 * wrote) it falls back to the flow's method and path template filled from `data.params` and `data.query`.
 * Throws CUTOVER_EVENT_INVALID (not retriable) when the event cannot be replayed.
 */
export function rebuildRequest(delivery: Delivery, flow: { match: { method: string; path: string } }): ReplayRequest {
  const data = (typeof delivery.event.data === 'object' && delivery.event.data !== null ? delivery.event.data : {}) as CallData;
  const method = (delivery.headers[CallHeaders.method] ?? flow.match.method).toUpperCase();
  const target = delivery.headers[CallHeaders.target] ?? fillTemplate(flow.match.path, data.params ?? {}, data.query ?? {});
  if (!target.startsWith('/')) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${delivery.event.id}: ${CallHeaders.target} must start with /, got ${JSON.stringify(target.slice(0, 100))}`);
  }
  let headers: Record<string, string> = {};
  const rawHeaders = delivery.headers[CallHeaders.headers];
  if (rawHeaders !== undefined) {
    try {
      const parsed = JSON.parse(rawHeaders) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TypeError('not an object');
      headers = Object.fromEntries(Object.entries(parsed as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]));
    } catch (err) {
      throw new ValidationError(ErrorCodes.EVENT_INVALID, `event ${delivery.event.id}: ${CallHeaders.headers} is not a JSON object of strings`, { cause: err });
    }
  }
  for (const name of Object.keys(headers)) if (DROPPED.has(name)) delete headers[name];
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
  /** Response headers kept in the reply (lowercase). */
  keepHeaders: ReadonlySet<string>;
  agent: http.Agent | https.Agent;
}

/**
 * Sends a rebuilt request to `base` (the shadow target; a path prefix in it is kept). Rejects with a
 * retriable ProxyError: CUTOVER_UPSTREAM_UNREACHABLE on connection errors, CUTOVER_UPSTREAM_TIMEOUT after
 * `timeout`. Any status resolves; the caller decides what a 5xx means.
 */
export function sendReplay(base: URL, req: ReplayRequest, options: SendOptions): Promise<ReplayResponse> {
  const started = performance.now();
  const prefix = base.pathname.endsWith('/') ? base.pathname.slice(0, -1) : base.pathname;
  const client = base.protocol === 'https:' ? https : http;
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
        res.on('error', (err) => fail(unreachable(base, err)));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined && options.keepHeaders.has(k)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
          }
          const contentType = res.headers['content-type'];
          let body: ReplayResponse['body'];
          if (size > options.maxResponseBytes) {
            body = { bodySkipped: 'too_large', bodyBytes: size };
          } else {
            const raw = Buffer.concat(chunks, size);
            const encoding = res.headers['content-encoding'];
            const decoded = decodeContent(raw, encoding, options.maxResponseBytes);
            body = decoded
              ? { ...encodeBody(decoded, contentType), bodyBytes: size }
              : { body: raw.toString('base64'), bodyEncoding: 'base64', contentEncoding: encoding, bodyBytes: size, ...(contentType ? { contentType } : {}) };
          }
          resolve({ status: res.statusCode ?? 0, headers, body, latencyMs: performance.now() - started });
        });
      },
    );
    const timer = setTimeout(() => fail(new ProxyError(ErrorCodes.UPSTREAM_TIMEOUT, `shadow target ${base.origin} did not answer within ${options.timeout} ms`, { retriable: true, status: 504 })), options.timeout);
    request.on('error', (err) => fail(unreachable(base, err)));
    request.end(req.body);
  });
}

function unreachable(base: URL, err: Error): ProxyError {
  return new ProxyError(ErrorCodes.UPSTREAM_UNREACHABLE, `shadow target ${base.origin} unreachable: ${err.message}`, { cause: err, retriable: true, status: 502 });
}
