import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis } from './helpers/brokers.js';
import { runBusFault } from './helpers/bus-fault.js';
import { readRedis } from './helpers/count.js';
import { startCountingUpstream, type CountingUpstream } from './helpers/traffic.js';

const HOLD_MS = 3_000;

let dir: string;
let upstream: CountingUpstream;
const cleanups: Array<() => Promise<unknown>> = [];
const defer = (fn: () => Promise<unknown>): void => void cleanups.push(fn);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-faults-redis-'));
  upstream = await startCountingUpstream();
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
afterAll(async () => {
  await upstream?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sidecar on a Redis bus that fails', () => {
  it('Redis killed mid-traffic, then restarted: no direct call fails, every event arrives', async () => {
    const redis = await startRedis({ aofDir: dir });
    defer(() => redis.close());
    const prefix = 'faults-kill:';
    const r = await runBusFault({
      scenario: 'redis killed + restarted',
      broker: redis,
      busYaml: `{ kind: redis, url: "${redis.url}", prefix: "${prefix}" }`,
      reader: () => ({ read: () => readRedis(redis.url, prefix), close: async () => undefined }),
      fault: 'kill',
      holdMs: HOLD_MS,
      upstream,
      dir,
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
      upstream,
      dir,
      defer,
    });
    expect(r.failed).toBe(0);
    expect(r.tally.missing, `missing events; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
    expect(r.lost).toBe(0);
  });
});
