import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startRedis } from './helpers/brokers.js';
import { runBusFault } from './helpers/bus-fault.js';
import { readRedis } from './helpers/count.js';
import { faultSuite } from './helpers/suite.js';

const HOLD_MS = 3_000;

const suite = faultSuite('redis');
const { defer } = suite;

describe('sidecar on a Redis bus that fails', () => {
  it('Redis killed mid-traffic, then restarted: no direct call fails, every event arrives', async () => {
    const redis = await startRedis({ aofDir: suite.dir });
    defer(() => redis.close());
    const prefix = 'faults-kill:';
    const r = await runBusFault({
      scenario: 'redis killed + restarted',
      broker: redis,
      busYaml: `{ kind: redis, url: "${redis.url}", prefix: "${prefix}" }`,
      reader: () => ({ read: () => readRedis(redis.url, prefix), close: async () => undefined }),
      fault: 'kill',
      holdMs: HOLD_MS,
      upstream: suite.upstream,
      dir: suite.dir,
      defer,
    });
    expect(r.failed).toBe(0);
    expect(r.tally.missing, `missing events; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
    expect(r.lost).toBe(0);
  });

  it('Redis paused (SIGSTOP) mid-traffic, then resumed: no direct call fails, every event arrives', async () => {
    const redis = await startRedis();
    defer(() => redis.close());
    const prefix = 'faults-pause:';
    const r = await runBusFault({
      scenario: 'redis paused + resumed',
      broker: redis,
      busYaml: `{ kind: redis, url: "${redis.url}", prefix: "${prefix}" }`,
      reader: () => ({ read: () => readRedis(redis.url, prefix), close: async () => undefined }),
      fault: 'pause',
      holdMs: HOLD_MS,
      upstream: suite.upstream,
      dir: suite.dir,
      defer,
    });
    expect(r.failed).toBe(0);
    expect(r.tally.missing, `missing events; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
    expect(r.lost).toBe(0);
  });
});
