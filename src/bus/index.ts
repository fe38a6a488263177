import { ConfigError, ErrorCodes } from '../errors.js';
import { silentLogger } from '../logger.js';
import { busConfigSchema, type BusConfigInput } from '../config/bus.js';
import type { CreateBusOptions } from './options.js';
import type { Bus } from './types.js';

export * from './types.js';
export { busConfigSchema, type BusConfig, type BusConfigInput } from '../config/bus.js';
export type { CreateBusOptions } from './options.js';
export { topicMatcher, topicsMatcher, assertTopicName, assertTopicPattern, dlqTopic, isPattern } from './topics.js';

/**
 * Builds the adapter for `config` (not started: call `start()`). Vendor modules load lazily, so an
 * embedded-only install never loads kafkajs, ioredis or amqplib.
 */
export async function createBus(config: BusConfigInput, options: CreateBusOptions = {}): Promise<Bus> {
  const parsed = busConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `bus${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('')}: ${i.message}`);
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, issues.join('\n'), issues);
  }
  const logger = (options.logger ?? silentLogger()).child({ component: 'bus', bus: parsed.data.kind });
  switch (parsed.data.kind) {
    case 'embedded': {
      const { EmbeddedBus } = await import('./embedded/embedded-bus.js');
      return new EmbeddedBus(parsed.data, logger, options);
    }
    case 'redis': {
      const { RedisBus } = await import('./redis/redis-bus.js');
      return new RedisBus(parsed.data, logger, options);
    }
    case 'kafka': {
      const { KafkaBus } = await import('./kafka/kafka-bus.js');
      return new KafkaBus(parsed.data, logger, options);
    }
    case 'rabbitmq': {
      const { RabbitmqBus } = await import('./rabbitmq/rabbitmq-bus.js');
      return new RabbitmqBus(parsed.data, logger, options);
    }
  }
}

/** createBus + start: a started bus, or the start error with nothing left open. */
export async function openBus(config: BusConfigInput, options: CreateBusOptions = {}): Promise<Bus> {
  const bus = await createBus(config, options);
  try {
    await bus.start();
  } catch (err) {
    await bus.close();
    throw err;
  }
  return bus;
}
