/**
 * Saga throughput benchmark: `npm run bench:saga` (`npx tsx bench/saga.ts`).
 *
 * Sagas per second of the shop's four-step order saga (reserve, fraud, pay, ship) on each bus, with the
 * participants in process (SDK `serveSagaStep`) and one orchestrator replica, `BENCH_CONCURRENCY` sagas in
 * flight. Baseline, measured in the same run on the same bus: chains of four raw request/reply round trips
 * (publish a command with `replyto`, an AgentBus handler replies, the requester matches the reply by
 * correlation id), at the same concurrency: the bus work a saga cannot avoid. The ratio says what the
 * saga's event sourcing (three saga-topic events per step, every one read back by the projection) costs.
 *
 * Env: BENCH_SAGAS (default 200), BENCH_CONCURRENCY (default 20), BENCH_ONLY (embedded|redis|kafka),
 * REDIS_URL (default redis://127.0.0.1:6379), KAFKA_BROKERS (default 127.0.0.1:19092).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBus, type BusConfigInput } from '../src/bus/index.js';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import type { Bus, Delivery } from '../src/bus/types.js';
import { defineSaga } from '../src/saga/model.js';
import { SagaOrchestrator } from '../src/saga/orchestrator.js';
import { AgentBus } from '../src/sdk/agent-bus.js';
import { serveSagaStep } from '../src/sdk/saga-step.js';

const SAGAS = Number(process.env.BENCH_SAGAS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const STEPS = ['reserve', 'fraud', 'pay', 'ship'];

interface Row {
  bus: string;
  baselinePerSec: number;
  baselineP50: number;
  sagasPerSec: number;
  sagaP50: number;
  completed: number;
}

/** Runs `total` jobs, `concurrency` at a time; returns the wall time and each job's latency. */
async function pool(total: number, concurrency: number, job: (i: number) => Promise<void>): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        await job(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, latencies };
}

function p50(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** Raw request/reply on the bus: commands answered by AgentBus handlers, replies matched by correlation id. */
async function baseline(bus: Bus, agents: AgentBus, tag: string): Promise<{ seconds: number; latencies: number[] }> {
  const topics = STEPS.map((s) => `commands.agent.base-${tag}.${s}`);
  for (const topic of topics) await agents.subscribe(topic, (ctx) => ctx.reply({ ok: true }), { group: `base.${topic}` });
  const replyTopic = `cutover.replies.base-${tag}`;
  const waiting = new Map<string, () => void>();
  const sub = await bus.subscribe({
    group: replyTopic,
    topics: [replyTopic],
    concurrency: 64,
    handler: async (d: Delivery) => {
      const id = d.event.correlationid;
      if (id) waiting.get(id)?.();
    },
  });
  const roundTrip = (topic: string): Promise<void> => {
    const id = randomUUID();
    const replied = new Promise<void>((resolve) => waiting.set(id, resolve));
    return agents.publish(topic, {}, { id, correlationId: id, replyTo: replyTopic, key: id }).then(() => replied.finally(() => waiting.delete(id)));
  };
  // Warm-up: topics created, groups joined.
  for (const topic of topics) await roundTrip(topic);
  const result = await pool(SAGAS, CONCURRENCY, async () => {
    for (const topic of topics) await roundTrip(topic);
  });
  await sub.close();
  return result;
}

async function sagas(bus: Bus, agents: AgentBus, tag: string): Promise<{ seconds: number; latencies: number[]; completed: number }> {
  const cmd = (step: string): string => `commands.agent.saga-${tag}.${step}`;
  const def = defineSaga({
    name: 'order',
    topic: `cutover.saga.order-${tag}`,
    group: `cutover.saga.order-${tag}`,
    steps: STEPS.map((name) => ({ name, command: cmd(name), ...(name === 'ship' ? {} : { compensation: cmd(`undo-${name}`) }), timeout: '30s' })),
    pointOfNoReturn: 'pay',
  });
  for (const step of def.steps) {
    await serveSagaStep(agents, { command: step.command, run: () => ({ body: { ok: true } }), ...(step.compensation ? { compensation: { topic: step.compensation, run: () => ({ body: { undone: true } }) } } : {}) });
  }
  const orchestrator = new SagaOrchestrator({ bus, sagas: [def], concurrency: 64 });
  await orchestrator.start();
  const run = async (): Promise<string> => {
    const id = await orchestrator.begin('order', { order: randomUUID() });
    return (await orchestrator.outcome('order', id, 120_000)).status;
  };
  await run(); // warm-up
  let completed = 0;
  const result = await pool(SAGAS, CONCURRENCY, async () => {
    if ((await run()) === 'completed') completed++;
  });
  await orchestrator.close();
  return { ...result, completed };
}

async function benchBus(kind: 'embedded' | 'redis' | 'kafka'): Promise<Row> {
  const tag = randomUUID().slice(0, 8);
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-bench-saga-'));
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
  const prefix = `cutover-bench-saga-${tag}:`;
  const config: BusConfigInput =
    kind === 'embedded'
      ? { kind, path: path.join(dir, 'bus.db'), pollInterval: '5ms' }
      : kind === 'redis'
        ? { kind, url: redisUrl, prefix, blockTime: '100ms' }
        : { kind, brokers, partitions: 3, topicRefreshInterval: '1s' };
  const bus = await createBus(config);
  await bus.start();
  const agents = await AgentBus.connect(config, { agent: 'bench', dataDir: dir });
  try {
    const base = await baseline(bus, agents, tag);
    const saga = await sagas(bus, agents, tag);
    return {
      bus: kind,
      baselinePerSec: SAGAS / base.seconds,
      baselineP50: p50(base.latencies),
      sagasPerSec: SAGAS / saga.seconds,
      sagaP50: p50(saga.latencies),
      completed: saga.completed,
    };
  } finally {
    await agents.close();
    await bus.close();
    if (kind === 'redis') await deleteRedisPrefix(redisUrl, prefix).catch(() => undefined);
    if (kind === 'kafka') await deleteKafkaTopics(brokers, (t) => t.includes(tag)).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

const only = process.env.BENCH_ONLY;
const kinds = (['embedded', 'redis', 'kafka'] as const).filter((k) => !only || k === only);
const rows: Row[] = [];
for (const kind of kinds) {
  process.stderr.write(`bench:saga ${kind}: ${SAGAS} sagas of 4 steps, ${CONCURRENCY} in flight...\n`);
  rows.push(await benchBus(kind));
}
const fmt = (n: number, d = 1): string => n.toFixed(d);
process.stdout.write(`\nsagas of 4 steps vs chains of 4 raw request/reply round trips, same bus, same run (${SAGAS} each, ${CONCURRENCY} in flight)\n`);
process.stdout.write(`${'bus'.padEnd(10)}${'baseline/s'.padStart(12)}${'p50 ms'.padStart(9)}${'sagas/s'.padStart(10)}${'p50 ms'.padStart(9)}${'saga/baseline'.padStart(15)}${'completed'.padStart(11)}\n`);
for (const r of rows) {
  process.stdout.write(
    `${r.bus.padEnd(10)}${fmt(r.baselinePerSec).padStart(12)}${fmt(r.baselineP50).padStart(9)}${fmt(r.sagasPerSec).padStart(10)}${fmt(r.sagaP50).padStart(9)}${fmt(r.sagasPerSec / r.baselinePerSec, 2).padStart(15)}${`${r.completed}/${SAGAS}`.padStart(11)}\n`,
  );
}
process.exit(0);
