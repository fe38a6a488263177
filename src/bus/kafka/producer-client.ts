import { Partitioners, type Producer } from 'kafkajs';
import type { KafkaBusConfig } from '../../config/bus.js';
import type { OutgoingRecord } from './codec.js';
import { produceRetry, type KafkaFactory } from './client.js';

/** The records of one produce request for one topic. */
export interface TopicRecords {
  topic: string;
  records: OutgoingRecord[];
}

/**
 * What the publisher needs from a Kafka producer, whichever client library is behind it. `send` writes
 * every record with acks=all (all in-sync replicas) and resolves once the brokers acknowledged all of
 * them; it makes no retries of its own (the publisher resends whole batches, see publisher.ts).
 */
export interface ProducerClient {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(batch: readonly TopicRecords[], timeoutMs: number): Promise<void>;
}

/** Makes a fresh, unconnected producer, and what ends every socket it will open. */
export type ProducerFactory = () => { client: ProducerClient; release: () => void };

/** The kafkajs producer: not idempotent, no retries of its own, Java's murmur2 key partitioning. */
export function kafkajsProducerFactory(kafka: KafkaFactory, config: KafkaBusConfig): ProducerFactory {
  return () => {
    const { client, sockets } = kafka();
    const producer: Producer = client.producer({
      idempotent: false,
      retry: produceRetry(config),
      allowAutoTopicCreation: false,
      // Passing it explicitly also silences kafkajs's notice about its v2 partitioner change.
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    return {
      client: {
        connect: () => producer.connect(),
        disconnect: () => producer.disconnect(),
        send: async (batch, timeoutMs) => {
          await producer.sendBatch({ topicMessages: batch.map(({ topic, records }) => ({ topic, messages: records })), acks: -1, timeout: timeoutMs });
        },
      },
      release: () => sockets?.destroy(),
    };
  };
}
