import http from 'node:http';
import https from 'node:https';
import { Counter, Histogram, type Registry } from 'prom-client';
import { nonRetriable, sleep } from '../src/bus/attempts.js';
import type { Bus, Delivery, Subscription } from '../src/bus/types.js';
import { CutoverError, ErrorCodes, describeError, isCutoverError } from '../src/errors.js';
import { silentLogger, type Logger } from '../src/logger.js';
import type { DedupeStore } from '../src/sdk/dedupe/types.js';
import { serializeEvent } from '../src/events/cloudevent.js';
import { buildBusReply, callSampleOf, type BusReplyData } from './observations.js';
import type { FlowShadowOptions } from './options.js';
import { rebuildRequest, sendReplay, type ReplayResponse } from './replay.js';

/** Response headers a reply keeps by default: the sidecar's default allow-list for direct observations. */
export const DEFAULT_REPLY_HEADERS = ['content-type', 'location', 'etag', 'retry-after'];

/** The consumer group of a flow's delivery consumers. */
export function shadowGroup(flow: string): string {
  return `cutover.shadow.${flow}`;
}

export interface ShadowFlow {
  name: string;
  topic: string;
  match: { method: string; path: string };
  shadow: FlowShadowOptions & { target: string };
  /** Extra response headers to keep in replies (the flow's `compare.headers`). */
  compareHeaders?: readonly string[];
}

export interface DeliveryConsumerOptions {
  bus: Bus;
  flow: ShadowFlow;
  dedupe: DedupeStore;
  /** How long a handled event id is remembered. Default 1 day. */
  dedupeTtl?: number;
  logger?: Logger;
  registry?: Registry;
  /** Response bodies kept up to this size. Default 256 KiB (the sidecar's default capture limit). */
  maxResponseBytes?: number;
  /** Where a new group starts. Default `start`. */
  from?: 'start' | 'end';
  now?: () => number;
  /** Consumer group. Default `cutover.shadow.<flow>` (the sidecar's `deliver:` uses `cutover.deliver.<flow>`). */
  group?: string;
  /** Events this consumer serves; others are acknowledged and counted as skipped. Default: all of the flow's. */
  accept?: (event: Delivery['event']) => boolean;
  /** `source` of the replies. Default `/cutover/shadow`. */
  replySource?: string;
}

export interface DeliveryStats {
  delivered: number;
  /** Redeliveries of an event already handled: not sent again. */
  duplicates: number;
  retried: number;
  deadLettered: number;
  /** Events of another flow sharing the topic. */
  skipped: number;
}

/**
 * Delivery, the no-agent-change way to get a bus-driven result: consumes the flow's topic in consumer group
 * `cutover.shadow.<flow>`, rebuilds each call's HTTP request, sends it to `shadow.target`, and publishes the
 * response as the reply on the event's `replyto` (key = correlation id).
 *
 * Connection errors, timeouts and 5xx answers are retried with backoff (the bus's retry policy); after
 * `maxAttempts` an error reply (`dlq: true`) is published, so the comparator records error_bus instead of
 * waiting for a window, and the event goes to `<topic>.dlq`. An event id handled once is never sent to the
 * target again (dedupe store); a reply that failed to publish is retried from memory, not by resending.
 */
export class ShadowDeliveryConsumer {
  readonly group: string;
  private readonly opts: DeliveryConsumerOptions;
  private readonly log: Logger;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly keepHeaders: ReadonlySet<string>;
  private readonly now: () => number;
  private subscription: Subscription | undefined;
  private readonly abort = new AbortController();
  /** Responses whose reply publish failed: the retry publishes them without hitting the target again. */
  private readonly unpublished = new Map<string, ReplayResponse>();
  private readonly counters: DeliveryStats = { delivered: 0, duplicates: 0, retried: 0, deadLettered: 0, skipped: 0 };
  private readonly metrics: DeliveryMetrics | undefined;
  private closed = false;

  constructor(options: DeliveryConsumerOptions) {
    this.opts = options;
    this.group = options.group ?? shadowGroup(options.flow.name);
    this.log = (options.logger ?? silentLogger()).child({ component: 'shadow-delivery', flow: options.flow.name });
    this.base = new URL(options.flow.shadow.target);
    const concurrency = options.flow.shadow.concurrency;
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: concurrency }) : new http.Agent({ keepAlive: true, maxSockets: concurrency });
    this.keepHeaders = new Set([...DEFAULT_REPLY_HEADERS, ...(options.flow.compareHeaders ?? [])].map((h) => h.toLowerCase()));
    this.now = options.now ?? Date.now;
    this.metrics = options.registry ? DeliveryMetrics.of(options.registry) : undefined;
  }

  /** Joins the group; resolves once consuming. */
  async start(): Promise<void> {
    if (this.subscription) return;
    const s = this.opts.flow.shadow;
    this.subscription = await this.opts.bus.subscribe({
      group: this.group,
      topics: [this.opts.flow.topic],
      concurrency: s.concurrency,
      maxAttempts: s.maxAttempts,
      ...(s.backoff ? { backoff: s.backoff } : {}),
      from: this.opts.from ?? 'start',
      handler: (d) => this.handle(d),
    });
    this.log.info({ group: this.group, topic: this.opts.flow.topic, target: this.base.origin }, 'shadow delivery consuming');
  }

  stats(): DeliveryStats {
    return { ...this.counters };
  }

  /** Stops consuming (waits for deliveries in flight, bounded by the bus) and frees sockets. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    await this.subscription?.close();
    this.agent.destroy();
  }

  /** Handles one delivery; throws (retriable or not) to let the bus retry or dead-letter it. */
  async handle(d: Delivery): Promise<void> {
    const { flow } = this.opts;
    const event = d.event;
    if ((event.cutoverflow !== undefined && event.cutoverflow !== flow.name) || (this.opts.accept && !this.opts.accept(event))) {
      this.counters.skipped += 1;
      return;
    }
    const consumedAt = this.now();
    // Consumer lag as operators alert on it: how long events wait on the bus before a consumer takes them.
    this.metrics?.lag.observe({ flow: flow.name }, Math.max(0, consumedAt - d.publishedAt) / 1000);
    const log = this.log.child({ eventId: event.id, attempt: d.attempt });
    const lease = flow.shadow.timeout + 10_000;
    const claim = await this.claim(event.id, lease);
    if (claim === 'done') {
      this.counters.duplicates += 1;
      this.metrics?.deliveries.inc({ flow: flow.name, outcome: 'duplicate' });
      log.debug('already delivered; skipping the redelivery');
      return;
    }
    const last = d.attempt >= flow.shadow.maxAttempts;
    let response = this.unpublished.get(event.id);
    let failure: unknown;
    if (!response) {
      try {
        const request = rebuildRequest(d, flow);
        response = await sendReplay(this.base, request, {
          timeout: flow.shadow.timeout,
          maxResponseBytes: this.opts.maxResponseBytes ?? 256 * 1024,
          keepHeaders: this.keepHeaders,
          agent: this.agent,
        });
        this.metrics?.latency.observe({ flow: flow.name }, response.latencyMs / 1000);
      } catch (err) {
        failure = err;
      }
    }
    if (response && response.status >= 500) {
      failure = new CutoverError(ErrorCodes.HANDLER_FAILED, `shadow target answered ${response.status}`, { retriable: true, details: { status: response.status } });
    }
    const request = callSampleOf(d, { method: flow.match.method, target: flow.match.path });
    const eventBytes = Buffer.byteLength(serializeEvent(event));
    if (failure !== undefined) {
      const retriable = isCutoverError(failure) ? failure.retriable : false;
      await this.opts.dedupe.release(this.group, event.id).catch((err) => log.warn({ err }, 'could not release the dedupe lease'));
      if (!last && retriable) {
        this.counters.retried += 1;
        this.metrics?.deliveries.inc({ flow: flow.name, outcome: 'retry' });
        log.debug({ err: failure }, 'shadow delivery failed; the bus retries it');
        throw failure;
      }
      // Giving up: say so on the reply channel before the event goes to the DLQ.
      const { code, message } = describeError(failure);
      const result: Omit<BusReplyData, 'eventPublishedAt' | 'consumedAt' | 'repliedAt' | 'attempt'> = { error: { code, message: message.slice(0, 500) }, dlq: true, request, eventBytes };
      if (response) Object.assign(result, { status: response.status, headers: response.headers, ...response.body, latencyMs: response.latencyMs });
      await this.reply(d, consumedAt, result);
      this.counters.deadLettered += 1;
      this.metrics?.deliveries.inc({ flow: flow.name, outcome: 'dlq' });
      log.warn({ code }, 'shadow delivery gave up; the event goes to the DLQ');
      throw retriable ? failure : nonRetriable(failure as object);
    }
    const ok = response!;
    try {
      await this.reply(d, consumedAt, { status: ok.status, headers: ok.headers, ...ok.body, latencyMs: round(ok.latencyMs), request, eventBytes });
    } catch (err) {
      // The target has answered: keep its response so that the retry only publishes.
      this.remember(event.id, ok);
      await this.opts.dedupe.release(this.group, event.id).catch(() => undefined);
      throw err;
    }
    this.unpublished.delete(event.id);
    await this.opts.dedupe.complete(this.group, event.id, this.opts.dedupeTtl ?? 86_400_000).catch((err) => log.warn({ err }, 'could not mark the event delivered'));
    this.counters.delivered += 1;
    this.metrics?.deliveries.inc({ flow: flow.name, outcome: 'delivered' });
  }

  /** Takes the dedupe lease, waiting out another consumer's lease (a rebalance overlap) up to `lease`. */
  private async claim(id: string, lease: number): Promise<'acquired' | 'done'> {
    const deadline = this.now() + lease;
    for (;;) {
      const result = await this.opts.dedupe.claim(this.group, id, lease);
      if (result !== 'busy') return result;
      if (this.now() > deadline || !(await sleep(200, this.abort.signal))) {
        throw new CutoverError(ErrorCodes.HANDLER_FAILED, `event ${id} is being delivered by another consumer`, { retriable: true });
      }
    }
  }

  private async reply(d: Delivery, consumedAt: number, result: Omit<BusReplyData, 'eventPublishedAt' | 'consumedAt' | 'repliedAt' | 'attempt'>): Promise<void> {
    const replyTo = d.event.replyto;
    if (!replyTo) return;
    const message = buildBusReply({
      call: d.event,
      eventPublishedAt: d.publishedAt,
      consumedAt,
      attempt: d.attempt,
      source: this.opts.replySource ?? '/cutover/shadow',
      result,
      now: this.now,
    });
    await this.opts.bus.publish(replyTo, [message]);
  }

  private remember(id: string, response: ReplayResponse): void {
    if (this.unpublished.size >= 1_000) {
      const oldest = this.unpublished.keys().next();
      if (!oldest.done) this.unpublished.delete(oldest.value);
    }
    this.unpublished.set(id, response);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

class DeliveryMetrics {
  private static readonly byRegistry = new WeakMap<Registry, DeliveryMetrics>();

  /** One set per registry: every flow's consumer shares it (labelled by flow); a second set would not register. */
  static of(registry: Registry): DeliveryMetrics {
    let metrics = DeliveryMetrics.byRegistry.get(registry);
    if (!metrics) {
      metrics = new DeliveryMetrics(registry);
      DeliveryMetrics.byRegistry.set(registry, metrics);
    }
    return metrics;
  }

  readonly deliveries: Counter<'flow' | 'outcome'>;
  readonly latency: Histogram<'flow'>;
  readonly lag: Histogram<'flow'>;

  private constructor(registry: Registry) {
    this.lag = new Histogram({
      name: 'cutover_shadow_bus_lag_seconds',
      help: 'Time from publish to consumption of call events by the shadow delivery consumer',
      labelNames: ['flow'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    this.deliveries = new Counter({ name: 'cutover_shadow_deliveries_total', help: 'Shadow deliveries by flow and outcome', labelNames: ['flow', 'outcome'], registers: [registry] });
    this.latency = new Histogram({
      name: 'cutover_shadow_target_seconds',
      help: 'Shadow target response time',
      labelNames: ['flow'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }
}

/**
 * Delivery consumers started together over one dedupe store, and closed together: the shadow side's (one per
 * flow with a shadow target) and the sidecar's `deliver:` ones. The store is the one given, else opened
 * here with `openDedupe` (and then closed here too). A consumer that fails to start closes the rest.
 */
export class DeliveryConsumers {
  readonly consumers: ShadowDeliveryConsumer[] = [];
  private dedupe: DedupeStore | undefined;
  private ownsDedupe = false;
  private closed = false;

  constructor(
    private readonly opts: { dedupe?: DedupeStore; openDedupe: () => DedupeStore; logger: Logger },
  ) {}

  /** The dedupe store in use, once started. */
  get store(): DedupeStore | undefined {
    return this.dedupe;
  }

  /** Starts one consumer per entry, in order; resolves once all consume. */
  async start(each: ReadonlyArray<Omit<DeliveryConsumerOptions, 'dedupe'>>): Promise<void> {
    try {
      this.dedupe = this.opts.dedupe;
      if (!this.dedupe) {
        this.dedupe = this.opts.openDedupe();
        this.ownsDedupe = true;
        await this.dedupe.start();
      }
      for (const options of each) {
        if (this.closed) return;
        const consumer = new ShadowDeliveryConsumer({ ...options, dedupe: this.dedupe });
        this.consumers.push(consumer);
        await consumer.start();
      }
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Stops the consumers (deliveries in flight finish, bounded by the bus), then the store it opened. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.consumers.map((c) => c.close().catch((err: unknown) => this.opts.logger.warn({ err, group: c.group }, 'closing a delivery consumer failed'))));
    if (this.ownsDedupe) await this.dedupe?.close();
  }
}
