import { describe, it } from 'vitest';
import { startRedis } from './helpers/brokers.js';
import { expectNothingLost, runBusFault } from './helpers/bus-fault.js';
import { readRedis } from './helpers/count.js';
import { faultSuite } from './helpers/suite.js';

const HOLD_MS = 3_000;

const suite = faultSuite('redis');
const { defer } = suite;

describe('sidecar on a Redis bus that fails', () => {
  it.each([
    // A killed Redis must come back with its data (append-only file), or the broker's loss would count as ours.
    { fault: 'kill', what: 'killed mid-traffic, then restarted', scenario: 'redis killed + restarted', prefix: 'faults-kill:', aof: true },
    { fault: 'pause', what: 'paused (SIGSTOP) mid-traffic, then resumed', scenario: 'redis paused + resumed', prefix: 'faults-pause:', aof: false },
  ] as const)('Redis $what: no direct call fails, every event arrives', async ({ fault, scenario, prefix, aof }) => {
    const redis = await startRedis(aof ? { aofDir: suite.dir } : {});
    defer(() => redis.close());
    const r = await runBusFault({
      scenario,
      broker: redis,
      busYaml: `{ kind: redis, url: "${redis.url}", prefix: "${prefix}" }`,
      reader: () => ({ read: () => readRedis(redis.url, prefix), close: async () => undefined }),
      fault,
      holdMs: HOLD_MS,
      upstream: suite.upstream,
      dir: suite.dir,
      defer,
    });
    expectNothingLost(r);
  });
});
