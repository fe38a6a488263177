import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BusConfigInput } from '../../src/bus/index.js';
import { deleteKafkaTopics } from '../../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { kafkaBrokers, redisUrl } from './brokers.js';

/** A real bus for one test: its config, a private temp dir, and a cleanup that removes what the test made. */
export interface BusTargetEnv {
  config: BusConfigInput;
  /** A fresh temp directory (data dir of sidecars, dedupe files, the embedded bus file). */
  dir: string;
  /** Same as `dir`, under the name the sidecar config uses. */
  dataDir: string;
  /** Removes the temp dir, the Redis keys of this target, and Kafka topics starting with any of `topicPrefixes`. */
  cleanup(topicPrefixes?: string[]): Promise<void>;
}

export interface BusTarget {
  kind: 'embedded' | 'redis' | 'kafka';
  /** Why this target is skipped (its broker is unavailable; never on CI, where that fails the run). */
  skip?: string;
  setup(id: string): Promise<BusTargetEnv>;
}

/**
 * The three buses end-to-end suites run on, with settings that keep tests quick (short polls, session
 * timeouts of seconds). `label` names temp dirs and Redis prefixes so leftovers say which suite made them.
 */
export function busTargets(label: string): BusTarget[] {
  const redis = redisUrl();
  const brokers = kafkaBrokers();
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
  ];
}
