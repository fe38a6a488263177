import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait-for.js';
import { startRedis } from './helpers/brokers.js';
import { printRow, readRedis, tally, upstreamIds, type Tally } from './helpers/count.js';
import { COMMIT_INTERVAL_MS, crashLossBound } from './helpers/crash-bound.js';
import { newFlow, startSidecarProcess, writeSidecarConfig, type SidecarProcess } from './helpers/sidecar.js';
import { Traffic } from './helpers/traffic.js';
import { faultSuite } from './helpers/suite.js';

const suite = faultSuite('crash');
const { defer } = suite;

/** A sidecar config on `redisUrl` with its own flow, data dir and key prefix; the same file serves the restart. */
async function crashSetup(redisUrl: string): Promise<{ config: string; prefix: string; busPrefix: string; start(): Promise<SidecarProcess> }> {
  const prefix = `c${randomUUID().slice(0, 8)}`;
  const busPrefix = `${prefix}:`;
  const config = await writeSidecarConfig(path.join(suite.dir, `${prefix}.yaml`), {
    bus: `{ kind: redis, url: "${redisUrl}", prefix: "${busPrefix}" }`,
    upstream: suite.upstream.url,
    dataDir: path.join(suite.dir, prefix),
    flow: newFlow(),
    extra: ['publisher: { backoff: 100ms, maxBackoff: 1s }'],
  });
  return {
    config,
    prefix,
    busPrefix,
    async start() {
      const sidecar = await startSidecarProcess(config);
      defer(() => sidecar.kill());
      return sidecar;
    },
  };
}

/** Polls the bus until at most `allowed` of the expected events are missing, or the time is up. */
async function waitForEvents(read: () => Promise<Parameters<typeof tally>[1]>, expected: string[], prefix: string, allowed = 0, timeoutMs = 15_000): Promise<Tally> {
  let t: Tally = { lost: -1, duplicated: 0, missing: [] };
  await waitFor(
    async () => {
      t = tally(expected, await read(), prefix);
      return t.lost <= allowed;
    },
    { timeoutMs, intervalMs: 500, what: 'every event on the bus' },
  ).catch(() => undefined);
  return t;
}

describe('sidecar SIGKILLed, then restarted on the same data suite.dir', () => {
  it('with the bus paused and events in flight: loses at most the events of the last 100 ms', async () => {
    const redis = await startRedis();
    defer(() => redis.close());
    const s = await crashSetup(redis.url);
    const sidecar = await s.start();
    const traffic = new Traffic(sidecar.url, { prefix: s.prefix, max: 1_000 }).start();
    defer(() => traffic.stop());
    await waitFor(() => traffic.done >= 50, { timeoutMs: 30_000, what: 'calls before the fault' });

    redis.pause();
    defer(async () => redis.resume());
    // Long enough for events to pile up behind the paused bus, shorter than publisher.publishTimeout: they
    // are in the sidecar's hands, not yet given up on.
    await sleep(1_000);
    traffic.pause();
    const killAt = Date.now();
    await sidecar.kill();
    const results = await traffic.stop();
    redis.resume();

    const restarted = await s.start();
    const acknowledged = results.filter((r) => r.status === 200 && r.doneAt <= killAt).map((r) => r.id);
    const bound = crashLossBound(results, killAt);
    const t = await waitForEvents(() => readRedis(redis.url, s.busPrefix), acknowledged, s.prefix, bound);
    const failedBeforeKill = results.filter((r) => r.status !== 200 && r.doneAt < killAt).length;
    printRow(`sidecar SIGKILL, bus paused (bound ${bound} = ${COMMIT_INTERVAL_MS} ms)`, {
      calls: upstreamIds(suite.upstream.seen, s.prefix).length,
      failed: failedBeforeKill,
      lost: t.lost,
      duplicated: t.duplicated,
    });
    expect(failedBeforeKill).toBe(0);
    expect(t.lost, `lost ${t.lost} of ${acknowledged.length * 2} events (e.g. ${t.missing.join(', ')}); restarted sidecar stderr: ${restarted.output().stderr.slice(-1000)}`).toBeLessThanOrEqual(bound);
  });

  it('with the bus down throughout: everything spooled before the kill arrives after the restart', async () => {
    const redis = await startRedis();
    defer(() => redis.close());
    await redis.kill();
    const s = await crashSetup(redis.url);
    const sidecar = await s.start();
    const traffic = new Traffic(sidecar.url, { prefix: s.prefix, max: 150 }).start();
    defer(() => traffic.stop());
    await waitFor(() => traffic.done >= 150, { timeoutMs: 30_000, what: 'all calls answered' });
    const results = await traffic.stop();
    const answered = results.filter((r) => r.status === 200).map((r) => r.id);
    // The sidecar's own count is only the trigger; what arrives is counted on the bus.
    await waitFor(async () => (await sidecar.metric('cutover_sidecar_events_spooled_total')) >= 2 * answered.length, {
      timeoutMs: 30_000,
      what: `${2 * answered.length} events spooled`,
    });
    await sidecar.kill();

    await redis.restart();
    const restarted = await s.start();
    const t = await waitForEvents(() => readRedis(redis.url, s.busPrefix), answered, s.prefix);
    printRow('sidecar SIGKILL, bus down throughout', { calls: upstreamIds(suite.upstream.seen, s.prefix).length, failed: results.length - answered.length, lost: t.lost, duplicated: t.duplicated });
    expect(answered).toHaveLength(150);
    expect(t.missing, `restarted sidecar stderr: ${restarted.output().stderr.slice(-1000)}`).toEqual([]);
    expect(t.lost).toBe(0);
  });
});
