/**
 * Comparator throughput: `npm run bench:comparator` (no broker needed: the comparator's work is CPU).
 *
 * Input: observation pairs as they arrive from the bus, structured-mode CloudEvent JSON text with ~1 KB
 * JSON bodies (a direct observation and a bus reply per call; 2% of replies differ). Each run goes through
 * every observation in arrival order (the bus reply of call i arrives after the direct observation of call
 * i + LAG, so ~LAG pairs are open at any time). Measured in the same process:
 *   baseline    JSON.parse of every observation, nothing else
 *   engine      decode as every bus adapter does (parseEvent: JSON.parse + the CloudEvent check) + read
 *               the observation + pair + diff (flow rules: ignore, tolerance, unordered by key) + build
 *               the parity record: PairingEngine
 *   comparator  the same through Comparator.handle with 256 deliveries in flight, each acknowledged once
 *               its parity record is published (to a bus whose publish resolves at once, so the bus
 *               itself is not measured)
 * and prints pairs/s with the ratio to the baseline and PASS/MISS against the goal (50,000 pairs/s for the
 * comparator row). Rates are given per second of process CPU time (process.cpuUsage: user + system, GC
 * threads included) and per second of wall time; the goal is judged on CPU time, since on a shared machine
 * wall time mostly measures the other processes. The load average is printed with the results.
 *
 * Env: BENCH_PAIRS (default 50000), BENCH_RUNS (3; the median is reported).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Bus, BusMessage, Delivery } from '../src/bus/types.js';
import { parseEvent } from '../src/events/cloudevent.js';
import type { CloudEvent } from '../src/events/types.js';
import { silentLogger } from '../src/logger.js';
import { Comparator } from '../shadow/comparator.js';
import { toObservation } from '../shadow/observations.js';
import { PairingEngine, type FlowRules } from '../shadow/pairing.js';

const PAIRS = Number(process.env.BENCH_PAIRS ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LAG = 200;
/** Deliveries in flight in the comparator run (the comparator's default subscription concurrency). */
const CONCURRENCY = 256;
const GOAL = 50_000;
const FLOW = 'inventory.reserve';

const RULES: Record<string, FlowRules> = {
  [FLOW]: {
    compare: {
      ignore: ['/body/reservedAt', '/body/lines/*/warehouse/updatedAt'],
      tolerance: { '/body/total': 0.01, '/body/lines/*/price': '0.5%' },
      unordered: [{ path: '/body/lines', key: 'sku' }],
    },
  },
};

function body(i: number, variant: boolean): Record<string, unknown> {
  const lines = Array.from({ length: 5 }, (_, j) => ({
    sku: `SKU-${(i + j) % 97}`,
    qty: 1 + (j % 3),
    price: 9.99 + j,
    warehouse: { id: `wh-${j}`, zone: 'eu-west-1a', updatedAt: new Date(1_700_000_000_000 + i).toISOString() },
  }));
  if (variant) lines[2]!.qty += 1;
  return {
    reservationId: `res_${i}`,
    customerId: `cust-${i % 1000}`,
    status: 'held',
    currency: 'EUR',
    total: lines.reduce((s, l) => s + l.qty * l.price, 0),
    reservedAt: new Date(1_700_000_000_000 + i).toISOString(),
    lines: variant ? lines : [...lines].reverse(),
    note: 'x'.repeat(120),
  };
}

function observation(type: string, id: string, data: Record<string, unknown>): string {
  const event: CloudEvent = {
    specversion: '1.0',
    id: randomUUID(),
    source: '/agents/inventory',
    type,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    correlationid: id,
    partitionkey: id,
    cutoverflow: FLOW,
    cutovermode: 'shadow',
    data,
  };
  return JSON.stringify(event);
}

/** Observations in arrival order, with their bus publish times. */
function workload(): Array<{ text: string; publishedAt: number }> {
  const directs: string[] = [];
  const buses: string[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const id = randomUUID();
    const differs = i % 50 === 0;
    directs.push(observation('cutover.observation.direct', id, { status: 201, headers: { 'content-type': 'application/json' }, body: body(i, false), latencyMs: 3.2 }));
    buses.push(
      observation('cutover.observation.bus', id, {
        status: 201,
        headers: { 'content-type': 'application/json' },
        body: body(i, differs),
        latencyMs: 2.9,
        eventPublishedAt: 1_700_000_000_000 + i,
        consumedAt: 1_700_000_000_004 + i,
        repliedAt: 1_700_000_000_009 + i,
        attempt: 1,
      }),
    );
  }
  const out: Array<{ text: string; publishedAt: number }> = [];
  for (let i = 0; i < PAIRS + LAG; i++) {
    if (i < PAIRS) out.push({ text: directs[i]!, publishedAt: 1_700_000_000_000 + i });
    if (i >= LAG) out.push({ text: buses[i - LAG]!, publishedAt: 1_700_000_000_010 + i });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Rate {
  /** pairs per second of process CPU time (median of the runs). */
  cpu: number;
  /** pairs per second of wall time (median of the runs). */
  wall: number;
}

async function measure(name: string, run: () => Promise<number> | number): Promise<Rate> {
  await run(); // warm-up: JIT and caches
  const cpuRates: number[] = [];
  const wallRates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const pairs = await run();
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    cpuRates.push(pairs / ((used.user + used.system) / 1e6));
    wallRates.push(pairs / (wallMs / 1000));
  }
  const rate = { cpu: median(cpuRates), wall: median(wallRates) };
  process.stderr.write(`  ${name}: ${Math.round(rate.cpu).toLocaleString('en-US')} pairs/CPU-s, ${Math.round(rate.wall).toLocaleString('en-US')} pairs/s wall (runs: ${cpuRates.map((x) => Math.round(x)).join(', ')} pairs/CPU-s)\n`);
  return rate;
}

/** A bus that accepts every publish at once, so only the comparator's own work is timed. */
function nullBus(): Bus {
  return {
    kind: 'embedded',
    start: async () => undefined,
    publish: async (_t: string, _m: readonly BusMessage[]) => undefined,
    subscribe: async (o) => ({ group: o.group, close: async () => undefined }),
    read: () => ({ async *[Symbol.asyncIterator]() {}, close: async () => undefined }),
    health: async () => ({ ok: true, kind: 'embedded' }),
    close: async () => undefined,
  };
}

async function main(): Promise<void> {
  const obs = workload();
  const bytes = Math.round(obs.reduce((s, o) => s + o.text.length, 0) / obs.length);
  process.stderr.write(`comparator bench: ${PAIRS.toLocaleString('en-US')} pairs, ${bytes} bytes per observation (JSON body ~${JSON.stringify(body(1, false)).length} bytes), ${RUNS} runs (median)\n`);

  const baseline = await measure('baseline   (JSON.parse only)', () => {
    let n = 0;
    for (const o of obs) n += (JSON.parse(o.text) as CloudEvent).id.length > 0 ? 1 : 0;
    return n / 2;
  });

  let lastStats: ReturnType<PairingEngine['stats']> | undefined;
  const engine = await measure('engine     (parse + pair + diff)', () => {
    const e = new PairingEngine({ window: 30_000, maxOpenPairs: 100_000, flows: RULES });
    let records = 0;
    const now = 1_700_000_100_000;
    for (const o of obs) {
      const ob = toObservation(parseEvent(o.text), o.publishedAt);
      if (ob) records += e.ingest(ob, now).length;
    }
    lastStats = e.stats();
    return records;
  });

  const comparator = await measure('comparator (handle, queue records)', async () => {
    const c = new Comparator({ bus: nullBus(), logger: silentLogger(), flows: RULES, window: 30_000, sweepInterval: 0 });
    // As a subscription drives it: up to CONCURRENCY deliveries in flight, each acknowledged once its
    // parity record is on the bus.
    for (let i = 0; i < obs.length; i += CONCURRENCY) {
      await Promise.all(
        obs.slice(i, i + CONCURRENCY).map((o) => {
          const d: Delivery = { topic: 'cutover.observations', key: null, event: parseEvent(o.text), headers: {}, position: '0', publishedAt: o.publishedAt, attempt: 1 };
          return c.handle(d);
        }),
      );
    }
    await c.close();
    const s = c.stats();
    return s.records.match + s.records.mismatch;
  });

  const n = (x: number): string => Math.round(x).toLocaleString('en-US').padStart(9);
  const line = (name: string, rate: Rate, judged = false): string =>
    `${name.padEnd(12)} ${n(rate.cpu)} pairs/CPU-s  ${(rate.cpu / baseline.cpu).toFixed(2)}x baseline   ${n(rate.wall)} pairs/s wall  ${(rate.wall / baseline.wall).toFixed(2)}x baseline` +
    (judged ? `   ${(rate.cpu / GOAL).toFixed(2)}x goal (${GOAL.toLocaleString('en-US')} pairs/CPU-s): ${rate.cpu >= GOAL ? 'PASS' : 'MISS'}` : '');
  process.stdout.write(
    [
      '',
      `comparator benchmark (${PAIRS.toLocaleString('en-US')} pairs, ~${bytes} B observations, 2% mismatching; node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`,
      line('baseline', baseline),
      line('engine', engine),
      line('comparator', comparator, true),
      `outcomes: ${JSON.stringify(lastStats?.records)}`,
      '',
    ].join('\n'),
  );
}

await main();
