import { expect } from 'vitest';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../helpers/wait-for.js';
import type { OwnedBroker } from './brokers.js';
import { printRow, tally, upstreamIds, type Row, type SeenEvent, type Tally } from './count.js';
import { newFlow, startSidecarProcess, writeSidecarConfig, type FlowUnderTest } from './sidecar.js';
import { Traffic, type CountingUpstream } from './traffic.js';

/** Reads what the bus holds now, straight from the broker; `close` ends whatever the reader opened. */
export interface BusReader {
  read(): Promise<SeenEvent[]>;
  close(): Promise<void>;
}

export interface BusFaultOptions {
  scenario: string;
  broker: OwnedBroker;
  /** YAML of the sidecar's `bus:` pointing at `broker`. */
  busYaml: string;
  reader(flow: FlowUnderTest): BusReader;
  fault: 'kill' | 'pause';
  /** How long the fault is held. */
  holdMs: number;
  upstream: CountingUpstream;
  dir: string;
  /** Registers a cleanup where the resource is made; the caller runs them after the test. */
  defer(fn: () => Promise<unknown>): void;
  /** How long the bus may take to hold every event once it is back. */
  recoveryMs?: number;
}

export interface BusFaultResult extends Row {
  tally: Tally;
  stderr: string;
}

/**
 * Paced traffic through a sidecar in shadow mode; mid-traffic the broker is killed (then restarted) or
 * paused (then resumed); traffic goes on across the fault and after it. Counts direct calls that failed,
 * and (call event, observation) pairs of completed calls missing from the broker once it has had
 * `recoveryMs` to catch up.
 */
export async function runBusFault(o: BusFaultOptions): Promise<BusFaultResult> {
  const flow = newFlow();
  const prefix = `c${randomUUID().slice(0, 8)}`;
  const config = await writeSidecarConfig(path.join(o.dir, `${prefix}.yaml`), {
    bus: o.busYaml,
    upstream: o.upstream.url,
    dataDir: path.join(o.dir, prefix),
    flow,
    // Short backoff: the test waits for the spool to drain after the fault, not for a 5 s retry.
    extra: ['publisher: { backoff: 100ms, maxBackoff: 1s }'],
  });
  const sidecar = await startSidecarProcess(config);
  o.defer(() => sidecar.kill());
  const traffic = new Traffic(sidecar.url, { prefix, max: 2_000 }).start();
  o.defer(() => traffic.stop());

  await waitFor(() => traffic.done >= 50, { timeoutMs: 30_000, what: 'calls before the fault' });
  if (o.fault === 'kill') await o.broker.kill();
  else o.broker.pause();
  o.defer(async () => (o.fault === 'pause' ? o.broker.resume() : undefined));
  await sleep(o.holdMs);
  // A JVM takes many seconds to boot: calls during that time would only stretch the fault past its stated
  // length and the scenario past a few hundred calls.
  traffic.pause();
  if (o.fault === 'kill') await o.broker.restart();
  else o.broker.resume();
  traffic.resume();
  const mark = traffic.done;
  await waitFor(() => traffic.done >= mark + 50, { timeoutMs: 30_000, what: 'calls after the fault' }).catch((err: Error) => {
    throw new Error(`${err.message}: ${traffic.describe()}; sidecar stderr: ${sidecar.output().stderr.slice(-1500)}`);
  });
  const results = await traffic.stop();

  const completed = results.filter((r) => r.status === 200).map((r) => r.id);
  const reader = o.reader(flow);
  o.defer(() => reader.close());
  let t: Tally = { lost: -1, duplicated: 0, missing: [] };
  await waitFor(
    async () => {
      t = tally(completed, await reader.read(), prefix);
      return t.lost === 0;
    },
    { timeoutMs: o.recoveryMs ?? 30_000, intervalMs: 500, what: 'every event on the bus' },
  ).catch(() => undefined);
  const row = { calls: upstreamIds(o.upstream.seen, prefix).length, failed: traffic.failed().length, lost: t.lost, duplicated: t.duplicated };
  printRow(o.scenario, row);
  return { ...row, tally: t, stderr: sidecar.output().stderr };
}

/** The promise every bus fault is held to: no direct call failed, and every event arrived once the bus was back. */
export function expectNothingLost(r: BusFaultResult): void {
  expect(r.failed).toBe(0);
  expect(r.tally.missing, `missing events; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
  expect(r.lost).toBe(0);
}
