import http from 'node:http';
import https from 'node:https';
import { Counter, Histogram, type Registry } from 'prom-client';
import { nonRetriable } from '../src/bus/attempts.js';
import type { Bus, Delivery, Subscription } from '../src/bus/types.js';
import type { BusReplyResult } from '../src/events/reply.js';
import { CutoverError, ErrorCodes, describeError, isCutoverError } from '../src/errors.js';
import { AtLeastOnce, publishBusReply, type HandlingOutcome } from '../src/handling/at-least-once.js';
import type { DedupeStore } from '../src/handling/dedupe/types.js';
import { DEFAULT_REPLY_HEADERS, checkReplyTo, rebuildRequest, refusalReason, replayPolicy, sendReplay, type ReplayPolicy, type ReplayPolicyOptions, type ReplayRequest, type ReplayResponse } from '../src/http/replay.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { callSampleOf } from './observations.js';
import { openCallData, sealResult } from '../src/crypto/body-fields.js';
import { KEY_ID_EXTENSION } from '../src/events/wire.js';
import type { Keyring } from '../src/crypto/keyring.js';
import type { FlowShadowOptions } from '../src/config/shadow.js';
import { inSpan, SpanKind, type Span } from '../src/tracing.js';

/** The consumer group of a flow's replay consumers. */
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
  /** Where the target's code version comes from (the flow's `versions`). */
  versions?: { header?: string | undefined; shadow?: string | undefined };
}

export interface ReplayConsumerOptions {
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
  /**
   * What a command may ask the target to do, beyond the flow's `match`: the header allow-list and the
   * allowed `replyto` topics. Default: the sidecar's default request headers; the observations topic and
   * the sidecars' reply channels.
   */
  policy?: ReplayPolicyOptions;
  /**
   * Decryption keys and encrypted fields (the config's `encryption:`). With it, encrypted request-body
   * fields are decrypted before the target sees them (a value that does not decrypt dead-letters the event
   * with CUTOVER_CRYPTO_FAILED), and the configured fields of the target's answer are encrypted again
   * before the reply is published, with the key the call was encrypted with when held (so the caller that
   * encrypted it can read the answer). Without it, the target receives the `{ $enc, kid }` objects.
   */
  keyring?: Keyring;
}

export interface ReplayStats {
  delivered: number;
  /** Redeliveries of an event already handled: not sent again. */
  duplicates: number;
  retried: number;
  deadLettered: number;
  /** Events of another flow sharing the topic. */
  skipped: number;
  /** Commands refused by the replay policy (forged or foreign): dead-lettered, never sent, never answered. */
  refused: number;
}

/**
 * The HTTP replay consumer, the no-agent-change way to get a bus-driven result: consumes the flow's topic
 * in consumer group `cutover.shadow.<flow>`, rebuilds each call's HTTP request, sends it to
 * `shadow.target`, and publishes the response as the reply on the event's `replyto` (key = correlation id).
 *
 * Connection errors, timeouts and 5xx answers are retried with backoff (the bus's retry policy); after
 * `maxAttempts` an error reply (`dlq: true`) is published, so the comparator records error_bus instead of
 * waiting for a window, and the event goes to `<topic>.dlq`. An event id handled once is never sent to the
 * target again, and a reply that failed to publish is retried from memory, not by resending
 * ({@link AtLeastOnce}).
 */
export class ReplayConsumer {
  readonly group: string;
  private readonly opts: ReplayConsumerOptions;
  private readonly log: Logger;
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly keepHeaders: ReadonlySet<string>;
  private readonly now: () => number;
  private subscription: Subscription | undefined;
  private readonly handling: AtLeastOnce<ReplayResponse>;
  private readonly counters: ReplayStats = { delivered: 0, duplicates: 0, retried: 0, deadLettered: 0, skipped: 0, refused: 0 };
  private readonly metrics: ReplayMetrics | undefined;
  private readonly policy: ReplayPolicy;
  private closed = false;

  constructor(options: ReplayConsumerOptions) {
    this.opts = options;
    this.group = options.group ?? shadowGroup(options.flow.name);
    this.log = (options.logger ?? silentLogger()).child({ component: 'shadow-delivery', flow: options.flow.name });
    this.base = new URL(options.flow.shadow.target);
    const concurrency = options.flow.shadow.concurrency;
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: concurrency }) : new http.Agent({ keepAlive: true, maxSockets: concurrency });
    this.keepHeaders = new Set([...DEFAULT_REPLY_HEADERS, ...(options.flow.compareHeaders ?? [])].map((h) => h.toLowerCase()));
    this.now = options.now ?? Date.now;
    this.policy = replayPolicy(options.flow, options.policy);
    this.metrics = options.registry ? ReplayMetrics.of(options.registry) : undefined;
    this.handling = new AtLeastOnce({
      dedupe: options.dedupe,
      scope: this.group,
      leaseMs: options.flow.shadow.timeout + 10_000,
      ...(options.dedupeTtl !== undefined ? { ttlMs: options.dedupeTtl } : {}),
      logger: this.log,
      now: this.now,
      onOutcome: (outcome) => this.count(outcome),
    });
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

  stats(): ReplayStats {
    return { ...this.counters };
  }

  /** Stops consuming (waits for deliveries in flight, bounded by the bus) and frees sockets. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handling.close();
    await this.subscription?.close();
    this.agent.destroy();
  }

  /** Handles one delivery; throws (retriable or not) to let the bus retry or dead-letter it. */
  handle(d: Delivery): Promise<void> {
    const attributes = { 'messaging.destination.name': d.topic, 'messaging.message.id': d.event.id, 'cutover.flow': this.opts.flow.name, 'cutover.attempt': d.attempt };
    return inSpan('cutover deliver', SpanKind.CONSUMER, d.event.traceparent, attributes, (span) => this.deliver(d, span));
  }

  private async deliver(d: Delivery, span: Span | undefined): Promise<void> {
    const { flow } = this.opts;
    const event = d.event;
    if ((event.cutoverflow !== undefined && event.cutoverflow !== flow.name) || (this.opts.accept && !this.opts.accept(event))) {
      this.counters.skipped += 1;
      return;
    }
    const consumedAt = this.now();
    // Consumer lag as operators alert on it: how long events wait on the bus before a consumer takes them.
    this.metrics?.lag.observe({ flow: flow.name }, Math.max(0, consumedAt - d.publishedAt) / 1000);
    // Refused before the dedupe claim and without a reply: a forged command gets nothing sent anywhere,
    // and the bus dead-letters it with the error's code (not retriable).
    let prepared: { request: ReplayRequest } | { invalid: unknown };
    try {
      checkReplyTo(event, this.policy);
      prepared = { request: rebuildRequest(d, flow, this.policy) };
    } catch (err) {
      const reason = refusalReason(err);
      if (reason === undefined) {
        prepared = { invalid: err };
      } else {
        this.counters.refused += 1;
        this.metrics?.refused.inc({ flow: flow.name, reason });
        this.log.warn({ eventId: event.id, reason, source: event.source, err }, 'command refused by the replay policy; dead-lettered');
        throw nonRetriable(err as object);
      }
    }
    if ('request' in prepared && this.opts.keyring) {
      // Decrypted after the policy checks (a refused command is never decrypted) into the rebuilt request
      // only: the delivery, the call sample and everything published keep the ciphertext.
      try {
        const open = openCallData(this.opts.keyring, event.id, event.data);
        if (open !== event.data) prepared = { request: rebuildRequest({ ...d, event: { ...event, data: open } }, flow, this.policy) };
      } catch (err) {
        this.log.warn({ eventId: event.id, code: isCutoverError(err) ? err.code : undefined }, 'request body does not decrypt; dead-lettered');
        prepared = { invalid: err };
      }
    }
    const request = callSampleOf(d, { method: flow.match.method, target: flow.match.path });
    const correlationId = event.correlationid ?? event.id;
    const callKid = typeof event[KEY_ID_EXTENSION] === 'string' ? (event[KEY_ID_EXTENSION] as string) : undefined;
    const keyring = this.opts.keyring;
    const versions = flow.versions;
    const reply = { bus: this.opts.bus, source: this.opts.replySource ?? '/cutover/shadow', consumedAt, now: this.now, ...(versions?.shadow ? { version: versions.shadow } : {}) };
    // A 5xx answer fails the attempt; on the last one its status and body still go into the error reply.
    let failed: ReplayResponse | undefined;
    await this.handling.handle(d, {
      maxAttempts: flow.shadow.maxAttempts,
      run: async () => {
        // An event that cannot be rebuilt still gets its error reply (its replyto passed the policy).
        if ('invalid' in prepared) throw prepared.invalid;
        const replayed = prepared.request;
        const response = await inSpan('cutover replay', SpanKind.CLIENT, span, { 'http.request.method': replayed.method, 'server.address': this.base.host, 'cutover.target': replayed.target }, async (replay) => {
          const answer = await sendReplay(this.base, replayed, {
            timeout: flow.shadow.timeout,
            maxResponseBytes: this.opts.maxResponseBytes ?? 256 * 1024,
            keepHeaders: this.keepHeaders,
            agent: this.agent,
            ...(versions?.header ? { versionHeader: versions.header.toLowerCase() } : {}),
          });
          replay?.setAttribute('http.response.status_code', answer.status);
          return answer;
        });
        this.metrics?.latency.observe({ flow: flow.name }, response.latencyMs / 1000);
        if (response.status >= 500) {
          failed = response;
          throw new CutoverError(ErrorCodes.HANDLER_FAILED, `shadow target answered ${response.status}`, { retriable: true, details: { status: response.status } });
        }
        return response;
      },
      reply: (ok) => publishBusReply(d, reply, sealResult(keyring, { status: ok.status, headers: ok.headers, ...ok.body, latencyMs: round(ok.latencyMs), request, ...(ok.version ? { version: ok.version } : {}) }, correlationId, callKid)),
      replyError: (failure) => {
        const { code, message } = describeError(failure);
        const result: BusReplyResult = { error: { code, message: message.slice(0, 500) }, dlq: true, request };
        if (failed) Object.assign(result, { status: failed.status, headers: failed.headers, ...failed.body, latencyMs: failed.latencyMs });
        return publishBusReply(d, reply, sealResult(keyring, result, correlationId, callKid));
      },
      retriable: (failure) => (isCutoverError(failure) ? failure.retriable : false),
    });
  }

  private count(outcome: HandlingOutcome): void {
    const { stat, label } = OUTCOME_COUNTERS[outcome];
    this.counters[stat] += 1;
    this.metrics?.deliveries.inc({ flow: this.opts.flow.name, outcome: label });
  }
}

/** Where each outcome is counted: the stats field and the `outcome` label of cutover_shadow_deliveries_total. */
const OUTCOME_COUNTERS: Record<HandlingOutcome, { stat: Exclude<keyof ReplayStats, 'skipped' | 'refused'>; label: string }> = {
  handled: { stat: 'delivered', label: 'delivered' },
  duplicate: { stat: 'duplicates', label: 'duplicate' },
  retry: { stat: 'retried', label: 'retry' },
  'dead-letter': { stat: 'deadLettered', label: 'dlq' },
};

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

class ReplayMetrics {
  private static readonly byRegistry = new WeakMap<Registry, ReplayMetrics>();

  /** One set per registry: every flow's consumer shares it (labelled by flow); a second set would not register. */
  static of(registry: Registry): ReplayMetrics {
    let metrics = ReplayMetrics.byRegistry.get(registry);
    if (!metrics) {
      metrics = new ReplayMetrics(registry);
      ReplayMetrics.byRegistry.set(registry, metrics);
    }
    return metrics;
  }

  readonly deliveries: Counter<'flow' | 'outcome'>;
  readonly refused: Counter<'flow' | 'reason'>;
  readonly latency: Histogram<'flow'>;
  readonly lag: Histogram<'flow'>;

  private constructor(registry: Registry) {
    this.lag = new Histogram({
      name: 'cutover_shadow_bus_lag_seconds',
      help: 'Time from publish to consumption of call events by the shadow replay consumer',
      labelNames: ['flow'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    this.refused = new Counter({
      name: 'cutover_replay_refused_total',
      help: 'Commands the replay policy refused (method, path, credential_header, replyto) and dead-lettered',
      labelNames: ['flow', 'reason'],
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
 * Replay consumers started together over one dedupe store, and closed together: the shadow side's (one per
 * flow with a shadow target) and the sidecar's `deliver:` ones. The store is the one given, else opened
 * here with `openDedupe` (and then closed here too). A consumer that fails to start closes the rest.
 */
export class ReplayConsumers {
  readonly consumers: ReplayConsumer[] = [];
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
  async start(each: ReadonlyArray<Omit<ReplayConsumerOptions, 'dedupe'>>): Promise<void> {
    try {
      this.dedupe = this.opts.dedupe;
      if (!this.dedupe) {
        this.dedupe = this.opts.openDedupe();
        this.ownsDedupe = true;
        await this.dedupe.start();
      }
      for (const options of each) {
        if (this.closed) return;
        const consumer = new ReplayConsumer({ ...options, dedupe: this.dedupe });
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
    await Promise.all(this.consumers.map((c) => c.close().catch((err: unknown) => this.opts.logger.warn({ err, group: c.group }, 'closing a replay consumer failed'))));
    if (this.ownsDedupe) await this.dedupe?.close();
  }
}
