import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Delivery } from '../src/bus/types.js';
import { describeError, ErrorCodes, isCutoverError } from '../src/errors.js';
import type { ParsedMode } from '../src/flips/mode.js';
import { SAFE_METHODS } from '../src/config/flow.js';
import type { Logger } from '../src/logger.js';
import { DEFAULT_REPLY_HEADERS, replayHeaders, sendReplay } from '../src/http/replay.js';
import { bodyBytes } from '../src/events/body.js';
import type { BusReplyData, StreamEventData } from '../src/events/wire.js';
import { formatSse, isEventStream, parseSse, SSE_CONTENT_TYPE } from '../src/events/sse.js';
import { isRpcResponse, rpcError, type RpcCall, type RpcResponse } from '../src/flows/rpc.js';
import { openReplyData } from '../src/crypto/body-fields.js';
import type { Keyring } from '../src/crypto/keyring.js';
import { buildObservationMessage } from './call-event.js';
import type { CallParts } from './call-parts.js';
import type { Exchange, SidecarRequest } from './exchange.js';
import type { SidecarMetrics, SkipReason } from './metrics.js';
import type { Outbox } from './outbox.js';
import type { ReplyChannel } from './reply.js';
import type { Upstream } from './upstreams.js';
import { endSpan, SpanKind, startSpan, traceparentOf } from '../src/tracing.js';

/** The modes whose calls may take the bus path. */
export type BusModeKind = Extract<ParsedMode, { kind: 'canary' } | { kind: 'bus' }>;

/** How long a bus-mode call waits for its reply unless the flow sets `timeout`. */
export const DEFAULT_REPLY_TIMEOUT = 5_000;
/** Status of a `kind: event` call once the bus or the spool holds it, unless the flow sets `status`. */
export const DEFAULT_EVENT_STATUS = 202;

/** What became of one call on the bus path (`cutover_sidecar_bus_path_total{outcome}`). */
export type BusOutcome =
  | 'replied'
  | 'accepted'
  | 'spooled'
  | 'reply_timeout'
  | 'bus_unavailable'
  | 'fallback_timeout'
  | 'fallback_unavailable'
  | 'body_too_large';

/**
 * The canary bucket of a key, 0-99: the first 4 bytes of its SHA-1, mod 100. Stable across processes and
 * restarts, so every replica sends one key down the same path.
 */
export function canaryBucket(key: string): number {
  return createHash('sha1').update(key).digest().readUInt32BE(0) % 100;
}

/** Whether a call with `key` takes the bus path in `canary:<percent>`. */
export function takesBusPath(key: string, percent: number): boolean {
  return canaryBucket(key) < percent;
}

/** Response headers a bus reply may set on the caller's response (content-length is recomputed). */
const REPLY_HEADERS = new Set(['content-type', 'location', 'etag', 'retry-after', 'cache-control', 'content-language', 'last-modified', 'expires', 'vary', 'link']);

/** An HTTP response rebuilt from a bus reply. */
export interface ReplyResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Turns a bus reply (`cutover.observation.bus` data: `{ status, headers, body, bodyEncoding, contentType,
 * error }`, as shadow delivery and the SDK publish it) into the caller's response. A reply without a
 * status (the bus side gave up) becomes 502 with its error code; a reply whose body was too large for the
 * bus becomes 502 CUTOVER_MESSAGE_TOO_LARGE, never a silently empty body.
 */
export function replyToResponse(data: BusReplyData | undefined): ReplyResponse {
  const d = data ?? {};
  if (typeof d.status !== 'number' || d.status < 100 || d.status > 599) {
    const code = d.error?.code ?? ErrorCodes.HANDLER_FAILED;
    return jsonError(502, code, d.error?.message ?? 'the bus side answered without a status');
  }
  if (d.bodySkipped) return jsonError(502, ErrorCodes.MESSAGE_TOO_LARGE, 'the reply body was too large to travel on the bus');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(d.headers ?? {})) {
    const name = k.toLowerCase();
    if (REPLY_HEADERS.has(name) && typeof v === 'string') headers[name] = v;
  }
  const body = bodyBytes(d);
  if (headers['content-type'] === undefined) {
    if (d.contentType) headers['content-type'] = d.contentType;
    else if (d.body !== undefined && d.bodyEncoding === undefined) headers['content-type'] = 'application/json';
  }
  // A body that could not be decoded travels still encoded: the caller must be told how.
  if (d.bodyEncoding === 'base64' && d.contentEncoding) headers['content-encoding'] = d.contentEncoding;
  return { status: d.status, headers, body };
}

/**
 * A bus reply as the JSON-RPC response a JSON-RPC caller expects, with the id of its call: a reply whose
 * body is a JSON-RPC response passes with the caller's id; a successful reply with any other JSON body is
 * the `result`; a failed reply (no status, 4xx/5xx) becomes a JSON-RPC error carrying the cutover code in
 * `error.data.code`, with the reply's HTTP status kept so proxies and retry policies still see a failure.
 */
export function rpcReplyToResponse(data: BusReplyData | undefined, call: RpcCall): ReplyResponse {
  const r = replyToResponse(data);
  // A streamed answer: its events are JSON-RPC responses already (the bus side answered the call's id).
  if (isEventStream(r.headers['content-type'])) return r;
  const id = call.id ?? null;
  let value: unknown;
  try {
    value = r.body.length > 0 ? (JSON.parse(r.body.toString('utf8')) as unknown) : undefined;
  } catch {
    value = undefined;
  }
  const headers = { ...r.headers, 'content-type': 'application/json' };
  let response: RpcResponse;
  if (isRpcResponse(value)) response = { ...value, id };
  else if (r.status < 400 && value !== undefined) response = { jsonrpc: '2.0', id, result: value };
  else {
    const error = (value as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof error?.code === 'string' ? error.code : ErrorCodes.HANDLER_FAILED;
    const message = typeof error?.message === 'string' ? error.message : `the bus side answered ${r.status} without a JSON-RPC response`;
    response = rpcError(id, code, message);
  }
  return { status: r.status, headers, body: Buffer.from(JSON.stringify(response)) };
}

function jsonError(status: number, code: string, message: string): ReplyResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ error: { code, message } })) };
}

function send(res: ServerResponse, r: ReplyResponse): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(r.status, { ...r.headers, 'content-length': r.body.length });
  res.end(r.body);
}

/**
 * What the bus path needs from the data plane it serves: the call event of a request, the direct path to
 * fall back on, typed error answers and skip accounting.
 */
export interface BusPathHost {
  /** The parts of `req`'s call event (body `raw` read already); sets `ex.sample`. */
  callParts(req: IncomingMessage, ex: Exchange, raw: Buffer): CallParts;
  /**
   * Forwards `req` directly with its body `chunks` read already (and the rest still on `req` when `rest`);
   * with `capture` the call is dual-written as in shadow mode.
   */
  forwardBuffered(ex: Exchange, req: SidecarRequest, res: ServerResponse, upstream: Upstream | undefined, chunks: Buffer[], rest: boolean, capture: boolean): void;
  /** Answers the caller with a typed JSON error, recorded on `ex`. */
  answer(ex: Exchange, res: ServerResponse, status: number, code: string, message: string): void;
  /** Counts a flow call that was not (fully) dual-written. */
  skip(ex: Exchange, reason: SkipReason): void;
}

/**
 * Relays a streamed bus reply to the caller as Server-Sent Events, in the order the bus side produced
 * them: each event as it arrives (out-of-order ones held until their turn, repeats of a redelivery
 * dropped), then, once the reply comes, whatever it carries beyond what was relayed.
 */
export class StreamRelay {
  private next = 0;
  private readonly early = new Map<number, string>();

  constructor(private readonly res: ServerResponse) {}

  /** Whether the caller has the stream's headers (from then on, only stream events can answer it). */
  get started(): boolean {
    return this.next > 0;
  }

  push(data: StreamEventData | undefined): void {
    if (!data || !Number.isInteger(data.seq) || data.seq < this.next || typeof data.text !== 'string') return;
    this.early.set(data.seq, data.text);
    for (let text = this.early.get(this.next); text !== undefined; text = this.early.get(this.next)) {
      this.early.delete(this.next);
      this.next++;
      this.write(text);
    }
  }

  /** The reply ends the stream: its events past those relayed, then the end. */
  finish(body: Buffer): void {
    const { events } = parseSse(body.toString('utf8'));
    for (const e of events.slice(this.next)) this.write(formatSse(e.data, { ...(e.event !== undefined ? { event: e.event } : {}), ...(e.id !== undefined ? { id: e.id } : {}) }));
    this.res.end();
  }

  /** The stream cannot finish: `last` (an error event), then the end. */
  abort(last: string): void {
    this.write(last);
    this.res.end();
  }

  private write(text: string): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.res.headersSent) this.res.writeHead(200, { 'content-type': SSE_CONTENT_TYPE, 'cache-control': 'no-cache' });
    this.res.write(text);
  }
}

/** The bus path's collaborators and limits. */
export interface BusPathOptions {
  plane: BusPathHost;
  outbox: Outbox;
  replies: ReplyChannel;
  metrics: SidecarMetrics;
  agent: string;
  maxBodyBytes: number;
  logger: Logger;
  /** Opens encrypted fields of bus replies before the caller is answered (the config's `encryption:`). */
  keyring?: Keyring | undefined;
}

/** A request body read before forwarding: all of it, or up to a limit with the rest left on the request. */
export interface ReadBody {
  chunks: Buffer[];
  overLimit: boolean;
}

/** Reads a request body up to `limit` bytes; past it, stops reading and leaves the rest on `req`. */
export function readBody(req: SidecarRequest, limit: number): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        resolve({ chunks, overLimit: true });
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ chunks, overLimit: false });
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
  });
}

/**
 * The bus path of the sidecar: flows in `canary:N` (the bus share) and `bus` mode. The mode was read once
 * when the request arrived (Exchange.mode), so a flip never changes the path of a call in flight.
 *
 * - `kind: request`: register the correlation id on the reply channel, publish the command straight to the
 *   bus (no spool: a spooled command would run after its caller gave up), await the reply, answer with it.
 * - `kind: event`: answer `status` once the bus acknowledged the event or the spool fsynced it.
 * - `fallback: direct`: a reply timeout or a bus that cannot take the command is served directly instead.
 * - `verify: true` (safe calls): the direct path is called in the background and both results are published
 *   to the observations topic, so the comparator keeps measuring parity.
 */
export class BusPath {
  constructor(private readonly o: BusPathOptions) {}

  /** Serves one call on the bus path; `read`: its body, when the data plane read it already (JSON-RPC flows). */
  async handle(req: SidecarRequest, res: ServerResponse, ex: Exchange, mode: BusModeKind, upstream: Upstream | undefined, read?: ReadBody): Promise<void> {
    const entry = ex.entry!;
    const { plane } = this.o;
    // The command carries this span: the bus-native handler's span is its child.
    const span = startSpan('cutover bus request', SpanKind.CLIENT, ex.span, { 'messaging.destination.name': entry.config.topic, 'cutover.flow': entry.config.name, 'cutover.mode': ex.mode });
    if (span) ex.traceparent = traceparentOf(span);
    let failed: unknown;
    try {
      read ??= await readBody(req, this.o.maxBodyBytes);
      if (read.overLimit) {
        plane.skip(ex, 'body_too_large');
        if (mode.kind === 'canary') return plane.forwardBuffered(ex, req, res, upstream, read.chunks, true, false);
        this.outcome(ex, 'body_too_large');
        plane.answer(ex, res, 413, ErrorCodes.BODY_TOO_LARGE, `request body over capture.maxBodyBytes (${this.o.maxBodyBytes} bytes): too large for the bus`);
        req.resume();
        return;
      }
      const raw = Buffer.concat(read.chunks);
      const call = plane.callParts(req, ex, raw);
      if (mode.kind === 'canary') {
        const requestId = req.headers['x-request-id'];
        const key = call.partitionKey ?? (typeof requestId === 'string' && requestId ? requestId : randomUUID());
        if (!takesBusPath(key, mode.percent)) return plane.forwardBuffered(ex, req, res, upstream, [raw], false, true);
      }
      if (entry.config.kind === 'event') await this.event(req, res, ex, call, raw, upstream);
      else await this.request(req, res, ex, call, raw, upstream);
    } catch (err) {
      failed = err;
      this.o.logger.error({ err, flow: entry.config.name, eventId: ex.id }, 'bus path failed');
      if (!res.headersSent) plane.answer(ex, res, 500, ErrorCodes.INTERNAL, 'internal error on the bus path');
    } finally {
      endSpan(span, failed, { 'http.response.status_code': res.statusCode, ...(ex.id ? { 'messaging.message.id': ex.id } : {}) });
    }
  }

  private async request(req: SidecarRequest, res: ServerResponse, ex: Exchange, call: CallParts, raw: Buffer, upstream: Upstream | undefined): Promise<void> {
    const entry = ex.entry!;
    const cfg = entry.config;
    const { plane, replies, outbox } = this.o;
    const timeout = cfg.timeout ?? DEFAULT_REPLY_TIMEOUT;
    const id = randomUUID();
    ex.id = id;
    ex.traceparent = call.traceparent;
    if (!replies.ready) {
      return this.unavailable(req, res, ex, raw, upstream, new Error('the reply channel is not consuming yet'));
    }
    // Registered before the publish: a reply can never arrive before anyone waits for it.
    const relay = new StreamRelay(res);
    const waiting = replies.expect(id, timeout, (d) => relay.push(d.event.data as StreamEventData | undefined));
    waiting.catch(() => undefined);
    try {
      await outbox.publishDurable(cfg.topic, call.build(id, ex.mode, replies.topic), { spool: false, timeout });
    } catch (err) {
      replies.cancel(id, err);
      return this.unavailable(req, res, ex, raw, upstream, err);
    }
    entry.counters.events++;
    const verify = this.shouldVerify(ex) && upstream ? this.verifyDirect(req, ex, raw, upstream) : undefined;
    let reply: Delivery;
    try {
      reply = await waiting;
    } catch (err) {
      if (!(isCutoverError(err) && err.code === ErrorCodes.REPLY_TIMEOUT)) throw err;
      entry.counters.replyTimeouts++;
      if (relay.started) {
        // The caller has part of a stream: it ends with an event saying why, never silently.
        this.outcome(ex, 'reply_timeout');
        relay.abort(this.errorEvent(ex, ErrorCodes.REPLY_TIMEOUT, `the stream stopped: no event on the bus within ${timeout} ms (correlation id ${id})`));
        return;
      }
      if (cfg.fallback === 'direct' && upstream) {
        entry.counters.fallbacks++;
        this.outcome(ex, 'fallback_timeout');
        this.o.logger.warn({ flow: cfg.name, eventId: id, timeout }, 'no reply in time; served directly (fallback)');
        return plane.forwardBuffered(ex, req, res, upstream, [raw], false, false);
      }
      this.outcome(ex, 'reply_timeout');
      plane.answer(ex, res, 504, ErrorCodes.REPLY_TIMEOUT, `no reply on the bus within ${timeout} ms (correlation id ${id})`);
      return;
    }
    let data: BusReplyData | undefined;
    try {
      // Encrypted response fields are opened for the caller; the observation below keeps them sealed.
      data = openReplyData(this.o.keyring, id, reply.event.data as BusReplyData | undefined);
    } catch (err) {
      this.outcome(ex, 'replied');
      this.o.logger.warn({ flow: cfg.name, eventId: id, code: isCutoverError(err) ? err.code : undefined }, 'bus reply does not decrypt; answered 502');
      plane.answer(ex, res, 502, ErrorCodes.CRYPTO_FAILED, err instanceof Error ? err.message : String(err));
      return;
    }
    entry.counters.busServed++;
    this.outcome(ex, 'replied');
    if (relay.started) {
      const ok = typeof data?.status === 'number' && data.status < 400;
      if (ok) relay.finish(bodyBytes(data!));
      else relay.abort(this.errorEvent(ex, data?.error?.code ?? ErrorCodes.HANDLER_FAILED, data?.error?.message ?? `the bus side ended the stream with status ${data?.status ?? 'none'}`));
    } else send(res, ex.rpc ? rpcReplyToResponse(data, ex.rpc) : replyToResponse(data));
    if (verify) {
      // The bus result, for the comparator: the reply itself went to this replica's channel only.
      outbox.enqueue(entry.observationsTopic, { key: id, event: reply.event });
      entry.counters.observations++;
    }
  }

  private async event(req: SidecarRequest, res: ServerResponse, ex: Exchange, call: CallParts, raw: Buffer, upstream: Upstream | undefined): Promise<void> {
    const entry = ex.entry!;
    const id = randomUUID();
    ex.id = id;
    let held: 'bus' | 'spool';
    try {
      // Fire-and-forget: nobody waits for a reply, so the spool is as good as the bus.
      held = await this.o.outbox.publishDurable(entry.config.topic, call.build(id, ex.mode, null), { spool: true });
    } catch (err) {
      return this.unavailable(req, res, ex, raw, upstream, err);
    }
    entry.counters.events++;
    entry.counters.busServed++;
    this.outcome(ex, held === 'bus' ? 'accepted' : 'spooled');
    const status = entry.config.status ?? DEFAULT_EVENT_STATUS;
    // A JSON-RPC notification has no response: MCP servers answer it 202 with no body, and so does cutover.
    if (ex.rpc) send(res, { status, headers: {}, body: Buffer.alloc(0) });
    else send(res, { status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ accepted: true, id })) });
  }

  /** Neither the bus (nor, for events, the spool) took the call: fall back, or 503. */
  private unavailable(req: SidecarRequest, res: ServerResponse, ex: Exchange, raw: Buffer, upstream: Upstream | undefined, err: unknown): void {
    const entry = ex.entry!;
    const { code } = describeError(err);
    entry.counters.busUnavailable++;
    if (entry.config.fallback === 'direct' && upstream) {
      entry.counters.fallbacks++;
      this.outcome(ex, 'fallback_unavailable');
      this.o.logger.warn({ flow: entry.config.name, err }, 'the bus cannot take the call; served directly (fallback)');
      return this.o.plane.forwardBuffered(ex, req, res, upstream, [raw], false, false);
    }
    this.outcome(ex, 'bus_unavailable');
    this.o.logger.warn({ flow: entry.config.name, err }, 'the bus cannot take the call; answered 503');
    this.o.plane.answer(ex, res, 503, ErrorCodes.BUS_UNAVAILABLE, `the bus cannot take the call right now (${code}); nothing was accepted, retry later`);
  }

  private shouldVerify(ex: Exchange): boolean {
    const cfg = ex.entry!.config;
    return cfg.verify === true && (cfg.safe === true || SAFE_METHODS.has(cfg.match.method));
  }

  /** Calls the direct path in the background and publishes its observation (never affects the caller). */
  private async verifyDirect(req: SidecarRequest, ex: Exchange, raw: Buffer, upstream: Upstream): Promise<void> {
    const entry = ex.entry!;
    const headers = replayHeaders(req.headers);
    const versions = entry.config.versions;
    try {
      const r = await sendReplay(new URL(upstream.url), { method: req.method ?? 'GET', target: req.url ?? '/', headers, body: raw.length ? raw : undefined }, {
        timeout: entry.config.timeout ?? DEFAULT_REPLY_TIMEOUT,
        maxResponseBytes: this.o.maxBodyBytes,
        keepHeaders: new Set(DEFAULT_REPLY_HEADERS),
        agent: upstream.agent,
        ...(versions?.header ? { versionHeader: versions.header.toLowerCase() } : {}),
      });
      const version = r.version ?? versions?.direct;
      this.o.outbox.enqueue(
        entry.observationsTopic,
        buildObservationMessage({
          agent: this.o.agent,
          flow: { name: entry.config.name, schemaVersion: entry.config.schemaVersion, mode: ex.mode },
          correlationId: ex.id!,
          traceparent: ex.traceparent!,
          data: { status: r.status, headers: r.headers, ...r.body, latencyMs: Math.round(r.latencyMs * 1000) / 1000, ...(version ? { version } : {}) },
        }),
      );
      entry.counters.observations++;
    } catch (err) {
      this.o.logger.warn({ err, flow: entry.config.name, eventId: ex.id }, 'verification call to the direct path failed');
    }
  }

  /** The last event of a stream that could not finish: a JSON-RPC error for JSON-RPC callers, else the typed JSON error. */
  private errorEvent(ex: Exchange, code: string, message: string): string {
    return formatSse(JSON.stringify(ex.rpc ? rpcError(ex.rpc.id, code, message) : { error: { code, message } }));
  }

  private outcome(ex: Exchange, outcome: BusOutcome): void {
    this.o.metrics.busPath.inc({ flow: ex.entry!.config.name, outcome });
  }
}
