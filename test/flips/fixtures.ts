import { runCli } from '../../bin/main.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BusConfigInput } from '../../src/config/bus.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { busTargets as sharedBusTargets } from '../helpers/bus-targets.js';

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



/** The three adapters, each isolated per test (embedded: own file; Redis: own key prefix; Kafka: own flow names). */
export const busTargets = sharedBusTargets('flips');

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

/** Runs one `cutover` invocation in process and collects what it printed. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
