import { randomUUID } from 'node:crypto';
import { nonRetriable } from '../bus/attempts.js';
import type { Registry } from 'prom-client';
import { createBus, type CreateBusOptions } from '../bus/index.js';
import { signedBus } from '../bus/signed-bus.js';
import type { Signer, Trust } from '../events/signature.js';
import type { BusConfig, BusConfigInput } from '../config/bus.js';
import { busConfigSchema } from '../config/bus.js';
import { assertTopicName, assertTopicPattern } from '../bus/topics.js';
import type { BackoffOptions, Bus, Delivery, Subscription } from '../bus/types.js';
import { base64Body } from '../events/body.js';
import { newTraceparent, schemaMajor } from '../events/cloudevent.js';
import type { CloudEvent } from '../events/types.js';
import { ObservationTypes } from '../events/wire.js';
import { CutoverError, ErrorCodes, ValidationError, describeError, isCutoverError } from '../errors.js';
import { AtLeastOnce, publishBusReply, type ReplyContext } from '../handling/at-least-once.js';
import { createDedupeStore, MemoryDedupeStore, type DedupeChoice, type DedupeStore } from '../handling/dedupe/index.js';
import { silentLogger, type Logger } from '../logger.js';

/** CloudEvent type of a reply (what the comparator pairs with the direct observation). */
export const REPLY_EVENT_TYPE = ObservationTypes.bus;

/** How long an event is claimed while its handler runs (and how long another consumer's claim is waited out). */
const HANDLER_LEASE_MS = 60_000;

export interface AgentBusOptions {
  bus: Bus;
  /** The agent's name: events it publishes have source `/agents/<agent>`. */
  agent: string;
  logger?: Logger;
  /**
   * Where handled event ids are recorded. Default: a process-local memory store (dedupes redeliveries to
   * this process only); pass `createDedupeStore(busConfig)` when several instances share a group.
   */
  dedupe?: DedupeStore;
  /** How long a handled event id is remembered. Default 1 day. */
  dedupeTtl?: number;
  /** Schema major versions handlers accept unless a subscription says otherwise. Default [1]. */
  schemaMajors?: readonly number[];
  /**
   * Version of this agent's code (a build, a model, a prompt revision), stamped on every reply: readiness
   * reports judge each version on its own evidence, so a new one starts afresh.
   */
  version?: string;
  /** Signs every event this agent publishes and every reply (see `loadSigner`); its agent should be `agent`. */
  signer?: Signer;
  /** Handlers see only events that verify against it; others go to the DLQ with a `CUTOVER_AUTH_*` code. */
  trust?: Trust;
  /** Where `cutover_events_rejected_total` is counted. */
  registry?: Registry;
  now?: () => number;
}

export interface PublishOptions {
  /** Partition key: events with one key keep their order. Default none. */
  key?: string | null;
  /** `schemaversion` of `data` (`1`, `1.2`). Default `1`. */
  schemaVersion?: string;
  /** CloudEvent type. Default: the topic. */
  type?: string;
  id?: string;
  correlationId?: string;
  /** Where the consumer should reply. */
  replyTo?: string;
  traceparent?: string;
  subject?: string;
  headers?: Record<string, string>;
}

export interface AgentSubscribeOptions {
  /** Consumer group. Default `agent.<agent>`: every instance of this agent shares the work. */
  group?: string;
  /** Keys handled in parallel (per-key order always holds). Default 8. */
  concurrency?: number;
  /** Attempts before an event goes to the DLQ. Default 5. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Schema majors this handler understands; others go to the DLQ at once. Default the AgentBus setting. */
  schemaMajors?: readonly number[];
  from?: 'start' | 'end';
}

export interface ReplyOptions {
  /** HTTP-like status of the result. Default 200. */
  status?: number;
  headers?: Record<string, string>;
  /** Content type of a Buffer reply. */
  contentType?: string;
}

/** What a handler gets for one event. */
export interface HandlerContext<T = unknown> {
  event: CloudEvent<T>;
  /** `event.data`. For calls dual-written by the sidecar: `{ body, params, query }`. */
  data: T;
  topic: string;
  key: string | null;
  /** 1 on first delivery, higher on retries and redeliveries. */
  attempt: number;
  /**
   * True when the event came from shadow mode: the direct path has already acted, so the handler must
   * not cause real side effects (no writes, no emails, no payments), only compute its answer.
   */
  shadow: boolean;
  logger: Logger;
  /**
   * Answers the event on its `replyto` (no-op without one). The reply is published once the handler
   * resolves, so a handler that fails after replying sends nothing. JSON values travel as they are;
   * a Buffer travels as bytes.
   */
  reply(data: unknown, options?: ReplyOptions): void;
  /** Publishes another event (carries this event's traceparent and correlation id). */
  publish(topic: string, data: unknown, options?: PublishOptions): Promise<CloudEvent>;
}

export type AgentHandler<T = unknown> = (ctx: HandlerContext<T>) => Promise<void> | void;

interface PendingReply {
  data: unknown;
  options: ReplyOptions;
  /** Handler run time, reported as the bus side's latency. */
  latencyMs?: number;
}

/**
 * The agent-side SDK: publish events and handle them the bus way (consumer groups, retries, DLQ),
 * idempotently by event id, with replies that the comparator can pair with the direct path's result.
 *
 * ```ts
 * const agents = await AgentBus.connect({ kind: 'redis', url }, { agent: 'inventory' });
 * await agents.subscribe(['commands.agent.inventory.*'], async (ctx) => {
 *   ctx.reply({ ok: true }, { status: 201 });
 * });
 * ```
 */
export class AgentBus {
  readonly bus: Bus;
  readonly agent: string;
  /** This agent's code version, stamped on its replies. */
  readonly version: string | undefined;
  private readonly log: Logger;
  private readonly dedupe: DedupeStore;
  private ownsDedupe: boolean;
  private ownsBus = false;
  private readonly now: () => number;
  private readonly subscriptions: Subscription[] = [];
  private readonly runners: Array<AtLeastOnce<PendingReply>> = [];
  private started = false;
  private closed = false;

  constructor(private readonly options: AgentBusOptions) {
    this.bus = signedBus(options.bus, { signer: options.signer, trust: options.trust, registry: options.registry, logger: options.logger });
    this.agent = options.agent;
    this.version = options.version;
    this.log = (options.logger ?? silentLogger()).child({ component: 'agent-bus', agent: options.agent });
    this.dedupe = options.dedupe ?? new MemoryDedupeStore();
    this.ownsDedupe = options.dedupe === undefined;
    this.now = options.now ?? Date.now;
  }

  /**
   * Creates and starts a bus from config plus the dedupe store that fits it (see docs/shadow.md), and an
   * AgentBus that owns both: `close()` closes them.
   */
  static async connect(
    config: BusConfigInput,
    options: Omit<AgentBusOptions, 'bus' | 'dedupe'> & { dedupe?: DedupeChoice; dataDir?: string; busOptions?: CreateBusOptions },
  ): Promise<AgentBus> {
    const parsed: BusConfig = busConfigSchema.parse(config);
    const bus = await createBus(parsed, { ...(options.logger ? { logger: options.logger } : {}), ...(options.busOptions ?? {}) });
    const dedupe = createDedupeStore(parsed, { ...(options.dedupe ? { choice: options.dedupe } : {}), ...(options.dataDir ? { dataDir: options.dataDir } : {}) });
    try {
      await bus.start();
      await dedupe.start();
    } catch (err) {
      await bus.close().catch(() => undefined);
      await dedupe.close().catch(() => undefined);
      throw err;
    }
    const agentBus = new AgentBus({ ...options, bus, dedupe });
    agentBus.ownsBus = true;
    agentBus.ownsDedupe = true;
    agentBus.started = true;
    return agentBus;
  }

  /** Starts the dedupe store (the bus must be started by whoever created it). */
  async start(): Promise<void> {
    if (this.started) return;
    await this.dedupe.start();
    this.started = true;
  }

  /** Publishes `data` as a CloudEvent on `topic`; resolves once the bus holds it. */
  async publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<CloudEvent> {
    assertTopicName(topic);
    const event: CloudEvent = {
      specversion: '1.0',
      id: options.id ?? randomUUID(),
      source: `/agents/${this.agent}`,
      type: options.type ?? topic,
      time: new Date(this.now()).toISOString(),
      datacontenttype: 'application/json',
      schemaversion: options.schemaVersion ?? '1',
      traceparent: options.traceparent ?? newTraceparent(),
    };
    if (options.correlationId !== undefined) event.correlationid = options.correlationId;
    if (options.replyTo !== undefined) event.replyto = options.replyTo;
    if (options.subject !== undefined) event.subject = options.subject;
    if (options.key !== undefined && options.key !== null) event.partitionkey = options.key;
    if (data !== undefined) event.data = data;
    await this.bus.publish(topic, [{ key: options.key ?? null, event, ...(options.headers ? { headers: options.headers } : {}) }]);
    return event;
  }

  /**
   * Handles events on `patterns` (names or `*` / `#` patterns) in a consumer group. Resolves once consuming.
   * A handler that throws is retried with backoff, then the event goes to `<topic>.dlq`; an event whose
   * schema major is not accepted goes to the DLQ at once with the reason. Either way an event with a
   * `replyto` gets an error reply (`error`, `dlq: true`) so that nobody waits for it in vain.
   */
  async subscribe<T = unknown>(patterns: string | readonly string[], handler: AgentHandler<T>, options: AgentSubscribeOptions = {}): Promise<Subscription> {
    if (this.closed) throw new CutoverError(ErrorCodes.BUS_CLOSED, 'the AgentBus is closed');
    await this.start();
    const topics = typeof patterns === 'string' ? [patterns] : [...patterns];
    topics.forEach((t) => assertTopicPattern(t));
    const group = options.group ?? `agent.${this.agent}`;
    const maxAttempts = options.maxAttempts ?? 5;
    const majors = new Set(options.schemaMajors ?? this.options.schemaMajors ?? [1]);
    const runner = new AtLeastOnce<PendingReply>({
      dedupe: this.dedupe,
      scope: group,
      leaseMs: HANDLER_LEASE_MS,
      ...(this.options.dedupeTtl !== undefined ? { ttlMs: this.options.dedupeTtl } : {}),
      logger: this.log.child({ group }),
      now: this.now,
    });
    this.runners.push(runner);
    const sub = await this.bus.subscribe({
      group,
      topics,
      concurrency: options.concurrency ?? 8,
      maxAttempts,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.from ? { from: options.from } : {}),
      handler: (d) => this.handle(d, handler as AgentHandler, { runner, maxAttempts, majors }),
    });
    this.subscriptions.push(sub);
    return sub;
  }

  /** Stops every subscription (waiting for handlers in flight), then what it owns. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const runner of this.runners) runner.close();
    await Promise.all(this.subscriptions.map((s) => s.close()));
    if (this.ownsDedupe) await this.dedupe.close();
    if (this.ownsBus) await this.bus.close();
  }

  private async handle(d: Delivery, handler: AgentHandler, sub: { runner: AtLeastOnce<PendingReply>; maxAttempts: number; majors: ReadonlySet<number> }): Promise<void> {
    const event = d.event;
    const log = this.log.child({ eventId: event.id, topic: d.topic, attempt: d.attempt });
    const reply: ReplyContext = { bus: this.bus, source: `/agents/${this.agent}`, consumedAt: this.now(), now: this.now, ...(this.version ? { version: this.version } : {}) };
    const major = schemaMajor(event.schemaversion);
    if (major !== undefined && !sub.majors.has(major)) {
      const err = new ValidationError(
        ErrorCodes.SCHEMA_UNSUPPORTED,
        `event ${event.id} on ${d.topic} has schemaversion ${event.schemaversion}; this handler accepts major ${[...sub.majors].join(', ')}`,
        { details: { schemaversion: event.schemaversion, accepted: [...sub.majors] } },
      );
      log.warn({ code: err.code }, 'unsupported schema version; moving the event to the DLQ');
      await this.sendError(d, reply, err);
      throw nonRetriable(err);
    }

    await sub.runner.handle(d, {
      maxAttempts: sub.maxAttempts,
      run: async () => {
        let replied: PendingReply | undefined;
        const ctx: HandlerContext = {
          event,
          data: event.data,
          topic: d.topic,
          key: d.key,
          attempt: d.attempt,
          shadow: event.cutovermode === 'shadow',
          logger: log,
          reply: (data, options = {}) => {
            if (replied) throw new CutoverError(ErrorCodes.INTERNAL, `event ${event.id}: reply() called twice`);
            replied = { data, options };
          },
          publish: (topic, data, options = {}) =>
            this.publish(topic, data, {
              ...(event.traceparent ? { traceparent: event.traceparent } : {}),
              correlationId: event.correlationid ?? event.id,
              ...options,
            }),
        };
        const started = performance.now();
        await handler(ctx);
        return replied ? { ...replied, latencyMs: Math.round((performance.now() - started) * 100) / 100 } : undefined;
      },
      reply: (pending) => this.sendReply(d, reply, pending),
      replyError: (err) => this.sendError(d, reply, err),
    });
  }

  private async sendReply(d: Delivery, reply: ReplyContext, pending: PendingReply): Promise<void> {
    const { data, options } = pending;
    const body = Buffer.isBuffer(data) ? base64Body(data, options.contentType) : data === undefined ? {} : { body: data };
    await publishBusReply(d, reply, {
      status: options.status ?? 200,
      headers: options.headers ?? {},
      ...body,
      ...(pending.latencyMs !== undefined ? { latencyMs: pending.latencyMs } : {}),
    });
  }

  private async sendError(d: Delivery, reply: ReplyContext, err: unknown): Promise<void> {
    const { code, message } = describeError(err);
    try {
      await publishBusReply(d, reply, { error: { code, message: message.slice(0, 500) }, dlq: true });
    } catch (e) {
      // The DLQ still records the failure; the missing reply shows up as missing_bus.
      this.log.warn({ err: e, eventId: d.event.id }, 'could not publish the error reply');
    }
  }
}

export function isSchemaUnsupported(err: unknown): boolean {
  return isCutoverError(err) && err.code === ErrorCodes.SCHEMA_UNSUPPORTED;
}
