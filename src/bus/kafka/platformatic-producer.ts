import net from 'node:net';
import type tls from 'node:tls';
import type { MessageToProduce, Producer, SASLOptions, Serializer } from '@platformatic/kafka';
import type { KafkaBusConfig } from '../../config/bus.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { ProducerFactory } from './producer-client.js';

type PlatformaticKafka = typeof import('@platformatic/kafka');

/**
 * @platformatic/kafka is loaded the first time a producer on it connects: a bus on the kafkajs producer
 * never loads it, and where it cannot be loaded only a bus that selects it fails, with a clear error.
 */
let loading: Promise<PlatformaticKafka> | undefined;
function loadPlatformatic(): Promise<PlatformaticKafka> {
  loading ??= import('@platformatic/kafka').catch((err: unknown) => {
    loading = undefined;
    throw new BusError(
      ErrorCodes.BUS_MISCONFIGURED,
      `bus.client.producer: platformatic needs the package @platformatic/kafka 1.x, which could not be loaded (${(err as Error).message}); install cutover's dependencies again (npm ci), or use the kafkajs producer`,
      { cause: err },
    );
  });
  return loading;
}

type Bytes = string | Buffer;

/** Strings as UTF-8, raw bytes (a record dead-lettered as it is) unchanged, no key as no key. */
const bytes: Serializer<Bytes | null | undefined> = (data) => (data === null || data === undefined ? undefined : typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
const text: Serializer<string> = (data) => (data === undefined ? undefined : Buffer.from(data, 'utf8'));

const SASL_MECHANISMS = { plain: 'PLAIN', 'scram-sha-256': 'SCRAM-SHA-256', 'scram-sha-512': 'SCRAM-SHA-512' } as const;

/**
 * Partition of a record: for a key, Java's default partitioner (murmur2, sign bit cleared, modulo the
 * partition count, which the client applies), so a key lands where kafkajs and every Java-compatible
 * client put it; @platformatic/kafka's own default keeps the sign bit and sends about half of the keys
 * elsewhere. Records without a key take the partitions in turn.
 */
function keyPartitioner(kafka: PlatformaticKafka): (message: MessageToProduce<Bytes, Bytes, string, string>, key: Buffer | undefined) => number {
  let next = 0;
  return (message, key) => {
    if (key !== undefined) return kafka.compatibilityPartitioner(message, key);
    next = (next + 1) & 0x7fffffff;
    return next;
  };
}

/**
 * The @platformatic/kafka producer, set up as the kafkajs one is: acks=all, not idempotent, no compression,
 * no retries of its own (the publisher resends whole batches until its deadline), no topic auto-creation,
 * the same TLS and SASL settings. `ssl` comes from kafkaTlsOptions (files already read and checked).
 */
export function platformaticProducerFactory(config: KafkaBusConfig, ssl: tls.ConnectionOptions | undefined): ProducerFactory {
  return () => {
    let producer: Producer<Bytes, Bytes, string, string> | undefined;
    let closed = false;
    const create = (kafka: PlatformaticKafka): Producer<Bytes, Bytes, string, string> =>
      new kafka.Producer<Bytes, Bytes, string, string>({
      clientId: config.clientId,
      bootstrapBrokers: config.brokers,
      connectTimeout: config.connectionTimeout,
      // A request outliving the publish deadline is useless to the caller, who has been told it failed.
      // `requestTimeout` bounds the wait for an answer on the client; `timeout` is the broker's produce timeout.
      requestTimeout: Math.max(config.publishTimeout, 1_000),
      timeout: Math.max(config.publishTimeout, 1_000),
      retries: 0,
      // Its one resend after a stale-metadata answer (a leader moved) is a retry too: the publisher resends.
      repeatOnStaleMetadata: false,
      idempotent: false,
      acks: kafka.ProduceAcks.ALL,
      compression: 'none',
      autocreateTopics: false,
      partitioner: keyPartitioner(kafka),
      serializers: { key: bytes, value: bytes, headerKey: text, headerValue: text },
      // `{}` (ssl: true) means Node's CAs. SNI: the name the settings give, else the host connected to, except
      // when the brokers are given as IP addresses (RFC 6066 has no SNI for those).
      ...(ssl ? { tls: ssl, tlsServerName: ssl.servername ?? config.brokers.some((b) => net.isIP(b.slice(0, b.lastIndexOf(':'))) === 0) } : {}),
      ...(config.sasl ? { sasl: { mechanism: SASL_MECHANISMS[config.sasl.mechanism], username: config.sasl.username, password: config.sasl.password } satisfies SASLOptions } : {}),
    });
    // The producer has no streams to force closed; close() without arguments is the promise form.
    const close = async (): Promise<void> => {
      closed = true;
      await producer?.close();
    };
    return {
      client: {
        // Metadata from one broker: the bootstrap list answers (and accepts TLS and SASL) or this fails.
        connect: async () => {
          const kafka = await loadPlatformatic();
          if (closed) throw new BusError(ErrorCodes.BUS_CLOSED, 'the producer was closed while it connected');
          producer ??= create(kafka);
          await producer.metadata({ topics: [] });
        },
        disconnect: close,
        send: async (batch) => {
          if (!producer) throw new BusError(ErrorCodes.BUS_UNAVAILABLE, 'the producer is not connected', { retriable: true });
          const messages: Array<MessageToProduce<Bytes, Bytes, string, string>> = [];
          for (const { topic, records } of batch) {
            for (const r of records) messages.push({ topic, key: r.key ?? undefined, value: r.value, headers: r.headers });
          }
          // acks=all (-1), as the producer was made with.
          await producer.send({ messages, acks: -1 });
        },
      },
      release: () => void close().catch(() => undefined),
    };
  };
}
