import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { parse as parseUrl } from 'node:url';
import type { Socket } from 'node:net';
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createProxyMiddleware, type Plugin, type RequestHandler } from 'http-proxy-middleware';
import { isTraceparent, newTraceparent } from '../src/events/cloudevent.js';
import type { BusMessage } from '../src/bus/types.js';
import { ErrorCodes } from '../src/errors.js';
import { parseMode } from '../src/flips/mode.js';
import type { FlowMode } from '../src/flows/schema.js';
import { parseQuery } from '../src/flows/key.js';
import type { Logger } from '../src/logger.js';
import type { CallSample } from '../src/parity/types.js';
import { buildCallMessage, buildObservationMessage, callSample, type ObservationData } from './call-event.js';
import { BodyCapture, decodeContent, encodeBody, type EncodedBody } from './capture.js';
import type { FieldCipher } from './crypto.js';
import type { FlowEntry, FlowTable } from './flow-table.js';
import { UNMATCHED, type SidecarMetrics, type SkipReason } from './metrics.js';
import type { CaptureConfig, RedactConfig, RouteConfig } from '../src/config/sidecar.js';
import type { Publisher } from './publisher.js';
import { BusPath, type BusModeKind } from './bus-mode.js';
import { shouldSampleNoise, toNoiseObservation } from '../shadow/noise.js';
import type { ReplyChannel } from './reply.js';
import { headerPolicy, pickHeaders, redactQuery, redactSearch, type HeaderPolicy } from './redact.js';

export interface DataPlaneOptions {
  agent: string;
  observationsTopic: string;
  upstream: string | undefined;
  routes: readonly RouteConfig[];
  upstreamTimeout: number;
  upstreamIdleTimeout: number;
  capture: CaptureConfig;
  redact: RedactConfig;
  flows: FlowTable;
  publisher: Publisher;
  metrics: SidecarMetrics;
  cipher: FieldCipher | undefined;
  /** This replica's reply channel (bus mode). */
  replies: ReplyChannel;
  logger: Logger;
}

/** One upstream: its proxy middleware and keep-alive agent. */
export interface Upstream {
  url: string;
  proxy: RequestHandler;
  agent: http.Agent;
}

interface Route {
  host: string | undefined;
  prefix: string | undefined;
  upstream: Upstream;
}

const EXCHANGE = Symbol('cutover.exchange');
export type SidecarRequest = IncomingMessage & { [EXCHANGE]?: Exchange };

/**
 * Per-request state. Only flows in shadow mode capture anything; every other request carries just its
 * start time and flow label for metrics.
 */
export class Exchange {
  readonly started = performance.now();
  entry: FlowEntry | undefined;
  params: Record<string, string> = {};
  /** Mode at arrival: a flip while the request runs does not change what this request does. */
  mode: FlowMode = 'direct';
  id: string | undefined;
  traceparent: string | undefined;
  /** The call as published (redacted, body truncated), for the direct observation. Set by callParts. */
  sample: CallSample | undefined;
  reqCapture: BodyCapture | undefined;
  resCapture: BodyCapture | undefined;
  /** The call event went to the publisher: an observation must follow. */
  published = false;
  /** The response finished (the upstream may answer before reading the whole request body). */
  responded = false;
  observed = false;
  /** Milliseconds from arrival to the end of the response. */
  elapsed = 0;
  res: ServerResponse | undefined;
  proxyReq: ClientRequest | undefined;
  upstreamStarted = 0;
  timer: NodeJS.Timeout | undefined;
  /** Set when the sidecar answered for the upstream (502/504). */
  failure: { code: string; message: string; body: Buffer } | undefined;
  /** Set when this request is sampled for the noise baseline: the agent is called a second time. */
  noise: { method: string; url: string; headers: http.IncomingHttpHeaders; upstream?: Upstream } | undefined;
}

/** The data plane: a plain node:http server that forwards everything through http-proxy-middleware. */
export class DataPlane {
  readonly server: http.Server;
  private readonly opts: DataPlaneOptions;
  private readonly routes: Route[];
  private readonly fallback: Upstream | undefined;
  private readonly upstreams: Upstream[] = [];
  private readonly reqHeaders: HeaderPolicy;
  private readonly resHeaders: HeaderPolicy;
  private readonly redactedQuery: ReadonlySet<string>;
  private readonly deniedHeaders: ReadonlySet<string>;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly log: Logger;
  private readonly busPath: BusPath;

  constructor(options: DataPlaneOptions) {
    this.opts = options;
    this.log = options.logger;
    this.busPath = new BusPath({ plane: this, publisher: options.publisher, replies: options.replies, metrics: options.metrics, observationsTopic: options.observationsTopic, agent: options.agent, maxBodyBytes: options.capture.maxBodyBytes, logger: options.logger });
    this.reqHeaders = headerPolicy(options.capture.requestHeaders, options.redact.headers);
    this.resHeaders = headerPolicy(options.capture.responseHeaders, options.redact.headers);
    this.redactedQuery = new Set(options.redact.query);
    this.deniedHeaders = new Set(options.redact.headers);
    const byUrl = new Map<string, Upstream>();
    const upstreamFor = (url: string): Upstream => {
      let u = byUrl.get(url);
      if (!u) {
        u = this.createUpstream(url);
        byUrl.set(url, u);
        this.upstreams.push(u);
      }
      return u;
    };
    this.routes = options.routes.map((r) => ({ host: r.host, prefix: r.prefix, upstream: upstreamFor(r.upstream) }));
    this.fallback = options.upstream ? upstreamFor(options.upstream) : undefined;
    this.server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req as SidecarRequest, res));
    // Node's default 5 s keep-alive is shorter than most callers' pools expect; a caller reusing a
    // socket the sidecar just closed would see a spurious error the agent never caused.
    this.server.headersTimeout = 66_000;
  }

  /** Requests being handled right now. */
  get active(): number {
    return this.inFlight;
  }

  /** Resolves once no request is in flight, or after `timeoutMs`. Returns whether it drained. */
  async drained(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Closes the upstream keep-alive sockets. */
  destroyAgents(): void {
    for (const u of this.upstreams) u.agent.destroy();
  }

  private createUpstream(url: string): Upstream {
    const isHttps = url.startsWith('https:');
    const agentOptions = { keepAlive: true, maxFreeSockets: 256, timeout: this.opts.upstreamIdleTimeout, scheduling: 'lifo' as const };
    const agent = isHttps ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    const proxy = createProxyMiddleware({
      // Parsed once here: http-proxy would parse a string target again on every request.
      target: parseUrl(url),
      agent,
      // Forward the request as the caller sent it and the response as the agent sent it.
      changeOrigin: false,
      xfwd: false,
      preserveHeaderKeyCase: true,
      // Our own plugin replaces the defaults (console logging, HTML error pages).
      ejectPlugins: true,
      plugins: [this.plugin],
    });
    return { url, proxy, agent };
  }

  private resolve(req: IncomingMessage, path: string): Upstream | undefined {
    if (this.routes.length > 0) {
      const host = (req.headers.host ?? '').toLowerCase();
      for (const r of this.routes) {
        if (r.host !== undefined && r.host !== host && r.host !== host.replace(/:\d+$/, '')) continue;
        if (r.prefix !== undefined && !path.startsWith(r.prefix)) continue;
        return r.upstream;
      }
    }
    return this.fallback;
  }

  private handle(req: SidecarRequest, res: ServerResponse): void {
    const ex = new Exchange();
    ex.res = res;
    req[EXCHANGE] = ex;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const matched = this.opts.flows.match(req.method ?? 'GET', path);
    let busMode: BusModeKind | undefined;
    if (matched) {
      ex.entry = matched.entry;
      ex.params = matched.params;
      ex.mode = matched.entry.mode;
      matched.entry.counters.requests++;
      const parsed = parseMode(ex.mode);
      if (parsed?.kind === 'canary' || parsed?.kind === 'bus') busMode = parsed;
      else if (ex.mode === 'shadow') {
        // A declared length over the limit is skipped up front, without copying a single chunk.
        if (Number(req.headers['content-length']) > this.opts.capture.maxBodyBytes) this.skip(ex, 'body_too_large');
        else ex.reqCapture = new BodyCapture(this.opts.capture.maxBodyBytes);
        // Noise baseline (safe methods only): a share of calls is made twice, see callAgainForNoise.
        const noise = (matched.entry.config as { noise?: { sample: number } }).noise;
        if (ex.reqCapture && shouldSampleNoise(noise, req.method ?? 'GET')) ex.noise = { method: req.method ?? 'GET', url, headers: req.headers };
      }
    } else {
      this.opts.metrics.unmatched.inc();
    }
    this.inFlight++;
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.complete(ex, res);
      if (--this.inFlight === 0 && this.idleWaiters.length > 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    };
    // 'close' follows 'finish' on every response, and comes alone when the caller went away.
    res.once('close', done);

    const upstream = this.resolve(req, path);
    if (ex.noise) ex.noise.upstream = upstream;
    if (busMode) {
      // The upstream may be absent (a caller-side sidecar with routes only): the bus path does not need it.
      void this.busPath.handle(req, res, ex, busMode, upstream);
      return;
    }
    if (!upstream) {
      this.answer(ex, res, 404, ErrorCodes.NOT_FOUND, `no route for ${req.headers.host ?? ''}${path} and no default upstream`);
      req.resume();
      return;
    }
    void upstream.proxy(req, res, (err?: unknown) => {
      // Only reached when http-proxy-middleware could not even start the proxy request.
      this.upstreamFailed(ex, req, res, err instanceof Error ? err : new Error(String(err)));
    });
  }

  /**
   * Forwards a request whose body was already read (fully, or up to a limit with `rest` still unread on
   * `req`), through the same proxy path as any other request. With `capture` the call is dual-written as in
   * shadow mode (the share of a canary that stays direct).
   */
  forwardBuffered(ex: Exchange, req: SidecarRequest, res: ServerResponse, upstream: Upstream | undefined, chunks: Buffer[], rest: boolean, capture: boolean): void {
    if (!upstream) {
      this.answer(ex, res, 404, ErrorCodes.NOT_FOUND, `no route for ${req.headers.host ?? ''}${req.url ?? ''} and no default upstream`);
      if (rest) req.resume();
      return;
    }
    if (capture && !rest) ex.reqCapture = new BodyCapture(this.opts.capture.maxBodyBytes);
    const replay = replayOf(req, chunks, rest);
    replay[EXCHANGE] = ex;
    void upstream.proxy(replay, res, (err?: unknown) => {
      this.upstreamFailed(ex, replay, res, err instanceof Error ? err : new Error(String(err)));
    });
  }

  /** http-proxy events, registered on each upstream's proxy server. */
  private readonly plugin: Plugin = (proxy) => {
    proxy.on('start', (req) => this.onStart(req as SidecarRequest));
    proxy.on('proxyReq', (proxyReq, req) => {
      const ex = (req as SidecarRequest)[EXCHANGE];
      if (ex) ex.proxyReq = proxyReq;
    });
    proxy.on('proxyRes', (proxyRes, req) => this.onProxyRes(proxyRes, req as SidecarRequest));
    proxy.on('error', (err, req, res) => this.upstreamFailed((req as SidecarRequest)[EXCHANGE], req, res, err));
    // The caller went away mid-request: http-proxy aborts the upstream request; nothing to answer.
    proxy.on('econnreset', () => undefined);
  };

  /**
   * Runs synchronously right before http-proxy pipes the request upstream: listeners added here see the
   * same chunks as the pipe, from the first one, without pausing it.
   */
  private onStart(req: SidecarRequest): void {
    const ex = req[EXCHANGE];
    if (!ex) return;
    ex.upstreamStarted = performance.now();
    ex.timer = setTimeout(() => this.onTimeout(req, ex), this.opts.upstreamTimeout);
    const capture = ex.reqCapture;
    if (!capture) return;
    req.on('data', (chunk: Buffer) => capture.push(chunk));
    req.once('end', () => this.onRequestBody(req, ex, capture));
  }

  private onTimeout(req: SidecarRequest, ex: Exchange): void {
    ex.timer = undefined;
    const res = ex.res;
    const message = `upstream sent no response within ${this.opts.upstreamTimeout} ms`;
    ex.failure = { code: ErrorCodes.UPSTREAM_TIMEOUT, message, body: errorBody(ErrorCodes.UPSTREAM_TIMEOUT, message) };
    this.opts.metrics.upstreamErrors.inc({ code: ErrorCodes.UPSTREAM_TIMEOUT });
    if (ex.entry) ex.entry.counters.upstreamErrors++;
    if (res && !res.headersSent) sendJson(res, 504, ex.failure.body);
    ex.proxyReq?.destroy();
  }

  /** The request body is complete: publish the call event (shadow mode). */
  private onRequestBody(req: IncomingMessage, ex: Exchange, capture: BodyCapture): void {
    const entry = ex.entry!;
    if (capture.overLimit) {
      this.skip(ex, 'body_too_large');
      return;
    }
    try {
      const id = randomUUID();
      const call = this.callParts(req, ex, capture.buffer());
      const message = call.build(id, 'shadow', this.opts.observationsTopic);
      ex.id = id;
      ex.traceparent = call.traceparent;
      this.opts.publisher.enqueue(entry.config.topic, message);
      ex.published = true;
      entry.counters.events++;
      if (ex.responded) this.observe(ex);
    } catch (err) {
      // Never let capture problems touch the direct call.
      this.log.error({ err, flow: entry.config.name }, 'could not build the call event; the call was forwarded but not dual-written');
      this.skip(ex, 'capture_failed');
    }
  }

  /**
   * Everything of a call event that does not depend on the path it takes: body (encrypted fields
   * included), query, partition key, trace context, replay headers. `build` stamps id, mode and replyto.
   */
  callParts(req: IncomingMessage, ex: Exchange, raw: Buffer): CallParts {
    const entry = ex.entry!;
    const header = req.headers.traceparent;
    const traceparent = typeof header === 'string' && isTraceparent(header) ? header : newTraceparent();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const search = q === -1 ? '' : url.slice(q + 1);
    const query = search ? redactQuery(parseQuery(search), this.redactedQuery) : {};
    const encoded = encodeBody(raw, headerValue(req.headers['content-type']));
    let partitionKey = entry.key?.extract({ body: encoded.bodyEncoding ? undefined : encoded.body, params: ex.params, query, headers: req.headers });
    if (partitionKey !== undefined && entry.key) partitionKey = this.protectKey(entry, partitionKey);
    if (partitionKey === undefined && entry.key) {
      entry.counters.keyMissing++;
      this.opts.metrics.keyMissing.inc({ flow: entry.config.name });
    }
    const kid = this.encrypt(encoded);
    const target = search ? `${url.slice(0, q)}?${redactSearch(search, this.redactedQuery)}` : url;
    const headers = pickHeaders(req.headers, this.reqHeaders);
    const method = req.method ?? 'GET';
    // After encryption: the sample shows the body exactly as the bus saw it.
    ex.sample = callSample({ method, target, headers, body: encoded });
    return {
      traceparent,
      partitionKey,
      build: (id, mode, replyTo) =>
        buildCallMessage({
          agent: this.opts.agent,
          flow: { name: entry.config.name, schemaVersion: entry.config.schemaVersion, mode },
          topic: entry.config.topic,
          id,
          traceparent,
          partitionKey,
          data: { ...encoded, params: ex.params, query },
          method,
          target,
          headers,
          replyTo,
          ...(kid ? { kid } : {}),
        }),
    };
  }

  /** Keys from encrypted body fields or redacted headers would leak the secret: publish a keyed digest. */
  private protectKey(entry: FlowEntry, key: string): string {
    const k = entry.key!;
    const secret = (k.source === 'body' && this.opts.cipher?.covers(k.path)) || (k.source === 'header' && this.deniedHeaders.has(k.path[0]!));
    if (!secret) return key;
    return this.opts.cipher ? this.opts.cipher.digest(key) : 'h-' + sha256(key);
  }

  private encrypt(encoded: EncodedBody): string | undefined {
    const cipher = this.opts.cipher;
    if (!cipher || encoded.bodyEncoding || encoded.body === null || typeof encoded.body !== 'object') return undefined;
    return cipher.encryptFields(encoded.body) > 0 ? cipher.kid : undefined;
  }

  private onProxyRes(proxyRes: IncomingMessage, req: SidecarRequest): void {
    const ex = req[EXCHANGE];
    if (!ex) return;
    if (ex.timer) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    this.opts.metrics.forFlow(ex.entry?.config.name ?? UNMATCHED, ex.mode).upstream.observe((performance.now() - ex.upstreamStarted) / 1000);
    if (ex.failure || !ex.reqCapture) return;
    const capture = new BodyCapture(this.opts.capture.maxResponseBytes);
    ex.resCapture = capture;
    proxyRes.on('data', (chunk: Buffer) => capture.push(chunk));
  }

  private upstreamFailed(ex: Exchange | undefined, req: IncomingMessage, res: ServerResponse | Socket, err: Error): void {
    if (ex?.timer) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    if (ex?.failure) return; // already answered (timeout)
    const code = ErrorCodes.UPSTREAM_UNREACHABLE;
    const errno = (err as NodeJS.ErrnoException).code;
    const message = `upstream unreachable: ${errno ?? err.message}`;
    if (ex) {
      ex.failure = { code, message, body: errorBody(code, message) };
      if (ex.entry) ex.entry.counters.upstreamErrors++;
    }
    this.opts.metrics.upstreamErrors.inc({ code });
    this.log.warn({ err: errno ?? err.message, method: req.method, url: this.loggableUrl(req.url), eventId: ex?.id }, 'upstream failed; answered 502');
    if ('writeHead' in res) {
      if (!res.headersSent) sendJson(res, 502, ex?.failure?.body ?? errorBody(code, message));
      else res.destroy();
    } else {
      res.destroy();
    }
  }

  /** The request URL for logs, with the query values named in `redact.query` masked. */
  private loggableUrl(url: string | undefined): string {
    const u = url ?? '/';
    const q = u.indexOf('?');
    return q === -1 ? u : `${u.slice(0, q)}?${redactSearch(u.slice(q + 1), this.redactedQuery)}`;
  }

  answer(ex: Exchange, res: ServerResponse, status: number, code: string, message: string): void {
    ex.failure = { code, message, body: errorBody(code, message) };
    sendJson(res, status, ex.failure.body);
  }

  skip(ex: Exchange, reason: SkipReason): void {
    const entry = ex.entry!;
    entry.counters.skipped[reason] = (entry.counters.skipped[reason] ?? 0) + 1;
    this.opts.metrics.skipped.inc({ flow: entry.config.name, reason });
  }

  /** The response is done (or the caller left): metrics, and the direct observation in shadow mode. */
  private complete(ex: Exchange, res: ServerResponse): void {
    if (ex.timer) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    const elapsed = performance.now() - ex.started;
    ex.elapsed = elapsed;
    const flow = ex.entry?.config.name ?? UNMATCHED;
    const m = this.opts.metrics.forFlow(flow, ex.mode);
    m.duration.observe(elapsed / 1000);
    m.request(res.statusCode);
    if (!ex.reqCapture) return;
    if (!res.writableFinished) {
      if (ex.published) this.skip(ex, 'client_aborted');
      return;
    }
    ex.responded = true;
    if (ex.published) this.observe(ex);
  }

  /** Publishes the direct observation once both the call event and the response are complete. */
  private observe(ex: Exchange): void {
    if (ex.observed) return;
    ex.observed = true;
    const entry = ex.entry!;
    const res = ex.res!;
    const elapsed = ex.elapsed;
    try {
      const data: ObservationData = {
        status: res.statusCode,
        headers: pickHeaders(res.getHeaders(), this.resHeaders),
        latencyMs: Math.round(elapsed * 1000) / 1000,
      };
      if (ex.sample) data.request = ex.sample;
      if (ex.failure) {
        data.error = { code: ex.failure.code, message: ex.failure.message };
        Object.assign(data, encodeBody(ex.failure.body, 'application/json'));
      } else if (ex.resCapture) {
        const capture = ex.resCapture;
        data.bodyBytes = capture.bytes;
        if (capture.overLimit) {
          data.bodySkipped = 'too_large';
          this.skip(ex, 'response_too_large');
        } else {
          this.addResponseBody(data, capture.buffer(), res);
        }
      }
      this.opts.publisher.enqueue(this.opts.observationsTopic, this.observation(ex, data));
      entry.counters.observations++;
      if (ex.noise && !ex.failure) void this.callAgainForNoise(ex);
    } catch (err) {
      this.log.error({ err, flow: entry.config.name, eventId: ex.id }, 'could not build the direct observation');
      this.skip(ex, 'capture_failed');
    }
  }

  /** A direct observation of `ex`'s call (configured fields of `data` encrypted in place). */
  private observation(ex: Exchange, data: ObservationData): BusMessage {
    const entry = ex.entry!;
    const kid = this.encrypt(data);
    return buildObservationMessage({
      agent: this.opts.agent,
      flow: { name: entry.config.name, schemaVersion: entry.config.schemaVersion, mode: 'shadow' },
      correlationId: ex.id!,
      traceparent: ex.traceparent!,
      data,
      ...(kid ? { kid } : {}),
    });
  }

  /**
   * The noise baseline, after Diffy: calls the agent a second time with the same safe request, after the
   * caller has its answer, and publishes the result as a noise observation with the same correlation id.
   * The comparator diffs the two direct results: what differs between them is noise for the flow.
   */
  private async callAgainForNoise(ex: Exchange): Promise<void> {
    const { method, url, headers, upstream } = ex.noise!;
    const entry = ex.entry!;
    if (!upstream) return;
    const started = performance.now();
    try {
      const response = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; overLimit: boolean }>((resolve, reject) => {
        const target = new URL(url, upstream.url);
        const { connection: _c, 'keep-alive': _k, 'transfer-encoding': _t, 'content-length': _l, ...forward } = headers;
        const request = (target.protocol === 'https:' ? https : http).request(target, { method, headers: forward, agent: upstream.agent, timeout: this.opts.upstreamTimeout }, (res) => {
          const capture = new BodyCapture(this.opts.capture.maxResponseBytes);
          res.on('data', (chunk: Buffer) => capture.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: capture.buffer(), overLimit: capture.overLimit }));
          res.on('error', reject);
        });
        request.on('timeout', () => request.destroy(new Error('noise call timed out')));
        request.on('error', reject);
        request.end();
      });
      if (response.overLimit) return;
      const data: ObservationData = {
        status: response.status,
        headers: pickHeaders(response.headers, this.resHeaders),
        latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
      };
      const encoding = headerValue(response.headers['content-encoding']);
      const decoded = decodeContent(response.body, encoding, this.opts.capture.maxResponseBytes);
      if (decoded) Object.assign(data, encodeBody(decoded, headerValue(response.headers['content-type'])));
      this.opts.publisher.enqueue(this.opts.observationsTopic, toNoiseObservation(this.observation(ex, data)));
    } catch (err) {
      // A failed second call only costs a noise sample; the caller was answered long ago.
      this.log.debug({ err: (err as Error).message, flow: entry.config.name, eventId: ex.id }, 'noise call failed');
    }
  }

  private addResponseBody(data: ObservationData, raw: Buffer, res: ServerResponse): void {
    const contentType = headerValue(res.getHeader('content-type'));
    const encoding = headerValue(res.getHeader('content-encoding'));
    const decoded = decodeContent(raw, encoding, this.opts.capture.maxResponseBytes);
    if (decoded) {
      Object.assign(data, encodeBody(decoded, contentType));
    } else {
      data.body = raw.toString('base64');
      data.bodyEncoding = 'base64';
      if (contentType) data.contentType = contentType;
      if (encoding) data.contentEncoding = encoding;
    }
  }
}

/** What {@link DataPlane.callParts} yields: a call event waiting for its id, mode and replyto. */
export interface CallParts {
  traceparent: string;
  partitionKey: string | undefined;
  build(id: string, mode: FlowMode, replyTo: string | null): BusMessage;
}

/**
 * A stand-in for a request whose body was read already: the same method, URL, headers and socket, the body
 * replayed from memory (then the unread rest of the original, when `rest`). http-proxy reads only these
 * fields and pipes the stream, so the forwarded request is the one the caller sent.
 */
function replayOf(req: SidecarRequest, chunks: Buffer[], rest: boolean): SidecarRequest {
  async function* body(): AsyncGenerator<Buffer> {
    yield* chunks;
    if (rest) for await (const chunk of req) yield chunk as Buffer;
  }
  const stream = Readable.from(body(), { objectMode: false });
  // Not an IncomingMessage, but it carries every field http-proxy and http-proxy-middleware read.
  return Object.assign(stream, {
    method: req.method,
    url: req.url,
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    httpVersion: req.httpVersion,
    httpVersionMajor: req.httpVersionMajor,
    httpVersionMinor: req.httpVersionMinor,
    socket: req.socket,
    connection: req.socket,
  }) as unknown as SidecarRequest;
}

function headerValue(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : String(value);
}

function errorBody(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ error: { code, message } }));
}

function sendJson(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/** Digest for keys taken from redacted headers when no encryption key is configured. */
function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 27);
}
