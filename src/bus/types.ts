import type { CloudEvent } from '../events/types.js';

/**
 * The bus as the rest of cutover sees it. Vendor clients (kafkajs, ioredis, better-sqlite3) never appear
 * in these types; adapters translate.
 *
 * Delivery is at-least-once everywhere: a handler may see a message again after a crash or a rebalance,
 * so handlers must be idempotent by event id.
 */
export interface Bus {
  /** Which adapter this is (`embedded`, `redis`, `kafka`, `rabbitmq`). */
  readonly kind: BusKind;

  /**
   * Connects and checks the facts that would silently break guarantees (reachability, Redis eviction
   * policy). Rejects with a BusError (CUTOVER_BUS_UNAVAILABLE / CUTOVER_BUS_MISCONFIGURED).
   */
  start(): Promise<void>;

  /**
   * Appends messages to one topic. Resolves only once the bus has durably accepted every message
   * (Kafka acks=all, Redis XADD replies, SQLite commit, RabbitMQ publisher confirms). Rejects with a BusError
   * within the configured publish timeout otherwise; never hangs. Messages of one call keep their order per key.
   */
  publish(topic: string, messages: readonly BusMessage[]): Promise<void>;

  /**
   * Joins consumer group `group` on `topics` (exact names or patterns with `*` = one level, `#` = zero or
   * more trailing levels). A topic created later that matches a pattern is picked up while running.
   * A message is acknowledged only after `handler` resolves; a failing handler is retried with backoff,
   * and after `maxAttempts` the message goes to `<topic>.dlq` with the error, attempt count and original
   * event. Messages with the same key are handled one at a time, in publish order.
   */
  subscribe(options: SubscribeOptions): Promise<Subscription>;

  /**
   * Reads a topic without a consumer group, for logs every instance must see in full (the flip log).
   * With `follow: false` the stream ends at the last message present when reading began.
   */
  read(topic: string, options: ReadOptions): ReadStream;

  /** Whether the bus answers right now. Never throws. */
  health(): Promise<BusHealth>;

  /** Stops subscriptions and readers this bus made and releases connections. Idempotent. */
  close(): Promise<void>;
}

export type BusKind = 'embedded' | 'redis' | 'kafka' | 'rabbitmq';

export interface BusMessage {
  /** Partition key: messages with one key keep their order. Null spreads messages freely. */
  key: string | null;
  event: CloudEvent;
  /** Transport headers (string values). Never put credentials here. */
  headers?: Record<string, string>;
}

/** One message as a handler or reader sees it. */
export interface Delivery {
  topic: string;
  key: string | null;
  event: CloudEvent;
  headers: Record<string, string>;
  /**
   * Adapter-specific position (Kafka `partition:offset`, Redis stream id, embedded sequence; RabbitMQ
   * `partition:deliveryTag` for a subscription, the stream offset for read()).
   */
  position: string;
  /** When the bus accepted the message, epoch milliseconds. */
  publishedAt: number;
  /** 1 on first delivery; counts retries (and, on Redis, embedded and RabbitMQ, redeliveries after a crash). */
  attempt: number;
  /**
   * Set on reads by a bus that verifies signatures (`signedBus` with a trust): who signed the event, checked
   * against the trusted keys (`agent` absent for an unsigned event from an `allowUnsigned` producer), or why
   * it failed. Absent when nothing was verified. Never copied from the event's own attributes unchecked.
   */
  verification?: Verification;
}

/** The outcome of checking a read event's signature. */
export type Verification = { ok: true; agent?: string; keyId?: string } | { ok: false; code: string; reason: string };

export type Handler = (delivery: Delivery) => Promise<void>;

export interface BackoffOptions {
  /** Delay before the first retry. Default 100 ms. */
  initialMs?: number;
  /** Cap on any one delay. Default 5 s. */
  maxMs?: number;
  /** Growth factor per attempt. Default 2. */
  multiplier?: number;
}

export interface SubscribeOptions {
  group: string;
  topics: readonly string[];
  handler: Handler;
  /** Keys handled in parallel by this consumer (per-key order always holds). Default 1. */
  concurrency?: number;
  /** Attempts before a message goes to the DLQ. Default 5. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Where a group that has no committed position starts. Default `start`. */
  from?: 'start' | 'end';
}

export interface Subscription {
  readonly group: string;
  /** Stops fetching, waits for handlers in flight (bounded), then leaves the group. Idempotent. */
  close(): Promise<void>;
}

export interface ReadOptions {
  /**
   * `start`: the topic's first retained message. `end`: messages published after read() was called. The
   * embedded and Redis buses fix that point when read() is called; Kafka finds it by record timestamp, so
   * a record stamped in the same millisecond as the call also comes; RabbitMQ starts when its stream
   * consumer is registered, a round trip after read().
   */
  from: 'start' | 'end';
  /** Keep waiting for new messages (true, default) or end at the current last message (false). */
  follow?: boolean;
  /**
   * On a verifying bus: also yield events that fail verification (marked in `verification`) instead of
   * skipping them, for readers that judge and report each record themselves (the flip log's history).
   */
  rejected?: boolean;
}

export interface ReadStream extends AsyncIterable<Delivery> {
  close(): Promise<void>;
}

export interface BusHealth {
  ok: boolean;
  kind: BusKind;
  latencyMs?: number;
  detail?: string;
}

/** Headers set on a message moved to `<topic>.dlq`. */
export const DlqHeaders = {
  originalTopic: 'cutover-dlq-topic',
  errorCode: 'cutover-dlq-error-code',
  errorMessage: 'cutover-dlq-error',
  attempts: 'cutover-dlq-attempts',
  failedAt: 'cutover-dlq-failed-at',
  group: 'cutover-dlq-group',
} as const;
