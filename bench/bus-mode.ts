/**
 * Bus-mode latency benchmark: `npm run bench:bus-mode` (`npx tsx bench/bus-mode.ts`).
 *
 * Added latency of bus mode over direct at a fixed open-loop rate (default 500 req/s), on Redis and Kafka.
 * Per bus, in one run: the caller-side sidecar with its flow in `direct` mode (the baseline) and in `bus`
 * mode, in front of the same inventory agent; in bus mode the call travels caller sidecar → bus → callee
 * sidecar (`deliver:`) → agent → reply → caller sidecar. Latency counts from each request's scheduled send
 * time (open loop: a stall is not hidden), p50 and p99; the ratios and the added milliseconds are against
 * the direct-mode row of the same bus.
 *
 * Processes: the agent and the callee sidecar in one child, the caller sidecar in another, the load
 * generator here. On a small shared machine the absolute numbers are low; read the ratios.
 *
 * Env: BENCH_RATE (default 500), BENCH_SECONDS (default 10), BENCH_ONLY (redis|kafka), REDIS_URL (default
 * redis://127.0.0.1:6379), KAFKA_BROKERS (default 127.0.0.1:19092).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import { openLoop, post, type RateResult } from './lib/load.js';

const SELF = fileURLToPath(import.meta.url);
const ROLE = process.argv[2];

interface Ready {
  type: 'ready';
  port: number;
  stats?: unknown;
}

/** Child: the inventory agent and the callee sidecar that serves the flow's commands from the bus. */
async function runCallee(configJson: string): Promise<void> {
  const { start } = await import('../examples/agents/inventory.js');
  const { startSidecar } = await import('../proxy/sidecar.js');
  const agent = await start();
  const config = JSON.parse(configJson) as Record<string, unknown>;
  const sc = await startSidecar({ ...config, upstream: agent.url } as never);
  process.send!({ type: 'ready', port: agent.port } satisfies Ready);
  process.on('message', async (m: { type: string }) => {
    if (m.type === 'stop') {
      await sc.close();
      await agent.close();
      process.exit(0);
    }
  });
}

/** Child: the caller-side sidecar. */
async function runCaller(configJson: string): Promise<void> {
  const { startSidecar } = await import('../proxy/sidecar.js');
  const sc = await startSidecar(JSON.parse(configJson) as never);
  await new Promise<void>((resolve, reject) => {
    const until = Date.now() + 30_000;
    const check = (): void => {
      if (sc.replies.ready) resolve();
      else if (Date.now() > until) reject(new Error('reply channel not consuming after 30 s'));
      else setTimeout(check, 50);
    };
    check();
  });
  process.send!({ type: 'ready', port: sc.data.port } satisfies Ready);
  process.on('message', async (m: { type: string }) => {
    if (m.type === 'stop') {
      const counters = sc.flows.entries[0]!.counters;
      process.send!({ type: 'ready', port: 0, stats: counters } satisfies Ready);
      await sc.close();
      process.exit(0);
    }
  });
}

interface Child {
  proc: ChildProcess;
  port: number;
  stop(): Promise<unknown>;
}

async function spawn(role: string, config: unknown): Promise<Child> {
  const proc = fork(SELF, [role, JSON.stringify(config)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('message', (m: Ready) => resolve(m.port));
    proc.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
  });
  return {
    proc,
    port,
    stop: () =>
      new Promise((resolve) => {
        let stats: unknown;
        proc.on('message', (m: Ready) => (stats = m.stats));
        proc.once('exit', () => resolve(stats));
        proc.send({ type: 'stop' });
      }),
  };
}

function reserve(agent: http.Agent, port: number, i: number): Promise<number> {
  return post(port, agent, '/reservations', JSON.stringify({ sku: i % 2 ? 'SKU-RED-MUG' : 'SKU-BLUE-MUG', qty: 1, customerId: `cust-${i % 1000}` }));
}

/** Open loop at `rate` req/s after a 2 s warm-up (sockets, JIT, consumer fetch loops). */
function fixedRate(port: number, rate: number, seconds: number): Promise<RateResult> {
  return openLoop({ rate, seconds, warmUp: rate * 2, send: (agent, i) => reserve(agent, port, i) });
}

async function main(): Promise<void> {
  const rate = Number(process.env.BENCH_RATE ?? 500);
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const only = process.env.BENCH_ONLY;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
  const out = (line: string): void => void process.stdout.write(line + '\n');
  const rows: Array<{ bus: string; mode: string; p50: number; p99: number; errors: number; sent: number }> = [];
  for (const kind of ['redis', 'kafka'] as const) {
    if (only && only !== kind) continue;
    const id = randomUUID().replace(/-/g, '').slice(0, 8);
    const agentName = `benchinv${id}`;
    const prefix = `cutover-bench-busmode-${id}:`;
    const bus = kind === 'redis' ? { kind, url: redisUrl, prefix, blockTime: '1s' } : { kind, brokers, partitions: 3 };
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-bench-busmode-'));
    const flow = (mode: string) => ({ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: `commands.agent.inventory.reserve-${id}`, key: 'body.customerId', mode, timeout: '5s' });
    const base = { agent: agentName, listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', auth: false }, bus, log: { level: 'warn' } };
    const callee = await spawn('callee', { ...base, dataDir: path.join(dir, 'callee'), flows: [flow('direct')], deliver: { flows: ['inventory.reserve'], concurrency: 64 } });
    try {
      for (const mode of ['direct', 'bus']) {
        const caller = await spawn('caller', { ...base, upstream: `http://127.0.0.1:${callee.port}`, dataDir: path.join(dir, `caller-${mode}`), flows: [flow(mode)] });
        const r = await fixedRate(caller.port, rate, seconds);
        const stats = await caller.stop();
        rows.push({ bus: kind, mode, ...r });
        out(`${kind} ${mode}: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.errors} errors of ${r.sent}; counters ${JSON.stringify(stats)}`);
      }
    } finally {
      await callee.stop();
      await rm(dir, { recursive: true, force: true });
      if (kind === 'redis') await deleteRedisPrefix(redisUrl, prefix).catch(() => undefined);
      else await deleteKafkaTopics(brokers, (t) => t.includes(id)).catch(() => undefined);
    }
  }
  out('');
  out(`bus mode vs direct mode, POST /reservations at ${rate} req/s for ${seconds} s (open loop)`);
  out('| bus | mode | p50 ms | p99 ms | errors | p50 ratio | p99 ratio | added p50 ms | added p99 ms |');
  out('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const d = rows.find((x) => x.bus === r.bus && x.mode === 'direct')!;
    out(`| ${r.bus} | ${r.mode} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors}/${r.sent} | ${(r.p50 / d.p50).toFixed(2)} | ${(r.p99 / d.p99).toFixed(2)} | ${(r.p50 - d.p50).toFixed(2)} | ${(r.p99 - d.p99).toFixed(2)} |`);
  }
}

switch (ROLE) {
  case 'callee':
    await runCallee(process.argv[3]!);
    break;
  case 'caller':
    await runCaller(process.argv[3]!);
    break;
  default:
    await main();
}
