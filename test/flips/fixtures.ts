import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BusConfigInput } from '../../src/bus/options.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { kafkaBrokers, redisUrl } from '../helpers/brokers.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';

/** Small thresholds so a few dozen records decide a verdict. */
export const TEST_READINESS = { minSamples: 20, minParityLowerBound: 0.8, maxMissingRate: 0.05, maxDlqRate: 0.05, maxBusErrorRate: 0.05, maxBusP99Ms: null, largeEventBytes: 65536 };

/** `n` parity records of `flow`; the first `mismatches` mismatch. */
export function records(flow: string, n: number, options: { mismatches?: number; mode?: string; at?: Date } = {}): ParityRecord[] {
  const at = (options.at ?? new Date()).toISOString();
  return Array.from({ length: n }, (_, i) => ({
    v: 1 as const,
    flow,
    correlationId: `${flow}-${options.mode ?? 'shadow'}-${i}-${Math.random().toString(36).slice(2)}`,
    outcome: i < (options.mismatches ?? 0) ? ('mismatch' as const) : ('match' as const),
    at,
    mode: options.mode ?? 'shadow',
    diffs: i < (options.mismatches ?? 0) ? [{ path: '/body/price', kind: 'changed' as const, direct: 1, bus: 2 }] : [],
    directStatus: 200,
    busStatus: 200,
    directLatencyMs: 5,
    busLatencyMs: 9,
  }));
}

export interface BusTarget {
  kind: 'embedded' | 'redis' | 'kafka';
  skip?: string;
  setup(id: string): Promise<{ config: BusConfigInput; dir: string; cleanup: () => Promise<void> }>;
}

const redis = redisUrl();
const brokers = kafkaBrokers();

/** The three adapters, each isolated per test (embedded: own file; Redis: own key prefix; Kafka: own flow names). */
export const busTargets: BusTarget[] = [
  {
    kind: 'embedded',
    async setup() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cutover-flips-'));
      return { config: { kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' }, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    kind: 'redis',
    ...(redis ? {} : { skip: 'Redis unavailable (see the line printed at start)' }),
    async setup(id) {
      const prefix = `cutover-flips-test-${id}:`;
      const dir = await mkdtemp(path.join(tmpdir(), 'cutover-flips-'));
      return {
        config: { kind: 'redis', url: redis!, prefix, blockTime: '200ms' },
        dir,
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
      // `cutover.control` has no per-installation prefix on Kafka: tests share it and stay apart by flow name.
      const dir = await mkdtemp(path.join(tmpdir(), 'cutover-flips-'));
      return {
        config: { kind: 'kafka', brokers: brokers!, partitions: 3, sessionTimeout: '6s', topicRefreshInterval: '1s', connectionTimeout: '2s' },
        dir,
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
];

/** Writes a cutover config (YAML is JSON) for one agent with the given flows. */
export async function writeConfig(
  dir: string,
  name: string,
  options: { bus: BusConfigInput; flows: Array<{ name: string; mode?: string }>; admin?: Record<string, unknown>; upstream?: string; dataDir?: string },
): Promise<string> {
  const file = path.join(dir, name);
  const config = {
    agent: 'flipper',
    listen: '127.0.0.1:0',
    upstream: options.upstream ?? 'http://127.0.0.1:9',
    admin: options.admin ?? { listen: '127.0.0.1:0', auth: false },
    bus: options.bus,
    dataDir: options.dataDir ?? dir,
    log: { level: 'warn' },
    readiness: TEST_READINESS,
    flows: options.flows.map((f, i) => ({
      name: f.name,
      match: { method: 'POST', path: `/f${i}` },
      topic: `commands.agent.flipper.f${i}-${f.name.replace(/[^a-z0-9]/g, '')}`,
      mode: f.mode ?? 'direct',
    })),
  };
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}
