import { Notifier } from '../src/async.js';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { Plugin } from 'http-proxy-middleware';
import { ErrorCodes } from '../src/errors.js';
import { parseMode } from '../src/flips/mode.js';
import type { Logger } from '../src/logger.js';
import { shouldSampleNoise } from '../shadow/noise.js';
import { BusPath, readBody, type BusModeKind, type BusPathHost, type ReadBody } from './bus-mode.js';
import { isRpcCall, mcpHeaderMismatches, parseRpcCall, type RpcCall } from '../src/flows/rpc.js';
import { CallEvents, type CallParts } from './call-parts.js';
import { BodyCapture } from './capture.js';
import type { FieldCipher } from '../src/crypto/field-cipher.js';
import type { Keyring } from '../src/crypto/keyring.js';
import { sendError, sendRawError, UpstreamErrors } from './error-reply.js';
import { EXCHANGE, Exchange, type SidecarRequest } from './exchange.js';
import type { FlowEntry, FlowRoute, FlowTable } from './flow-table.js';
import { UNMATCHED, type SidecarMetrics, type SkipReason } from './metrics.js';
import { DirectObserver } from './observe.js';
import type { Discovery } from './discovery.js';
import type { Contract } from '../src/discovery/contract.js';
import { endSpan, SpanKind, startSpan, traceparentOf } from '../src/tracing.js';
import type { CaptureConfig, RedactConfig, RouteConfig } from '../src/config/sidecar.js';
import type { Outbox } from './outbox.js';
import type { ReplyChannel } from './reply.js';
import { forwardRepeatedHeaders } from './raw-headers.js';
import { Upstreams, type Upstream } from './upstreams.js';

/** The data plane's config and collaborators, made by the sidecar at start. */
export interface DataPlaneOptions {
  agent: string;
  upstream: string | undefined;
  routes: readonly RouteConfig[];
  upstreamTimeout: number;
  upstreamIdleTimeout: number;
  capture: CaptureConfig;
  redact: RedactConfig;
  flows: FlowTable;
  outbox: Outbox;
  metrics: SidecarMetrics;
  cipher: FieldCipher | undefined;
  /** Opens encrypted fields of bus replies for callers (the config's `encryption:` keys). */
  keyring?: Keyring | undefined;
  /** This replica's reply channel (bus mode). */
  replies: ReplyChannel;
  /** The flows' payload contract (`contract:`), for contract drift in direct observations. */
  contract?: Contract | undefined;
  /** Discovery (`observe:`): sees every forwarded call, matched to a flow or not. */
  discovery?: Discovery | undefined;
  logger: Logger;
}

/**
 * The data plane: a plain node:http server that forwards everything through http-proxy-middleware. It
 * dispatches each request by its flow's mode at arrival: forwarded as is, forwarded and dual-written
 * (shadow), or handed to the bus path (canary, bus).
 */
export class DataPlane implements BusPathHost {
  readonly server: http.Server;
  private readonly opts: DataPlaneOptions;
  private readonly upstreams: Upstreams;
  private readonly calls: CallEvents;
  private readonly upstreamErrors: UpstreamErrors;
  private readonly observer: DirectObserver;
  private inFlight = 0;
  private readonly idle = new Notifier();
  private readonly log: Logger;
  private readonly busPath: BusPath;
  /** Upgraded (WebSocket) connections: the HTTP server no longer tracks them, so closing must. */
  private readonly tunnels = new Set<Socket>();

  constructor(options: DataPlaneOptions) {
    this.opts = options;
    this.log = options.logger;
    this.busPath = new BusPath({ plane: this, outbox: options.outbox, replies: options.replies, metrics: options.metrics, agent: options.agent, maxBodyBytes: options.capture.maxBodyBytes, logger: options.logger, keyring: options.keyring });
    this.calls = new CallEvents({ agent: options.agent, capture: options.capture, redact: options.redact, cipher: options.cipher, metrics: options.metrics });
    this.upstreamErrors = new UpstreamErrors({ upstreamTimeout: options.upstreamTimeout, redact: options.redact, metrics: options.metrics, logger: options.logger });
    this.observer = new DirectObserver({
      agent: options.agent,
      capture: options.capture,
      redact: options.redact,
      upstreamTimeout: options.upstreamTimeout,
      outbox: options.outbox,
      metrics: options.metrics,
      cipher: options.cipher,
      contract: options.contract,
      logger: options.logger,
    });
    this.upstreams = new Upstreams({ upstream: options.upstream, routes: options.routes, upstreamIdleTimeout: options.upstreamIdleTimeout, plugin: this.plugin });
    // The headers and request bounds are enforced on this period (Node's default, 30 s, would add up to that much).
    this.server = http.createServer({ keepAliveTimeout: 65_000, connectionsCheckingInterval: 5_000 }, (req, res) => this.handle(req as SidecarRequest, res));
    // Node's default 5 s keep-alive is shorter than most callers' pools expect; a caller reusing a
    // socket the sidecar just closed would see a spurious error the agent never caused.
    this.server.headersTimeout = 66_000;
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.handleUpgrade(req, socket, head));
  }

  /** Requests being handled right now. */
  get active(): number {
    return this.inFlight;
  }

  /** Resolves once no request is in flight, or after `timeoutMs`. Returns whether it drained. */
  async drained(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return true;
    return this.idle.wait(timeoutMs);
  }

  /** Closes the upstream keep-alive sockets and the upgraded connections still open. */
  destroyConnections(): void {
    this.upstreams.destroyAgents();
    for (const socket of this.tunnels) socket.destroy();
    this.tunnels.clear();
  }

  /**
   * An upgrade (WebSocket) is tunnelled to the upstream as is, as a service mesh would: it takes no flow's
   * path (nothing to dual-write in a byte stream) and is counted as unmatched.
   */
  private handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.tunnels.add(socket);
    socket.once('close', () => this.tunnels.delete(socket));
    this.opts.metrics.unmatched.inc();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const upstream = this.upstreams.resolve(req, q === -1 ? url : url.slice(0, q));
    if (!upstream) {
      sendRawError(socket, 404, ErrorCodes.NOT_FOUND, `no route for ${req.headers.host ?? ''}${url} and no default upstream`);
      return;
    }
    upstream.proxy.upgrade(req, socket, head);
  }

  private handle(req: SidecarRequest, res: ServerResponse): void {
    const ex = new Exchange();
    ex.res = res;
    req[EXCHANGE] = ex;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = this.opts.flows.match(req.method ?? 'GET', path);
    this.inFlight++;
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.observer.complete(ex, res);
      this.opts.discovery?.end(ex, res);
      endSpan(ex.span, ex.failure ? ex.failure.message : undefined, { 'http.response.status_code': res.statusCode });
      if (--this.inFlight === 0) this.idle.notify();
    };
    // 'close' follows 'finish' on every response, and comes alone when the caller went away.
    res.once('close', done);

    const upstream = this.upstreams.resolve(req, path);
    if (route && !route.entry) {
      void this.handleRpc(req, res, ex, route, upstream);
      return;
    }
    this.dispatch(req, res, ex, route, upstream, undefined);
  }

  /**
   * A request on a URL whose flows select JSON-RPC calls: the body is read (up to capture.maxBodyBytes)
   * to find the flow, then the request takes that flow's path with the bytes exactly as sent. A body that
   * is no single JSON-RPC call (a batch, not JSON, too large) goes to the URL's flow without `rpc`, if any.
   */
  private async handleRpc(req: SidecarRequest, res: ServerResponse, ex: Exchange, route: Extract<FlowRoute, { entry?: undefined }>, upstream: Upstream | undefined): Promise<void> {
    let read: ReadBody;
    try {
      read = await readBody(req, this.opts.capture.maxBodyBytes);
    } catch (err) {
      // The caller went away while sending: nobody is left to answer.
      this.log.debug({ err: (err as Error).message }, 'request body failed while reading a JSON-RPC call');
      res.destroy();
      return;
    }
    let call: RpcCall | undefined;
    if (read.overLimit) this.opts.metrics.rpcUnparsed.inc({ reason: 'body_too_large' });
    else {
      const parsed = parseRpcCall(Buffer.concat(read.chunks));
      if (isRpcCall(parsed)) call = parsed;
      else this.opts.metrics.rpcUnparsed.inc({ reason: parsed.problem });
    }
    const entry = route.select(call);
    if (call) {
      ex.rpc = call;
      const mismatches = mcpHeaderMismatches(call, req.headers);
      if (mismatches.length > 0) ex.rpcHeaderMismatch = mismatches;
      for (const header of mismatches) {
        this.opts.metrics.rpcHeaderMismatch.inc({ flow: entry?.config.name ?? UNMATCHED, header });
        if (entry) entry.counters.rpcHeaderMismatches++;
      }
    }
    this.dispatch(req, res, ex, entry ? { entry, params: route.params } : undefined, upstream, read);
  }

  /**
   * Sends a request down its flow's path by the flow's mode at arrival: forwarded as is, forwarded and
   * dual-written (shadow), or handed to the bus path (canary, bus). `read`: the body was read already.
   */
  private dispatch(req: SidecarRequest, res: ServerResponse, ex: Exchange, matched: { entry: FlowEntry; params: Record<string, string> } | undefined, upstream: Upstream | undefined, read: ReadBody | undefined): void {
    let busMode: BusModeKind | undefined;
    let capture = false;
    if (matched) {
      ex.entry = matched.entry;
      ex.params = matched.params;
      ex.mode = matched.entry.mode;
      matched.entry.counters.requests++;
      const parsed = parseMode(ex.mode);
      if (parsed?.kind === 'canary' || parsed?.kind === 'bus') busMode = parsed;
      else if (ex.mode === 'shadow') {
        // A declared length over the limit is skipped up front, without copying a single chunk.
        if (read?.overLimit || Number(req.headers['content-length']) > this.opts.capture.maxBodyBytes) this.observer.skip(ex, 'body_too_large');
        else if (read) capture = true;
        else ex.reqCapture = new BodyCapture(this.opts.capture.maxBodyBytes);
        // Noise baseline (safe methods only): a share of calls is made twice, see callAgainForNoise.
        const noise = (matched.entry.config as { noise?: { sample: number } }).noise;
        if (ex.reqCapture && shouldSampleNoise(noise, req.method ?? 'GET')) ex.noise = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, upstream };
      }
    } else {
      this.opts.metrics.unmatched.inc();
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    this.opts.discovery?.begin(ex, req, path);
    const traceparent = req.headers.traceparent;
    ex.span = startSpan('cutover forward', SpanKind.SERVER, typeof traceparent === 'string' ? traceparent : undefined, { 'http.request.method': req.method ?? 'GET', 'url.path': path, 'cutover.flow': matched?.entry.config.name ?? UNMATCHED, 'cutover.mode': ex.mode });
    if (busMode) {
      // The upstream may be absent (a caller-side sidecar with routes only): the bus path does not need it.
      void this.busPath.handle(req, res, ex, busMode, upstream, read);
      return;
    }
    if (read) return this.forwardBuffered(ex, req, res, upstream, read.chunks, read.overLimit, capture);
    if (!upstream) {
      sendError(ex, res, 404, ErrorCodes.NOT_FOUND, `no route for ${req.headers.host ?? ''}${req.url ?? ''} and no default upstream`);
      req.resume();
      return;
    }
    void upstream.proxy(req, res, (err?: unknown) => {
      // Only reached when http-proxy-middleware could not even start the proxy request.
      this.upstreamErrors.failed(ex, req, res, err instanceof Error ? err : new Error(String(err)));
    });
  }

  /**
   * Forwards a request whose body was already read (fully, or up to a limit with `rest` still unread on
   * `req`), through the same proxy path as any other request. With `capture` the call is dual-written as in
   * shadow mode (the share of a canary that stays direct).
   */
  forwardBuffered(ex: Exchange, req: SidecarRequest, res: ServerResponse, upstream: Upstream | undefined, chunks: Buffer[], rest: boolean, capture: boolean): void {
    if (!upstream) {
      sendError(ex, res, 404, ErrorCodes.NOT_FOUND, `no route for ${req.headers.host ?? ''}${req.url ?? ''} and no default upstream`);
      if (rest) req.resume();
      return;
    }
    if (capture && !rest) ex.reqCapture = new BodyCapture(this.opts.capture.maxBodyBytes);
    const replay = replayOf(req, chunks, rest);
    replay[EXCHANGE] = ex;
    void upstream.proxy(replay, res, (err?: unknown) => {
      this.upstreamErrors.failed(ex, replay, res, err instanceof Error ? err : new Error(String(err)));
    });
  }

  /** The call event parts of a flow's request (see {@link CallEvents.callParts}). */
  callParts(req: IncomingMessage, ex: Exchange, raw: Buffer): CallParts {
    return this.calls.callParts(req, ex, raw);
  }

  /** Answers the caller with a typed JSON error. */
  answer(ex: Exchange, res: ServerResponse, status: number, code: string, message: string): void {
    sendError(ex, res, status, code, message);
  }

  /** Counts a flow call that was forwarded but not (fully) dual-written. */
  skip(ex: Exchange, reason: SkipReason): void {
    this.observer.skip(ex, reason);
  }

  /** http-proxy events, registered on each upstream's proxy server. */
  private readonly plugin: Plugin = (proxy) => {
    proxy.on('start', (req) => {
      // Before http-proxy copies req.headers (where Node merged repeated lines): forward them as sent.
      forwardRepeatedHeaders(req);
      this.onStart(req as SidecarRequest);
    });
    proxy.on('proxyReq', (proxyReq, req) => {
      // http-proxy joins the target's path and the request's: `*` would go out as `/*`.
      if (req.url === '*') proxyReq.path = '*';
      const ex = (req as SidecarRequest)[EXCHANGE];
      if (ex) ex.proxyReq = proxyReq;
    });
    proxy.on('proxyReqWs', (proxyReq, req, socket) => this.upstreamErrors.awaitUpgrade(proxyReq, req, socket));
    proxy.on('proxyRes', (proxyRes, req) => this.onProxyRes(proxyRes, req as SidecarRequest));
    proxy.on('error', (err, req, res) => this.upstreamErrors.failed((req as SidecarRequest)[EXCHANGE], req, res, err));
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
    ex.timer = setTimeout(() => this.upstreamErrors.timedOut(ex), this.opts.upstreamTimeout);
    ex.discovery?.onRequest(req);
    const capture = ex.reqCapture;
    if (!capture) return;
    req.on('data', (chunk: Buffer) => capture.push(chunk));
    req.once('end', () => this.onRequestBody(req, ex, capture));
  }

  /** The request body is complete: publish the call event (shadow mode). */
  private onRequestBody(req: IncomingMessage, ex: Exchange, capture: BodyCapture): void {
    const entry = ex.entry!;
    if (capture.overLimit) {
      this.observer.skip(ex, 'body_too_large');
      return;
    }
    // The call event carries the publish span: the shadow side's spans are its children.
    const span = startSpan('cutover publish', SpanKind.PRODUCER, ex.span, { 'messaging.destination.name': entry.config.topic, 'cutover.flow': entry.config.name });
    if (span) ex.traceparent = traceparentOf(span);
    try {
      const id = randomUUID();
      const call = this.calls.callParts(req, ex, capture.buffer());
      const message = call.build(id, 'shadow', entry.observationsTopic);
      ex.id = id;
      ex.traceparent = call.traceparent;
      this.opts.outbox.enqueue(entry.config.topic, message);
      ex.published = true;
      entry.counters.events++;
      if (ex.responded) this.observer.observe(ex);
      endSpan(span, undefined, { 'messaging.message.id': id });
    } catch (err) {
      endSpan(span, err);
      // Never let capture problems touch the direct call.
      this.log.error({ err, flow: entry.config.name }, 'could not build the call event; the call was forwarded but not dual-written');
      this.observer.skip(ex, 'capture_failed');
    }
  }

  private onProxyRes(proxyRes: IncomingMessage, req: SidecarRequest): void {
    const ex = req[EXCHANGE];
    if (!ex) return;
    if (ex.timer) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    this.opts.metrics.forFlow(ex.entry?.config.name ?? UNMATCHED, ex.mode).upstream.observe((performance.now() - ex.upstreamStarted) / 1000);
    if (ex.failure) return;
    const res = ex.res!;
    // http-proxy pipes the response and never looks back: a response cut short would leave the caller
    // waiting for bytes that never come. Node reports the cut only to an 'error' listener.
    proxyRes.on('error', () => undefined);
    proxyRes.once('close', () => {
      if (!proxyRes.complete) this.upstreamErrors.aborted(ex, req, res);
    });
    ex.discovery?.onResponse(proxyRes);
    if (!ex.reqCapture) return;
    const capture = new BodyCapture(this.opts.capture.maxResponseBytes);
    ex.resCapture = capture;
    proxyRes.on('data', (chunk: Buffer) => capture.push(chunk));
  }
}

/**
 * A stand-in for a request whose body was read already: the same method, URL, headers and socket, the body
 * replayed from memory (then the unread rest of the original, when `rest`). http-proxy reads only these
 * fields and pipes the stream, so the forwarded request is the one the caller sent.
 */
function replayOf(req: SidecarRequest, chunks: Buffer[], rest: boolean): SidecarRequest {
  // The chunks read are in the stream before anyone pipes it: the upstream gets them in the first write.
  const stream = new PassThrough();
  for (const chunk of chunks) stream.write(chunk);
  if (rest) {
    req.once('error', (err) => stream.destroy(err));
    req.pipe(stream);
  } else stream.end();
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
