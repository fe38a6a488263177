import type { Admin, Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { TopicAdmin } from '../../../src/bus/kafka/topic-admin.js';
import { kafkaBusSchema } from '../../../src/config/bus.js';
import { ErrorCodes } from '../../../src/errors.js';
import { silentLogger } from '../../../src/logger.js';

/**
 * Unit test with a fake kafkajs admin: what ensureTopic does when the broker answers "unknown topic" for a
 * moment after creating it (seen on a busy CI broker). The real broker paths are in the Kafka conformance suite.
 */
function fakeKafka(createError: Error, metadataAnswers: Array<'unknown' | 'no-leader' | 'ready'>): { kafka: Kafka; metadataCalls: () => number } {
  let calls = 0;
  const admin = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    createTopics: async () => {
      throw createError;
    },
    fetchTopicMetadata: async ({ topics }: { topics: string[] }) => {
      const answer = metadataAnswers[Math.min(calls++, metadataAnswers.length - 1)];
      if (answer === 'unknown') throw Object.assign(new Error('This server does not host this topic-partition'), { retriable: true, type: 'UNKNOWN_TOPIC_OR_PARTITION' });
      return { topics: [{ name: topics[0], partitions: [0, 1].map((partition) => ({ partition, leader: answer === 'ready' ? 1 : -1 })) }] };
    },
  } as unknown as Admin;
  return { kafka: { admin: () => admin } as unknown as Kafka, metadataCalls: () => calls };
}

const config = kafkaBusSchema.parse({ kind: 'kafka', brokers: ['127.0.0.1:1'], publishTimeout: '2s' });
const unknownTopic = (): Error => Object.assign(new Error('This server does not host this topic-partition'), { retriable: true, type: 'UNKNOWN_TOPIC_OR_PARTITION' });

describe('TopicAdmin.ensureTopic (fake admin)', () => {
  it('waits for the leaders when creating answers a retriable "unknown topic"', async () => {
    const { kafka, metadataCalls } = fakeKafka(unknownTopic(), ['unknown', 'no-leader', 'ready']);
    const admin = new TopicAdmin(() => ({ client: kafka }), config, silentLogger());
    await expect(admin.ensureTopic('t1', 2_000)).resolves.toBeUndefined();
    expect(metadataCalls()).toBe(3);
  });

  it('gives up at the deadline with a typed error', async () => {
    const { kafka } = fakeKafka(unknownTopic(), ['unknown']);
    const admin = new TopicAdmin(() => ({ client: kafka }), config, silentLogger());
    await expect(admin.ensureTopic('t2', 500)).rejects.toMatchObject({ code: ErrorCodes.BUS_TIMEOUT });
  });

  it('does not wait on an error that is not retriable', async () => {
    const denied = Object.assign(new Error('Not authorized to access topics'), { retriable: false, type: 'TOPIC_AUTHORIZATION_FAILED' });
    const { kafka, metadataCalls } = fakeKafka(denied, ['ready']);
    const admin = new TopicAdmin(() => ({ client: kafka }), config, silentLogger());
    await expect(admin.ensureTopic('t3', 2_000)).rejects.toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    expect(metadataCalls()).toBe(0);
  });
});
