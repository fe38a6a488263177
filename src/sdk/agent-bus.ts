import { randomUUID } from 'node:crypto';
import { nonRetriable } from '../bus/attempts.js';
import type { Registry } from 'prom-client';
import { createBus, type CreateBusOptions } from '../bus/index.js';
import type { TopicAcl } from '../acl/rules.js';
import { signedBus } from '../bus/signed-bus.js';
import type { Signer, Trust } from '../events/signature.js';
import type { BusConfig, BusConfigInput } from '../config/bus.js';
import { busConfigSchema } from '../config/bus.js';
import { assertTopicName, assertTopicPattern } from '../bus/topics.js';
import type { BackoffOptions, Bus, Delivery, Subscription } from '../bus/types.js';
import { base64Body, isJsonContentType } from '../events/body.js';
import { formatSse, SSE_CONTENT_TYPE } from '../events/sse.js';
import { buildStreamEvent } from '../events/reply.js';
import { isReplyChannel } from '../http/replay.js';
import { newTraceparent, schemaMajor } from '../events/cloudevent.js';
import type { CloudEvent } from '../events/types.js';
import { ObservationTypes } from '../events/wire.js';
import { CutoverError, ErrorCodes, ValidationError, describeError, isCutoverError } from '../errors.js';
import { AtLeastOnce, publishBusReply, type ReplyContext } from '../handling/at-least-once.js';
import { createDedupeStore, MemoryDedupeStore, type DedupeChoice, type DedupeStore } from '../handling/dedupe/index.js';
import { silentLogger, type Logger } from '../logger.js';
import { openCallData, sealResult } from '../crypto/body-fields.js';
import { rpcDispatcher, type RpcHandlers } from './rpc.js';
import type { Keyring } from '../crypto/keyring.js';
import { inSpan, SpanKind } from '../tracing.js';

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
  /**
   * Topic authorization (`new TopicAcl(aclSchema.parse(...))`): publishes outside this agent's grant reject
   * with `CUTOVER_AUTH_TOPIC_DENIED`; with `trust`, events whose producer may not publish on their topic are
   * dead-lettered with that code.
   */
  acl?: TopicAcl;
  /** Where `cutover_events_rejected_total` is counted. */
  registry?: Registry;
  /**
   * The keys of fields the sidecar encrypts (`Keyring.fromConfig(config.encryption, process.env)`).
   * Handlers then see those fields decrypted in `ctx.data.body`, an event whose fields do not decrypt
   * goes to the DLQ with CUTOVER_CRYPTO_FAILED (and an error reply), and the configured fields of replies
   * are encrypted before they are published. Without it, handlers see the `{ $enc, kid }` objects.
   */
  keyring?: Keyring;
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
  /** Content type of a Buffer reply, or of a string reply that is text, not JSON (`text/event-stream`, `text/plain`). */
  contentType?: string;
}

/** What a handler gets for one event. */
export interface HandlerContext<T = unknown> {
  event: CloudEvent<T>;
  /**
   * `event.data`. For calls dual-written by the sidecar: `{ body, params, query }`, encrypted body fields
   * decrypted when the AgentBus has a `keyring` (`event.data` keeps them encrypted).
   */
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
  /**
   * Streams one event of the answer (Server-Sent Events; a JSON value is serialized). In bus mode it is
   * published at once on the waiting sidecar's reply channel, which relays it to the caller as it comes;
   * once the handler resolves, the reply carries the whole stream (`text/event-stream`), which is what shadow
   * mode compares. Do not call `reply` as well.
   */
  streamEvent(data: unknown): Promise<void>;
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
    this.bus = signedBus(options.bus, { signer: options.signer, trust: options.trust, acl: options.acl, agent: options.agent, registry: options.registry, logger: options.logger });
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
    const bus = await createBus(parsed, { ...(options.logger ? { logger: options.logger } : {}), ...(options.registry ? { registry: options.registry } : {}), ...(options.busOptions ?? {}) });
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

  /**
   * Serves A2A / MCP operations bus-natively: the call events on `patterns` (the topics of flows with
   * `match.rpc`) are dispatched by JSON-RPC method, or MCP tool, to `handlers`, and answered with JSON-RPC
   * responses carrying the caller's id (see {@link rpcDispatcher}).
   *
   * ```ts
   * await agents.serveRpc('commands.agent.travel.*', {
   *   methods: { GetTask: async (params) => tasks.get((params as { id: string }).id) ?? rpcFailure(-32001, 'Task not found') },
   *   tools: { lookup_stock: async (args) => ({ content: [{ type: 'text', text: '12' }] }) },
   * });
   * ```
   */
  serveRpc(patterns: string | readonly string[], handlers: RpcHandlers<HandlerContext>, options: AgentSubscribeOptions = {}): Promise<Subscription> {
    return this.subscribe(patterns, rpcDispatcher(handlers), options);
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

    let data: unknown;
    try {
      data = openCallData(this.options.keyring, event.id, event.data);
    } catch (err) {
      log.warn({ code: isCutoverError(err) ? err.code : undefined }, 'encrypted fields do not decrypt; moving the event to the DLQ');
      await this.sendError(d, reply, err);
      throw nonRetriable(err as object);
    }

    const attributes = { 'messaging.destination.name': d.topic, 'messaging.message.id': event.id, 'cutover.agent': this.agent, 'cutover.attempt': d.attempt };
    await sub.runner.handle(d, {
      maxAttempts: sub.maxAttempts,
      // One span per attempt, a child of the span the event carries (the sidecar's publish or bus request).
      run: () => inSpan('cutover handle', SpanKind.CONSUMER, event.traceparent, attributes, async () => {
        let replied: PendingReply | undefined;
        const streamed: string[] = [];
        const ctx: HandlerContext = {
          event,
          data,
          topic: d.topic,
          key: d.key,
          attempt: d.attempt,
          shadow: event.cutovermode === 'shadow',
          logger: log,
          reply: (data, options = {}) => {
            if (replied) throw new CutoverError(ErrorCodes.INTERNAL, `event ${event.id}: reply() called twice`);
            if (streamed.length > 0) throw new CutoverError(ErrorCodes.INTERNAL, `event ${event.id}: reply() after streamEvent()`);
            replied = { data, options };
          },
          streamEvent: async (value) => {
            if (replied) throw new CutoverError(ErrorCodes.INTERNAL, `event ${event.id}: streamEvent() after reply()`);
            const text = formatSse(typeof value === 'string' ? value : JSON.stringify(value));
            const seq = streamed.push(text) - 1;
            // Only a waiting sidecar relays events one by one; the comparator reads the whole stream in the reply.
            if (event.replyto && isReplyChannel(event.replyto)) {
              await this.bus.publish(event.replyto, [buildStreamEvent({ call: event, source: reply.source, seq, text })]);
            }
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
        if (streamed.length > 0) replied = { data: streamed.join(''), options: { contentType: SSE_CONTENT_TYPE } };
        return replied ? { ...replied, latencyMs: Math.round((performance.now() - started) * 100) / 100 } : undefined;
      }),
      reply: (pending) => this.sendReply(d, reply, pending),
      replyError: (err) => this.sendError(d, reply, err),
    });
  }

  private async sendReply(d: Delivery, reply: ReplyContext, pending: PendingReply): Promise<void> {
    const { data, options } = pending;
    const text = typeof data === 'string' && options.contentType !== undefined && !isJsonContentType(options.contentType);
    const body = Buffer.isBuffer(data)
      ? base64Body(data, options.contentType)
      : text
        ? { body: data, bodyEncoding: 'utf8' as const, contentType: options.contentType! }
        : data === undefined
          ? {}
          : { body: data };
    const result = {
      status: options.status ?? 200,
      headers: options.headers ?? {},
      ...body,
      ...(pending.latencyMs !== undefined ? { latencyMs: pending.latencyMs } : {}),
    };
    // Bound like the sidecar's direct observation of the same call: its correlation id, `response`.
    await publishBusReply(d, reply, sealResult(this.options.keyring, result, d.event.correlationid ?? d.event.id));
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
