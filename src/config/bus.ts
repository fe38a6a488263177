import { z } from 'zod';
import { durationSchema } from '../duration.js';

/** Settings every adapter shares. */
const common = {
  /** Upper bound on one publish call; it rejects with CUTOVER_BUS_TIMEOUT after this. */
  publishTimeout: durationSchema.default('10s'),
  /** Largest serialized message accepted (bytes); bigger ones reject with CUTOVER_MESSAGE_TOO_LARGE. */
  maxMessageBytes: z.number().int().positive().default(1_000_000),
};

export const embeddedBusSchema = z
  .object({
    kind: z.literal('embedded'),
    /** SQLite file; several processes on one machine may share it. */
    path: z.string().min(1).default('.data/cutover.db'),
    /** Messages older than this are deleted, whether consumed or not (like Kafka's retention.ms). */
    retention: durationSchema.default('7d'),
    /** Virtual partitions per topic: the unit of per-key order and of work sharing in a group. */
    partitions: z.number().int().min(1).max(256).default(8),
    /** How long a consumer may hold a partition without heartbeating before another takes it over. */
    sessionTimeout: durationSchema.default('10s'),
    /** Poll interval when a consumer found nothing. */
    pollInterval: durationSchema.default('20ms'),
    ...common,
  })
  .strict();

export const redisBusSchema = z
  .object({
    kind: z.literal('redis'),
    url: z.string().url().default('redis://127.0.0.1:6379'),
    /** Prefix of every key cutover writes, so several installations can share one Redis. */
    prefix: z.string().default('cutover:'),
    /** Approximate cap on entries per topic (XADD MAXLEN ~, split evenly over the topic's partition streams). */
    maxLen: z.number().int().positive().default(1_000_000),
    /**
     * Virtual partitions (one stream each) of topics this installation creates: the unit of per-key order
     * and of work sharing in a group. A topic keeps the count it was created with (recorded in Redis).
     */
    partitions: z.number().int().min(1).max(256).default(8),
    /** A pending message idle this long with its consumer is claimed by another (XAUTOCLAIM). */
    claimIdle: durationSchema.default('30s'),
    /** How long one XREADGROUP blocks waiting for messages. */
    blockTime: durationSchema.default('1s'),
    /** Refuse to start when maxmemory-policy is not noeviction: eviction would silently drop streams. */
    requireNoEviction: z.boolean().default(true),
    tls: z.boolean().default(false),
    ...common,
  })
  .strict();

export const kafkaBusSchema = z
  .object({
    kind: z.literal('kafka'),
    brokers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port')).min(1),
    clientId: z.string().default('cutover'),
    /** Partitions of topics cutover creates on demand. */
    partitions: z.number().int().min(1).default(6),
    replicationFactor: z.number().int().min(1).default(1),
    /** How long a publish waits to gather a micro-batch. */
    linger: durationSchema.default('2ms'),
    /** Consumer group session timeout: how soon a dead consumer's partitions move to another. */
    sessionTimeout: durationSchema.default('30s'),
    /** How often wildcard subscriptions look for new matching topics. */
    topicRefreshInterval: durationSchema.default('5s'),
    connectionTimeout: durationSchema.default('3s'),
    ssl: z.boolean().default(false),
    sasl: z
      .object({
        mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
        username: z.string().min(1),
        password: z.string().min(1),
      })
      .strict()
      .optional(),
    ...common,
  })
  .strict();

export const busConfigSchema = z.discriminatedUnion('kind', [embeddedBusSchema, redisBusSchema, kafkaBusSchema]);

export type EmbeddedBusConfig = z.infer<typeof embeddedBusSchema>;
export type RedisBusConfig = z.infer<typeof redisBusSchema>;
export type KafkaBusConfig = z.infer<typeof kafkaBusSchema>;
export type BusConfig = z.infer<typeof busConfigSchema>;
/** What a user may write (before defaults). */
export type BusConfigInput = z.input<typeof busConfigSchema>;
