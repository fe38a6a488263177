import { Kafka, logLevel } from 'kafkajs';

/**
 * Deletes the topics for which `select` returns true. For tests, benchmarks and cleanup scripts, which each
 * name their topics uniquely; returns the names deleted.
 */
export async function deleteKafkaTopics(brokers: readonly string[], select: (topic: string) => boolean): Promise<string[]> {
  const admin = new Kafka({ brokers: [...brokers], clientId: 'cutover-maintenance', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => !t.startsWith('__') && select(t));
    if (topics.length) await admin.deleteTopics({ topics });
    return topics;
  } finally {
    await admin.disconnect();
  }
}
