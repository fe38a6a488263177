import { expect } from 'vitest';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bus } from '../../../src/bus/index.js';
import { PARITY_EVENT_TYPE } from '../../../src/parity/types.js';
import { waitFor } from '../../helpers/wait-for.js';
import type { BusReader } from '../../faults/helpers/bus-fault.js';
import { tally, upstreamIds, type SeenEvent } from '../../faults/helpers/count.js';
import { newFlow, startSidecarProcess, writeSidecarConfig, type FlowUnderTest } from '../../faults/helpers/sidecar.js';
import { Traffic, type CallResult, type CountingUpstream } from '../../faults/helpers/traffic.js';

/**
 * Traffic through a sidecar while a cluster loses a node, counted with tools independent of the product:
 * the caller's own results, the upstream's log of calls received, and the topics or streams read straight
 * from the broker.
 */
export interface FailoverOptions {
  scenario: string;
  /** shadow: calls go direct and are dual-written. bus: calls go over the bus (fallback: direct), served by the sidecar's own deliver side. */
  mode: 'shadow' | 'bus';
  /** YAML of the sidecar's `bus:`. */
  busYaml: string;
  reader(flow: FlowUnderTest): BusReader;
  /** Breaks the cluster mid-traffic and heals it again; resolves once the cluster is whole. */
  fault(flow: FlowUnderTest): Promise<void>;
  upstream: CountingUpstream;
  dir: string;
  defer(fn: () => Promise<unknown>): void;
  /** How long the bus may take, once the fault is over, to hold every event. */
  recoveryMs?: number;
}

export interface FailoverRow {
  scenario: string;
  calls: number;
  /** Calls whose caller did not get a 200. */
  failed: number;
  /** Bus mode: calls answered 200 whose command never reached the bus (served directly by the fallback). */
  fallback: number | '-';
  /** Shadow: (call event, observation) pairs of answered calls missing from the bus. Bus: commands on the bus never executed. */
  lost: number;
  /** Shadow: events on the bus more than once. Bus: executions at the upstream beyond the first. */
  duplicated: number;
  /**
   * Milliseconds the bus path was impaired. Shadow: the longest an answered call's event waited to reach the
   * bus. Bus: the longest stretch of calls that failed, fell back or took over a second.
   */
  recoveryMs: number;
  /** Shadow mode: the comparator's parity records of the run's calls, by outcome. */
  parity?: ParityCounts;
}

export interface FailoverResult extends FailoverRow {
  /** Calls answered 200. */
  answered: number;
  missing: string[];
  stderr: string;
}

/** The calls after the fault: enough to show the bus path works again. */
const CALLS_AFTER = 50;

export async function runFailover(o: FailoverOptions): Promise<FailoverResult> {
  const flow = newFlow();
  const prefix = `c${randomUUID().slice(0, 8)}`;
  const bus = o.mode === 'bus';
  const config = await writeSidecarConfig(path.join(o.dir, `${prefix}.yaml`), {
    bus: o.busYaml,
    upstream: o.upstream.url,
    dataDir: path.join(o.dir, prefix),
    flow,
    mode: o.mode,
    // Bus mode: the sidecar's own deliver side serves the commands. Shadow mode: its in-process shadow side
    // replays each call against the same agent and the comparator publishes a parity record per call.
    flowExtra: bus ? ['timeout: 5s', 'fallback: direct'] : [`shadow: { target: "${o.upstream.url}" }`],
    // Short backoff: the test waits for the spool to drain after the fault, not for a 5 s retry.
    extra: ['publisher: { backoff: 100ms, maxBackoff: 1s }', bus ? `deliver: { flows: [${flow.name}], from: start }` : `shadow: { inProcess: true, window: ${PAIR_WINDOW} }`],
  });
  const sidecar = await startSidecarProcess(config);
  o.defer(() => sidecar.kill());
  const traffic = new Traffic(sidecar.url, { prefix, intervalMs: 25, max: 20_000, callTimeoutMs: 15_000 }).start();
  o.defer(() => traffic.stop());

  const ready = (what: string) => (err: Error) => {
    throw new Error(`${err.message} (${what}): ${traffic.describe()}; sidecar stderr: ${sidecar.output().stderr.slice(-1500)}`);
  };
  await waitFor(() => traffic.done >= CALLS_AFTER, { timeoutMs: 60_000, what: 'calls before the fault' }).catch(ready('before'));
  const faultAt = Date.now();
  await o.fault(flow);
  const mark = traffic.done;
  await waitFor(() => traffic.done >= mark + CALLS_AFTER, { timeoutMs: 60_000, what: 'calls after the fault' }).catch(ready('after'));
  const results = await traffic.stop();

  const reader = o.reader(flow);
  o.defer(() => reader.close());
  const count = bus ? (events: SeenEvent[]) => countBusMode(results, events, o.upstream, prefix, faultAt) : (events: SeenEvent[]) => countShadow(results, events, prefix, flow);
  let row = count([]);
  // The reader consumes as it goes: done once nothing is missing, every answered call has its parity record
  // (shadow mode; a pair left incomplete gets one after the window), and two reads in a row saw the same events.
  let seen = -1;
  await waitFor(
    async () => {
      const events = await reader.read();
      row = count(events);
      const settled = events.length > 0 && events.length === seen;
      seen = events.length;
      return row.lost === 0 && (row.parity === undefined || row.parity.records >= row.answered) && settled;
    },
    { timeoutMs: o.recoveryMs ?? 60_000, intervalMs: 1_000, what: 'every event on the bus' },
  ).catch(() => undefined);
  return { scenario: o.scenario, calls: upstreamIds(o.upstream.seen, prefix).length, ...row, stderr: sidecar.output().stderr };
}

type Counts = Omit<FailoverRow, 'scenario' | 'calls'> & { missing: string[]; answered: number };

/** How long the comparator waits for the other half of a pair before it records the pair as missing. */
const PAIR_WINDOW = '10s';

/** Parity records of `flow` on the bus, by outcome (one per correlation id: a redelivered record counts once). */
export function parityOf(events: SeenEvent[], flow: FlowUnderTest): ParityCounts {
  const byId = new Map<string, string>();
  for (const e of events) {
    const data = e.event.data as { flow?: string; correlationId?: string; outcome?: string } | undefined;
    if (e.event.type === PARITY_EVENT_TYPE && data?.flow === flow.name && data.correlationId && data.outcome) byId.set(data.correlationId, data.outcome);
  }
  const outcomes: Record<string, number> = {};
  for (const outcome of byId.values()) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  return { records: byId.size, outcomes };
}

export interface ParityCounts {
  records: number;
  outcomes: Record<string, number>;
}

function countShadow(results: CallResult[], events: SeenEvent[], prefix: string, flow: FlowUnderTest): Counts {
  const answered = results.filter((r) => r.status === 200);
  const t = tally(
    answered.map((r) => r.id),
    events,
    prefix,
  );
  const landed = new Map(events.filter((e) => e.kind === 'call' && e.at !== undefined).map((e) => [e.callId, e.at!]));
  let recoveryMs = 0;
  for (const r of answered) {
    const at = landed.get(r.id);
    if (at !== undefined) recoveryMs = Math.max(recoveryMs, at - r.doneAt);
  }
  return { failed: results.length - answered.length, fallback: '-', lost: t.lost, duplicated: t.duplicated, recoveryMs, missing: t.missing, answered: answered.length, parity: parityOf(events, flow) };
}

function countBusMode(results: CallResult[], events: SeenEvent[], upstream: CountingUpstream, prefix: string, faultAt: number): Counts {
  const commands = new Set(events.filter((e) => e.kind === 'call' && e.callId.startsWith(`${prefix}-`)).map((e) => e.callId));
  const answered = results.filter((r) => r.status === 200);
  const fallbackIds = new Set(answered.filter((r) => !commands.has(r.id)).map((r) => r.id));
  // A command the bus accepted must reach the agent, whatever its caller got; an answered call must have run.
  const missing = [...new Set([...commands, ...answered.map((r) => r.id)])].filter((id) => !upstream.seen.has(id));
  let duplicated = 0;
  for (const id of upstreamIds(upstream.seen, prefix)) duplicated += upstream.seen.get(id)! - 1;
  // The longest stretch of calls that failed, fell back or took over a second (overlapping, or less than a
  // second apart): a rolling restart impairs the bus path once per broker, not for its whole length.
  const impaired = results.filter((r) => r.doneAt > faultAt && (r.status !== 200 || fallbackIds.has(r.id) || r.doneAt - r.startedAt > 1_000)).sort((a, b) => a.startedAt - b.startedAt);
  let recoveryMs = 0;
  let stretch: { from: number; to: number } | undefined;
  for (const r of impaired) {
    if (stretch && r.startedAt <= stretch.to + 1_000) stretch.to = Math.max(stretch.to, r.doneAt);
    else stretch = { from: r.startedAt, to: r.doneAt };
    recoveryMs = Math.max(recoveryMs, stretch.to - stretch.from);
  }
  return { failed: results.length - answered.length, fallback: fallbackIds.size, lost: missing.length, duplicated, recoveryMs, missing: missing.slice(0, 10), answered: answered.length };
}

export interface PublishRun {
  /** Ids (in `data.body.id`) of the publishes the bus acknowledged. */
  acked: string[];
  failed: number;
  /** The longest time without an acknowledged publish: how long writes were impossible. */
  longestGapMs: number;
}

/**
 * Publishes straight through the adapter, one event at a time on 8 concurrent loops, while `fault` runs
 * (after a second of traffic), and until one more publish is acknowledged after it: what the adapter
 * acknowledged must be on the bus afterwards.
 */
export async function publishThrough(bus: Bus, topic: string, prefix: string, fault: () => Promise<void>): Promise<PublishRun> {
  const acked: string[] = [];
  const ackTimes: number[] = [];
  let failed = 0;
  let n = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const id = `${prefix}-${n++}`;
      try {
        await bus.publish(topic, [{ key: id, event: { specversion: '1.0', id: randomUUID(), source: '/agents/cluster-test', type: 'cluster.test', data: { body: { id } } } }]);
        acked.push(id);
        ackTimes.push(Date.now());
        // Paced (a few thousand a second in all): enough to keep writes in flight at the fault, not a flood.
        await sleep(1);
      } catch {
        failed++;
        await sleep(20);
      }
    }
  };
  const workers = Array.from({ length: 8 }, () => worker());
  await sleep(1_000);
  await fault();
  const mark = acked.length;
  await waitFor(() => acked.length > mark, { timeoutMs: 30_000, what: 'a publish acknowledged after the fault' });
  stop = true;
  await Promise.all(workers);
  let longestGapMs = 0;
  for (let i = 1; i < ackTimes.length; i++) longestGapMs = Math.max(longestGapMs, ackTimes[i]! - ackTimes[i - 1]!);
  return { acked, failed, longestGapMs };
}

/**
 * Shadow mode: the comparator decided every answered call, and the failover made no pair a mismatch (a pair
 * whose bus half arrived late or twice is still a match; one that never completed is missing, not a mismatch).
 */
export function expectParityUnharmed(r: FailoverResult): void {
  if (!r.parity) return;
  expect(r.parity.records, `parity records ${JSON.stringify(r.parity.outcomes)}`).toBeGreaterThanOrEqual(r.answered);
  expect(r.parity.outcomes.mismatch ?? 0).toBe(0);
}

/** Collects each file's rows and prints them as one table on stderr (so it shows in CI logs whatever the reporter). */
export class FailoverTable {
  private readonly rows: FailoverRow[] = [];

  add(row: FailoverRow): void {
    this.rows.push(row);
    process.stderr.write(`\nCLUSTER ${line(row)}\n`);
  }

  print(title: string): void {
    if (this.rows.length === 0) return;
    const header = 'scenario | calls | failed | fallback | lost | duplicated | recovery time | parity records';
    process.stderr.write(`\n${title}\n${header}\n${header.replace(/[^|]/g, '-')}\n${this.rows.map(line).join('\n')}\n`);
  }
}

function line(r: FailoverRow): string {
  const parity = r.parity ? Object.entries(r.parity.outcomes).map(([k, v]) => `${k} ${v}`).join(', ') : '-';
  return `${r.scenario} | ${r.calls} | ${r.failed} | ${r.fallback} | ${r.lost} | ${r.duplicated} | ${(r.recoveryMs / 1000).toFixed(1)} s | ${parity}`;
}
