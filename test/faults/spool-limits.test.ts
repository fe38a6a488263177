import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait-for.js';
import { startRedis } from './helpers/brokers.js';
import { printRow, readRedis, tally, upstreamIds } from './helpers/count.js';
import { canMount, mountTmpfs } from './helpers/disk.js';
import { newFlow, startSidecarProcess, writeSidecarConfig, type SidecarProcess } from './helpers/sidecar.js';
import { Traffic, type CallResult } from './helpers/traffic.js';
import { faultSuite } from './helpers/suite.js';

const ci = Boolean(process.env.CI) && process.env.CI !== 'false';

const suite = faultSuite('spool');
const { defer } = suite;

/** Asks /healthz every 100 ms until stopped; counts answers that were not a 200 within 5 s. */
function probeHealth(sidecar: SidecarProcess): { stop(): Promise<{ probes: number; bad: number }> } {
  let probes = 0;
  let bad = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      probes++;
      const ok = await fetch(`${sidecar.adminUrl}/healthz`, { signal: AbortSignal.timeout(5_000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (!ok) bad++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { probes, bad };
    },
  };
}

const dropped = (s: SidecarProcess): Promise<number> => s.metric('cutover_sidecar_events_dropped_total');

/** A sidecar whose Redis is down from the start, its spool as `spool` configures it; /healthz probed throughout. */
async function sidecarWithBusDown(prefix: string, spool: string) {
  const redis = await startRedis();
  defer(() => redis.close());
  await redis.kill();
  const config = await writeSidecarConfig(path.join(suite.dir, `${prefix}.yaml`), {
    bus: `{ kind: redis, url: "${redis.url}", prefix: "${prefix}:" }`,
    upstream: suite.upstream.url,
    dataDir: path.join(suite.dir, prefix),
    flow: newFlow(),
    extra: [`spool: ${spool}`, 'publisher: { backoff: 100ms, maxBackoff: 1s }'],
  });
  const sidecar = await startSidecarProcess(config);
  defer(() => sidecar.kill());
  const health = probeHealth(sidecar);
  defer(() => health.stop());
  return { redis, sidecar, health };
}

/**
 * After the calls: drops show in /metrics; then, with space back (`recover`) and the bus restarted, every
 * event of an answered call is on the bus or counted as dropped, never neither, and /healthz answered all along.
 */
async function expectAccounted(label: string, o: Awaited<ReturnType<typeof sidecarWithBusDown>> & { prefix: string; results: CallResult[]; calls: number; recover: () => void }) {
  const { redis, sidecar, health, prefix, results } = o;
  await waitFor(async () => (await dropped(sidecar)) > 0, { timeoutMs: 15_000, what: 'drops in /metrics' }).catch(() => undefined);
  o.recover();
  await redis.restart();
  const answered = results.filter((r) => r.status === 200).map((r) => r.id);
  let unaccounted = -1;
  let duplicated = 0;
  await waitFor(
    async () => {
      const t = tally(answered, await readRedis(redis.url, `${prefix}:`), prefix);
      unaccounted = t.lost - (await dropped(sidecar));
      duplicated = t.duplicated;
      return unaccounted <= 0;
    },
    { timeoutMs: 20_000, intervalMs: 500, what: 'spooled events on the bus' },
  ).catch(() => undefined);
  // Probed through the recovery too: draining a spool that overflowed must not stall the admin API.
  const { probes, bad } = await health.stop();
  const droppedEvents = await dropped(sidecar).catch(() => NaN);
  printRow(`${label} (dropped ${droppedEvents})`, { calls: upstreamIds(suite.upstream.seen, prefix).length, failed: results.length - answered.length, lost: Math.max(unaccounted, 0), duplicated });

  expect(answered).toHaveLength(o.calls);
  expect(bad, `${bad} of ${probes} /healthz probes failed; sidecar stderr: ${sidecar.output().stderr.slice(-1500)}`).toBe(0);
  expect(droppedEvents, `sidecar stderr: ${sidecar.output().stderr.slice(-1000)}`).toBeGreaterThan(0);
  expect(unaccounted, `events neither on the bus nor counted as dropped; sidecar stderr: ${sidecar.output().stderr.slice(-1000)}`).toBeLessThanOrEqual(0);
}

describe.skipIf(!canMount() && !ci)('sidecar whose spool cannot take more (needs root to mount a tmpfs)', () => {
  it('spool on a full disk, bus down: direct calls and /healthz unaffected, drops counted, the spooled rest arrives once space and bus return', async () => {
    const prefix = `c${randomUUID().slice(0, 8)}`;
    const disk = mountTmpfs(path.join(suite.dir, `${prefix}-disk`), 'size=128k');
    defer(async () => disk.unmount());
    const run = await sidecarWithBusDown(prefix, `{ dir: ${path.join(disk.dir, 'spool')} }`);
    // About 1 KiB per event, two per call: 300 calls overflow 128 KiB several times over.
    const traffic = new Traffic(run.sidecar.url, { prefix, max: 300 }).start();
    defer(() => traffic.stop());
    await waitFor(() => traffic.done >= 300, { timeoutMs: 60_000, what: 'all calls answered' });
    await expectAccounted('spool disk full', { ...run, prefix, results: await traffic.stop(), calls: 300, recover: () => disk.remount('size=8m') });
  });

  it('spool turning read-only under a running sidecar, bus down: direct calls and /healthz unaffected, drops counted, the spooled rest arrives', async () => {
    const prefix = `c${randomUUID().slice(0, 8)}`;
    const disk = mountTmpfs(path.join(suite.dir, `${prefix}-disk`), 'size=4m');
    defer(async () => disk.unmount());
    const spoolDir = path.join(disk.dir, 'spool');
    // Small segments: the spool soon needs a new file, which a read-only directory refuses.
    const run = await sidecarWithBusDown(prefix, `{ dir: ${spoolDir}, segmentBytes: 4KiB }`);
    const traffic = new Traffic(run.sidecar.url, { prefix, max: 250 }).start();
    defer(() => traffic.stop());
    await waitFor(() => traffic.done >= 50, { timeoutMs: 30_000, what: 'calls before the spool turns read-only' });
    // A read-only filesystem over the spool directory: files the sidecar holds open stay writable (as on a
    // remount that the kernel lets through), every new segment or cursor file fails with EROFS.
    const readOnly = mountTmpfs(spoolDir, 'ro,size=16k');
    defer(async () => readOnly.unmount());
    await waitFor(() => traffic.done >= 250, { timeoutMs: 60_000, what: 'all calls answered' });
    await expectAccounted('spool read-only', { ...run, prefix, results: await traffic.stop(), calls: 250, recover: () => readOnly.unmount() });
  });
});
