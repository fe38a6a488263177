/**
 * Comparator cost as the number of flows grows: `npm run bench:many-flows`.
 *
 * For N = 1, 10 and 100 flows, the same number of observation pairs (a direct observation and a matching
 * bus reply per call) is spread evenly over the N flows and published to a real bus; then a comparator
 * with rules for all N flows (scope `flows`: one consumer group per flow) consumes them until every pair
 * has its parity record. Two layouts, each run in the same process on a fresh bus:
 *   per-flow  what sidecars publish now: flow F's observations on `<observationsTopic>.F`, each group
 *             subscribed to its flow's topic only;
 *   shared    the layout of sidecars that predate per-flow topics: every observation on the one topic
 *             `<observationsTopic>`, read by the comparator with `sharedTopic: true` (each group reads the
 *             whole topic and skips the other flows' observations).
 * Measured around the consume phase (from the moment every group has joined until the last pair is recorded
 * and every group has read what it will read; handlers are held until the comparator's start() resolved):
 * CPU time of this process (process.cpuUsage: the comparator, the bus client and, on the embedded bus,
 * SQLite) per observation, and deliveries handled per observation (counted by wrapping every
 * subscription's handler). Joining the N groups is a cost per flow, not per observation: it is printed
 * apart (`join CPU ms`). Ratios are against N = 1 of the same layout in the same run.
 *
 * Env: BENCH_BUS (embedded | redis | kafka; default embedded), BENCH_PAIRS (pairs per run, default 2000),
 * BENCH_FLOWS (default 1,10,100), BENCH_LAYOUTS (default per-flow,shared), REDIS_URL, KAFKA_BROKERS.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBus, type BusConfigInput } from '../src/bus/index.js';
import type { Bus, BusMessage, SubscribeOptions } from '../src/bus/types.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { ObservationTypes, observationsTopicOf } from '../src/events/wire.js';
import { Comparator } from '../shadow/comparator.js';
import type { FlowRules } from '../shadow/pairing.js';
import { buildObservationMessage } from '../proxy/call-event.js';

const BUS = process.env.BENCH_BUS ?? 'embedded';
const PAIRS = Number(process.env.BENCH_PAIRS ?? 2_000);
const FLOW_COUNTS = (process.env.BENCH_FLOWS ?? '1,10,100').split(',').map(Number);
const LAYOUTS = (process.env.BENCH_LAYOUTS ?? 'per-flow,shared').split(',') as Layout[];
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KAFKA = (process.env.KAFKA_BROKERS ?? '127.0.0.1:29092').split(',');
/** After the last pair is recorded, how long the delivery count must stand still before the run ends. */
const QUIET_MS = 1_000;
/** A run that has not finished by then is reported as it stands. */
const RUN_TIMEOUT_MS = 60_000;

type Layout = 'per-flow' | 'shared';

interface Row {
  layout: Layout;
  flows: number;
  observations: number;
  records: number;
  deliveries: number;
  foreign: number;
  cpuUs: number;
  joinUs: number;
  wallMs: number;
}

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const BODY = { reservationId: 'res_1', sku: 'SKU-RED-MUG', qty: 2, status: 'held', lines: [{ sku: 'SKU-RED-MUG', price: 12.5 }] };

/** The two sides of pair `i` of `flow`: the sidecar's direct observation and the shadow side's reply. */
function pair(flow: string, i: number): BusMessage[] {
  const correlationId = `${flow}-${i}-${randomUUID()}`;
  const data = { status: 200, headers: { 'content-type': 'application/json' }, body: { ...BODY, reservationId: `res_${i}` }, latencyMs: 1.5 };
  const direct = buildObservationMessage({ agent: 'inventory', flow: { name: flow, schemaVersion: '1', mode: 'shadow' }, correlationId, traceparent: TRACEPARENT, data });
  const bus: BusMessage = {
    key: correlationId,
    event: { ...direct.event, id: randomUUID(), source: '/agents/inventory-shadow', type: ObservationTypes.bus },
  };
  return [direct, bus];
}

/**
 * A bus whose subscriptions count every delivery their handler is given, and hold each delivery until
 * `gate` resolves: the groups join (and fetch their first messages) before the measured phase begins.
 */
function counting(bus: Bus, count: { deliveries: number }, gate: Promise<void>): Bus {
  return new Proxy(bus, {
    get(target, prop, receiver) {
      if (prop === 'subscribe') {
        return (options: SubscribeOptions) =>
          target.subscribe({
            ...options,
            handler: async (d) => {
              await gate;
              count.deliveries += 1;
              return options.handler(d);
            },
          });
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function run(layout: Layout, n: number, dir: string): Promise<Row> {
  const id = randomUUID().slice(0, 8);
  const base = `cutover.observations.bench${id}`;
  const parityTopic = `cutover.parity.bench${id}`;
  const prefix = `bench:${id}:`;
  const config: BusConfigInput =
    BUS === 'embedded' ? { kind: 'embedded', path: path.join(dir, `${id}.db`) }
      : BUS === 'redis' ? { kind: 'redis', url: REDIS_URL, prefix }
        : { kind: 'kafka', brokers: KAFKA };
  const raw = await createBus(config);
  await raw.start();
  const flows = Array.from({ length: n }, (_, i) => `bench.f${i}`);
  try {
    // Publish first, per topic in batches, so the measured phase is the comparator's alone.
    const byTopic = new Map<string, BusMessage[]>();
    for (let i = 0; i < PAIRS; i++) {
      const flow = flows[i % n]!;
      const topic = layout === 'per-flow' ? observationsTopicOf(flow, base) : base;
      const list = byTopic.get(topic) ?? [];
      list.push(...pair(flow, i));
      byTopic.set(topic, list);
    }
    for (const [topic, messages] of byTopic) {
      for (let i = 0; i < messages.length; i += 500) await raw.publish(topic, messages.slice(i, i + 500));
    }
    const observations = PAIRS * 2;

    const count = { deliveries: 0 };
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let records = 0;
    const rules: Record<string, FlowRules> = Object.fromEntries(flows.map((f) => [f, { compare: { ignore: ['/body/reservationId'] } }]));
    const comparator = new Comparator({
      bus: counting(raw, count, gate),
      flows: rules,
      scope: 'flows',
      observationsTopic: base,
      sharedTopic: layout === 'shared',
      parityTopic,
      group: `cutover.comparator.bench${id}`,
      window: 120_000,
      sweepInterval: 0,
      onRecord: () => void (records += 1),
    });
    const join0 = process.cpuUsage();
    await comparator.start();
    const joined = process.cpuUsage(join0);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    open();
    // Done once every pair is recorded and no group reads anything more (the shared layout's groups keep
    // reading other flows' observations after the last pair of their own).
    let last = -1;
    let quietSince = performance.now();
    let cpu = process.cpuUsage(cpu0);
    let end = performance.now();
    while (performance.now() - t0 < RUN_TIMEOUT_MS) {
      await new Promise((r) => setTimeout(r, 20));
      if (count.deliveries !== last) {
        last = count.deliveries;
        quietSince = performance.now();
        cpu = process.cpuUsage(cpu0);
        end = quietSince;
      } else if (records >= PAIRS && performance.now() - quietSince >= QUIET_MS) break;
    }
    await comparator.flush();
    const foreign = comparator.stats().foreign;
    await comparator.close();
    return { layout, flows: n, observations, records, deliveries: count.deliveries, foreign, cpuUs: cpu.user + cpu.system, joinUs: joined.user + joined.system, wallMs: end - t0 };
  } finally {
    await raw.close();
    if (BUS === 'redis') await deleteRedisPrefix(REDIS_URL, prefix);
    if (BUS === 'kafka') await deleteKafkaTopics(KAFKA, (t) => t.startsWith(base) || t.startsWith(parityTopic)).catch(() => undefined);
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-many-flows-'));
const rows: Row[] = [];
try {
  // Unreported warm-up of both layouts: otherwise the first run pays for compiling the hot paths.
  for (const layout of LAYOUTS) await run(layout, FLOW_COUNTS[0]!, dir);
  // Layouts alternate per N, so a change in the machine's load hits both alike.
  for (const n of FLOW_COUNTS) {
    for (const layout of LAYOUTS) {
      const row = await run(layout, n, dir);
      rows.push(row);
      process.stderr.write(`${layout} N=${n}: ${row.records}/${PAIRS} pairs recorded, ${(row.wallMs / 1000).toFixed(1)} s\n`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const pad = (s: string, w: number): string => s.padStart(w);
console.log(`\ncomparator cost per observation on the ${BUS} bus, ${PAIRS} pairs per run (CPU of this process during the consume phase)\n`);
console.log(['layout', 'N', 'observations', 'records', 'CPU µs/obs', 'deliveries/obs', 'foreign', 'join CPU ms', 'wall s', 'CPU ratio to N=1'].map((h, i) => (i === 0 ? h.padEnd(9) : pad(h, [0, 4, 13, 8, 11, 15, 8, 12, 7, 17][i]!))).join(' '));
for (const r of [...rows].sort((x, y) => LAYOUTS.indexOf(x.layout) - LAYOUTS.indexOf(y.layout))) {
  const first = rows.find((x) => x.layout === r.layout && x.flows === FLOW_COUNTS[0]);
  const perObs = r.cpuUs / r.observations;
  const ratio = first ? perObs / (first.cpuUs / first.observations) : NaN;
  console.log(
    [
      r.layout.padEnd(9),
      pad(String(r.flows), 4),
      pad(String(r.observations), 13),
      pad(String(r.records), 8),
      pad(perObs.toFixed(1), 11),
      pad((r.deliveries / r.observations).toFixed(2), 15),
      pad(String(r.foreign), 8),
      pad((r.joinUs / 1000).toFixed(0), 12),
      pad((r.wallMs / 1000).toFixed(1), 7),
      pad(`${ratio.toFixed(2)}x`, 17),
    ].join(' '),
  );
}
const incomplete = rows.filter((r) => r.records < PAIRS);
if (incomplete.length > 0) console.log(`\nincomplete runs (not every pair recorded within ${RUN_TIMEOUT_MS / 1000} s): ${incomplete.map((r) => `${r.layout} N=${r.flows}`).join(', ')}`);
