import { z } from 'zod';
import { durationSchema } from '../duration.js';
import { isLoopbackHost } from '../tls.js';

const pemFile = z.string().min(1);

/** Files of a TLS client setting; a client certificate (mutual TLS) needs its key and the other way round. */
const tlsClientFiles = {
  /** PEM CA certificate(s) that sign the server's certificate; replaces Node's bundled CAs for this connection. */
  caFile: pemFile.optional(),
  /** PEM client certificate (chain) presented to servers that require one (mutual TLS). */
  certFile: pemFile.optional(),
  /** PEM private key of certFile. */
  keyFile: pemFile.optional(),
  /** Name the server's certificate must carry, when it differs from the host connected to. */
  servername: z.string().min(1).optional(),
};

function certWithKey(value: { certFile?: string | undefined; keyFile?: string | undefined }, ctx: z.RefinementCtx): void {
  if (value.certFile !== undefined && value.keyFile === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['keyFile'], message: 'required with certFile' });
  if (value.keyFile !== undefined && value.certFile === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['certFile'], message: 'required with keyFile' });
}

/** `ssl:` of the Kafka bus as an object: a private CA, a client certificate, a server name. */
export const kafkaTlsSchema = z
  .object({
    ...tlsClientFiles,
    /** false skips verifying the brokers' certificates: accepted only when every broker is on loopback. */
    rejectUnauthorized: z.boolean().default(true),
  })
  .strict()
  .superRefine(certWithKey);

/** `tls:` of the Redis bus as an object (ioredis `tls` options). */
export const redisTlsSchema = z.object(tlsClientFiles).strict().superRefine(certWithKey);

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
    /** How soon a process sees another process's writes to the file when they come in a stream (file-system notifications wake it at once after a quiet spell); the poll period where there are no notifications. */
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
    /** TLS to Redis: true (Node's CAs), or files for a private CA and a client certificate. A rediss:// URL turns it on too. */
    tls: z.union([z.boolean(), redisTlsSchema]).default(false),
    /**
     * Sentinels (host:port) watching the primary: cutover asks them where the primary is, and again after a
     * failover. `url` then gives only the credentials and database; its host and port are not used.
     */
    sentinels: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port')).min(1).optional(),
    /** Name of the primary the sentinels watch (`sentinel monitor <name> …`); used with `sentinels`. */
    name: z.string().min(1).default('mymaster'),
    /** Password of the sentinels themselves (their `requirepass`), when they have one. */
    sentinelPassword: z.string().min(1).optional(),
    /** TLS to the sentinels: true (Node's CAs), or files as for `tls`. */
    sentinelTls: z.union([z.boolean(), redisTlsSchema]).default(false),
    /**
     * Replicas that must have each published batch before publish() resolves (Redis WAIT). 0: the primary's
     * acknowledgement is enough, and a failover can lose the writes it had not yet replicated.
     */
    waitReplicas: z.number().int().min(0).default(0),
    /** How long publish() waits for `waitReplicas` replicas before it fails with CUTOVER_BUS_TIMEOUT. */
    waitTimeout: durationSchema.default('1s'),
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
    /**
     * Replicas of each partition of topics cutover creates; unset, the broker's default.replication.factor
     * (1 on a stock broker: give 3 on a three-broker cluster, or set the broker default).
     */
    replicationFactor: z.number().int().min(1).optional(),
    /**
     * min.insync.replicas of topics cutover creates: replicas that must have a write before it is
     * acknowledged (publishes wait for all in-sync replicas). Unset, the broker's min.insync.replicas.
     * 2 with replicationFactor 3 loses nothing acknowledged when one broker dies.
     */
    minInsyncReplicas: z.number().int().min(1).optional(),
    /**
     * How long a publish waits to gather a micro-batch. 0: publishes of one event-loop turn go together and
     * a lone one is sent at once; batches still form under load, as whatever arrives while a produce
     * request is in flight goes in the next. A few ms trade that much latency for fewer, larger requests (less CPU per message).
     */
    linger: durationSchema.default('0ms'),
    /** Consumer group session timeout: how soon a dead consumer's partitions move to another. */
    sessionTimeout: durationSchema.default('30s'),
    /** How often wildcard subscriptions look for new matching topics. */
    topicRefreshInterval: durationSchema.default('5s'),
    connectionTimeout: durationSchema.default('3s'),
    /** TLS to every broker: true (Node's CAs), or files for a private CA and a client certificate (mutual TLS). */
    ssl: z.union([z.boolean(), kafkaTlsSchema]).default(false),
    /**
     * Which Kafka client library does what. `producer`: the client of the publisher (every publish, dead
     * letters and replies included): `kafkajs` (the default), or `platformatic` (@platformatic/kafka, which
     * spends less CPU per record). Consumers, readers and topic administration always use kafkajs.
     */
    client: z
      .object({
        producer: z.enum(['kafkajs', 'platformatic']).default('kafkajs'),
      })
      .strict()
      .default({}),
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

export const rabbitmqBusSchema = z
  .object({
    kind: z.literal('rabbitmq'),
    /** AMQP 0.9.1 URL with credentials and vhost (`amqps://` for TLS). */
    url: z
      .string()
      .url()
      .refine((u) => /^amqps?:\/\//.test(u), 'expected an amqp:// or amqps:// URL')
      .default('amqp://guest:guest@127.0.0.1:5672/'),
    /** First part of every exchange and queue name cutover declares, so several installations can share a vhost. */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'expected dot-separated levels of letters, digits, _ or -')
      .max(64)
      .default('cutover'),
    /**
     * Partition queues per consumer group: the unit of per-key order and of work sharing. Every process of an
     * installation must use the same count (publishers route a key to a partition with it).
     */
    partitions: z.number().int().min(1).max(256).default(8),
    /** How often a group member re-reads the group's size and claims or gives back partitions. */
    rebalanceInterval: durationSchema.default('1s'),
    /** Unacknowledged messages one partition queue hands a consumer at a time (basic.qos). */
    prefetch: z.number().int().min(1).max(10_000).default(32),
    /** How long the log stream of a topic keeps messages (the stream's x-max-age): what read() can replay. */
    retention: durationSchema.default('7d'),
    /** Size cap of a topic's log stream (x-max-length-bytes); the oldest segments go first. */
    maxLogBytes: z.number().int().positive().default(10_000_000_000),
    /** AMQP heartbeat: how soon a silently dead connection (and its partitions) is noticed. */
    heartbeat: durationSchema.default('10s'),
    connectionTimeout: durationSchema.default('3s'),
    /**
     * TLS files for an `amqps://` URL: a private CA, a client certificate (mutual TLS), a server name.
     * An `amqps://` URL without it verifies against Node's CAs (NODE_EXTRA_CA_CERTS for a private one).
     */
    tls: redisTlsSchema.optional(),
    ...common,
  })
  .strict();

export const busConfigSchema = z.discriminatedUnion('kind', [embeddedBusSchema, redisBusSchema, kafkaBusSchema, rabbitmqBusSchema]).superRefine((bus, ctx) => {
  // Without verification anyone on the path can stand in for the broker; only a broker on this machine
  // (a development setup with a self-signed certificate) is exempt, and a caFile is the fix elsewhere.
  if (bus.kind === 'kafka' && typeof bus.ssl === 'object' && !bus.ssl.rejectUnauthorized) {
    const remote = bus.brokers.filter((b) => !isLoopbackHost(b.slice(0, b.lastIndexOf(':'))));
    if (remote.length > 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['ssl', 'rejectUnauthorized'], message: `false is accepted only when every broker is on loopback (not ${remote.join(', ')}): give ssl.caFile to trust a private CA instead` });
    }
  }
  if (bus.kind === 'kafka' && bus.minInsyncReplicas !== undefined && bus.replicationFactor !== undefined && bus.minInsyncReplicas > bus.replicationFactor) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['minInsyncReplicas'], message: `must not exceed replicationFactor (${bus.replicationFactor}): no write could ever be acknowledged` });
  }
  if (bus.kind === 'redis' && bus.waitReplicas > 0 && bus.waitTimeout >= bus.publishTimeout) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['waitTimeout'], message: `must be shorter than publishTimeout (${bus.publishTimeout} ms), which bounds the whole publish` });
  }
  // amqplib speaks TLS for amqps:// URLs only: TLS files beside a plain URL would be silently unused.
  if (bus.kind === 'rabbitmq' && bus.tls && !bus.url.startsWith('amqps://')) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tls'], message: 'needs an amqps:// URL (TLS is on for amqps:// only; the usual TLS port is 5671)' });
  }
});

export type EmbeddedBusConfig = z.infer<typeof embeddedBusSchema>;
export type RedisBusConfig = z.infer<typeof redisBusSchema>;
export type KafkaBusConfig = z.infer<typeof kafkaBusSchema>;
export type KafkaTlsConfig = z.infer<typeof kafkaTlsSchema>;
export type RedisTlsConfig = z.infer<typeof redisTlsSchema>;
export type RabbitmqBusConfig = z.infer<typeof rabbitmqBusSchema>;
export type BusConfig = z.infer<typeof busConfigSchema>;
/** What a user may write (before defaults). */
export type BusConfigInput = z.input<typeof busConfigSchema>;
