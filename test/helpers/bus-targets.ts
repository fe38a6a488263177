import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBus, type Bus, type BusConfigInput } from '../../src/bus/index.js';
import { deleteKafkaTopics } from '../../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { kafkaBrokers, rabbitmqUrl, redisUrl } from './brokers.js';
import { deleteRabbitPrefix } from './rabbitmq.js';

/** A real bus for one test: its config, a private temp dir, and a cleanup that removes what the test made. */
export interface BusTargetEnv {
  config: BusConfigInput;
  /** A fresh temp directory (data dir of sidecars, dedupe files, the embedded bus file). */
  dir: string;
  /** Same as `dir`, under the name the sidecar config uses. */
  dataDir: string;
  /**
   * Removes the temp dir, the Redis keys of this target, Kafka topics starting with any of `topicPrefixes`,
   * and the RabbitMQ exchanges and queues under this target's prefix.
   */
  cleanup(topicPrefixes?: string[]): Promise<void>;
}

export interface BusTarget {
  kind: 'embedded' | 'redis' | 'kafka' | 'rabbitmq';
  /** Why this target is skipped (its broker is unavailable; never on CI, where that fails the run). */
  skip?: string;
  setup(id: string): Promise<BusTargetEnv>;
}

/**
 * The four buses end-to-end suites run on, with settings that keep tests quick (short polls, session
 * timeouts of seconds). `label` names temp dirs and Redis prefixes so leftovers say which suite made them.
 */
export function busTargets(label: string): BusTarget[] {
  const redis = redisUrl();
  const brokers = kafkaBrokers();
  const rabbit = rabbitmqUrl();
  const tempDir = (): Promise<string> => mkdtemp(path.join(tmpdir(), `cutover-${label}-`));
  return [
    {
      kind: 'embedded',
      async setup() {
        const dir = await tempDir();
        return { config: { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' }, dir, dataDir: dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
      },
    },
    {
      kind: 'redis',
      ...(redis ? {} : { skip: 'Redis unavailable (see the line printed at start)' }),
      async setup(id) {
        const prefix = `cutover-${label}-test-${id}:`;
        const dir = await tempDir();
        return {
          config: { kind: 'redis', url: redis!, prefix, blockTime: '200ms' },
          dir,
          dataDir: dir,
          async cleanup() {
            await deleteRedisPrefix(redis!, prefix);
            await rm(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      kind: 'kafka',
      ...(brokers ? {} : { skip: 'Kafka unavailable (see the line printed at start)' }),
      async setup() {
        const dir = await tempDir();
        return {
          config: { kind: 'kafka', brokers: brokers!, partitions: 3, sessionTimeout: '6s', topicRefreshInterval: '1s', connectionTimeout: '2s' },
          dir,
          dataDir: dir,
          async cleanup(topicPrefixes = []) {
            if (topicPrefixes.length > 0) await deleteKafkaTopics(brokers!, (t) => topicPrefixes.some((p) => t.startsWith(p))).catch(() => undefined);
            await rm(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      kind: 'rabbitmq',
      ...(rabbit ? {} : { skip: 'RabbitMQ unavailable (see the line printed at start)' }),
      async setup(id) {
        const prefix = `cutover-${label}-test-${id}`;
        const dir = await tempDir();
        return {
          config: { kind: 'rabbitmq', url: rabbit!, prefix, rebalanceInterval: '200ms' },
          dir,
          dataDir: dir,
          async cleanup() {
            await deleteRabbitPrefix(rabbit!, prefix);
            await rm(dir, { recursive: true, force: true });
          },
        };
      },
    },
  ];
}

/** Creates and starts a bus for `config` and registers its close with the test's `cleanups`. */
export async function startBus(config: BusConfigInput, cleanups: Array<() => Promise<unknown>>): Promise<Bus> {
  const bus = await createBus(config);
  await bus.start();
  cleanups.push(() => bus.close());
  return bus;
}
