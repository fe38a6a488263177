/**
 * Sidecar benchmark: `npx tsx bench/proxy.ts` (or `npm run bench:proxy`).
 *
 * In one run, against the same agent: the agent called directly, a minimal Node forwarding proxy (the
 * baseline every ratio is against), the sidecar with its flow in direct mode, and in shadow mode on the
 * embedded, Redis and Kafka buses (with the default `spool.durability: interval`; to price the journal,
 * also embedded and Redis with `none` and Redis with `strict`). For each:
 * - max throughput: closed loop, fixed concurrency, fixed duration;
 * - latency at a fixed 1,000 req/s: open loop (requests are sent on schedule whether or not earlier ones
 *   returned; latency counts from the scheduled time, so a stall is not hidden), p50 and p99;
 * - CPU seconds of the proxy process per 1,000 requests during the fixed-rate phase (process.cpuUsage
 *   read over IPC from the child).
 * Two more rows are bounds rather than proxies. "kafkajs alone (floor)": a process that only hands kafkajs
 * the two records a shadow call costs (the call event and the direct observation, encoded as the sidecar
 * encodes them, same producer settings, linger and batch size) at 1,000 calls/s; forwarder CPU + this floor
 * is the least any Node sidecar built on kafkajs can spend per 1,000 shadowed calls. "forwarder + kafkajs
 * (bound)": the minimal forwarder with that process fed two records per completed request, in both phases.
 *
 * The load generator is written here (keep-alive agents, node:http) rather than autocannon: it is one
 * small file, needs no extra dependency, and gives the open-loop schedule the latency goal needs.
 * The agent, the proxy under test and the load generator each run in their own process; on a small
 * machine they share the cores, so absolute numbers are low and ratios are what to read.
 *
 * Env: BENCH_SECONDS (throughput phase, default 5), BENCH_RATE_SECONDS (default 5), BENCH_CONCURRENCY
 * (default 32), BENCH_ROUNDS (default 3), BENCH_ONLY (comma list of scenario name parts), REDIS_URL,
 * KAFKA_BROKERS, BENCH_LINGER (publisher.linger of the sidecars), BENCH_PROF (directory for CPU profiles).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import { openLoop, post, type RateResult } from './lib/load.js';

const SELF = fileURLToPath(import.meta.url);
const ROLE = process.argv[2];

// ---------------------------------------------------------------------------------------------------------
// Child roles
// ---------------------------------------------------------------------------------------------------------

interface ChildMessage {
  type: 'ready' | 'cpu' | 'stats' | 'floor';
  port?: number;
  cpuMicros?: number;
  stats?: unknown;
  /** kafka-floor: calls handed to kafkajs during the measured part. */
  sent?: number;
}

function reportCpu(): void {
  process.on('message', async (msg: { type: string }) => {
    if (msg.type === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ type: 'cpu', cpuMicros: u.user + u.system } satisfies ChildMessage);
    }
  });
}

async function runAgent(): Promise<void> {
  const { start } = await import('../examples/agents/inventory.js');
  const agent = await start({ port: 0, stock: { 'SKU-RED-MUG': 1e12, 'SKU-BLUE-MUG': 1e12 } });
  reportCpu();
  process.send!({ type: 'ready', port: agent.port } satisfies ChildMessage);
}

/** The baseline: what a competent hand-written Node forwarding proxy costs (keep-alive, streaming). */
async function runForwarder(upstreamPort: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const server = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode!, upRes.statusMessage, upRes.rawHeaders);
      upRes.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // Exit cleanly so that --cpu-prof writes its profile.
  process.on('SIGTERM', () => process.exit(0));
  reportCpu();
  process.send!({ type: 'ready', port: (server.address() as AddressInfo).port } satisfies ChildMessage);
}

async function runSidecarChild(configJson: string): Promise<void> {
  const { startSidecar } = await import('../proxy/sidecar.js');
  const { createLogger } = await import('../src/logger.js');
  const sc = await startSidecar(JSON.parse(configJson), { logger: createLogger({ level: 'warn' }) });
  reportCpu();
  process.on('message', async (msg: { type: string }) => {
    if (msg.type === 'stats') process.send!({ type: 'stats', stats: { ...sc.publisher.stats, queueDepth: sc.publisher.queueDepth, spoolDepth: sc.publisher.spoolDepth } } satisfies ChildMessage);
  });
  process.on('SIGTERM', () => {
    void sc.close().then(() => process.exit(0));
  });
  process.send!({ type: 'ready', port: sc.data.port } satisfies ChildMessage);
}

/**
 * The floor for shadow mode on Kafka: kafkajs alone, fed the two records of a shadow call (call event and
 * direct observation, built and encoded once by the sidecar's own code) at a fixed rate, batched like the
 * sidecar's publisher (one sendBatch per `linger`, idempotent producer, acks=all). No HTTP, no capture.
 */
async function runKafkaFloor(brokers: string, suffix: string, linger: number): Promise<void> {
  const { Kafka, logLevel, Partitioners } = await import('kafkajs');
  const { buildCallMessage, buildObservationMessage } = await import('../proxy/call-event.js');
  const { encodeMessages } = await import('../src/bus/kafka/codec.js');
  const { publisherSchema } = await import('../src/config/sidecar.js');
  const kafka = new Kafka({ clientId: 'bench-floor', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const callTopic = `commands.agent.inventory.floor-${suffix}`;
  const obsTopic = `cutover.observations.floor-${suffix}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [callTopic, obsTopic].map((topic) => ({ topic, numPartitions: 6 })), waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const flow = { name: 'inventory.reserve', schemaVersion: '1', mode: 'shadow' as const };
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const [call] = encodeMessages(callTopic, [
    buildCallMessage({ agent: 'inventory', flow, topic: callTopic, id: randomUUID(), traceparent, partitionKey: 'SKU-RED-MUG', data: { body: JSON.parse(BODY), params: {}, query: {} }, method: 'POST', target: '/reservations', headers: { 'content-type': 'application/json' } }),
  ], 1 << 20);
  const [obs] = encodeMessages(obsTopic, [
    buildObservationMessage({ agent: 'inventory', flow, correlationId: randomUUID(), traceparent, data: { status: 201, headers: { 'content-type': 'application/json; charset=utf-8' }, latencyMs: 0.8, body: { reservationId: randomUUID(), sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-42', remaining: 999 }, request: { method: 'POST', target: '/reservations', headers: { 'content-type': 'application/json' }, body: BODY } } }),
  ], 1 << 20);
  const queue: Array<{ topic: string; key: string; value: string; headers: Record<string, string> }> = [];
  const maxBatch = publisherSchema.parse({}).maxBatch;
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      // As the sidecar's publisher does: gather for `linger` unless a full batch already waits.
      if (queue.length < maxBatch) await new Promise((r) => setTimeout(r, linger));
      if (queue.length === 0) continue;
      const batch = queue.splice(0, maxBatch);
      const byTopic = new Map<string, Array<{ key: string; value: string; headers: Record<string, string> }>>();
      for (const { topic, ...m } of batch) byTopic.set(topic, [...(byTopic.get(topic) ?? []), m]);
      await producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1 });
    }
  })();
  const push = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      queue.push({ topic: callTopic, key: 'SKU-RED-MUG', value: call!.message.value as string, headers: call!.message.headers as Record<string, string> });
      queue.push({ topic: obsTopic, key: id, value: obs!.message.value as string, headers: obs!.message.headers as Record<string, string> });
    }
  };
  reportCpu();
  process.on('message', async (msg: { type: string; rate?: number; seconds?: number; n?: number }) => {
    if (msg.type === 'push') push(msg.n!);
    if (msg.type !== 'floor') return;
    // Calls arrive in 10 ms steps (a timer per call would cost more than the calls).
    const perStep = msg.rate! / 100;
    const warm = setInterval(() => push(perStep), 10);
    await new Promise((r) => setTimeout(r, 1_000));
    clearInterval(warm);
    const before = process.cpuUsage();
    let sent = 0;
    const timer = setInterval(() => {
      push(perStep);
      sent += perStep;
    }, 10);
    await new Promise((r) => setTimeout(r, msg.seconds! * 1_000));
    clearInterval(timer);
    const used = process.cpuUsage(before);
    process.send!({ type: 'floor', cpuMicros: used.user + used.system, sent } satisfies ChildMessage);
  });
  process.on('SIGTERM', () => {
    stopping = true;
    void loop.finally(async () => {
      const cleanup = kafka.admin();
      await cleanup.connect();
      await cleanup.deleteTopics({ topics: [callTopic, obsTopic] }).catch(() => undefined);
      await cleanup.disconnect();
      await producer.disconnect();
      process.exit(0);
    });
  });
  process.send!({ type: 'ready', port: 0 } satisfies ChildMessage);
}

// ---------------------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------------------

interface Child {
  proc: ChildProcess;
  port: number;
  ask<T extends ChildMessage['type']>(type: T, payload?: Record<string, unknown>): Promise<ChildMessage>;
  stop(): Promise<void>;
}

async function spawnChild(args: string[]): Promise<Child> {
  // BENCH_PROF=dir writes a CPU profile of each proxy child there (for finding hot spots, not for the table).
  const prof = process.env.BENCH_PROF && args[0] !== 'agent' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
  const proc = fork(SELF, args, { execArgv: ['--import', 'tsx', ...prof], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise<ChildMessage>((resolve, reject) => {
    proc.once('message', (m) => resolve(m as ChildMessage));
    proc.once('exit', (code) => reject(new Error(`child ${args[0]} exited with ${code} before it was ready`)));
  });
  return {
    proc,
    port: ready.port!,
    ask: (type, payload) =>
      new Promise((resolve) => {
        const on = (m: unknown): void => {
          if ((m as ChildMessage).type === type) {
            proc.off('message', on);
            resolve(m as ChildMessage);
          }
        };
        proc.on('message', on);
        proc.send({ type, ...payload });
      }),
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

const BODY = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-42', note: 'bench reservation with a realistic little payload' });

function once(port: number, agent: http.Agent): Promise<number> {
  return post(port, agent, '/reservations', BODY, { authorization: 'Bearer bench-secret-token' });
}

async function throughput(port: number, concurrency: number, seconds: number, onDone?: () => void): Promise<{ rps: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  // Warm-up: connections, JIT, topic creation.
  const warmUntil = performance.now() + 1_000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < warmUntil) {
      await once(port, agent);
      onDone?.();
    }
  }));
  let done = 0;
  let errors = 0;
  const started = performance.now();
  const until = started + seconds * 1_000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const status = await once(port, agent);
      onDone?.();
      if (status === 201) done++;
      else errors++;
    }
  }));
  agent.destroy();
  return { rps: done / ((performance.now() - started) / 1_000), errors };
}

/** Open loop at `rate` req/s after a 1 s warm-up, so sockets exist before measuring. */
function fixedRate(port: number, rate: number, seconds: number, onStart: () => Promise<void>, onEnd: () => Promise<void>, onDone?: () => void): Promise<RateResult> {
  return openLoop({ rate, seconds, warmUp: rate, maxSockets: 256, send: (agent) => once(port, agent).finally(() => onDone?.()), onStart, onEnd });
}

/**
 * Feeds a kafka-floor child one shadow call per request the load generator completes (batched every 10 ms
 * over IPC), for the "forwarder + kafkajs" bound. Returns the callback and a stop function.
 */
function feed(floor: Child): { onDone: () => void; stop: () => void } {
  let pending = 0;
  const timer = setInterval(() => {
    if (pending === 0) return;
    if (floor.proc.connected) floor.proc.send({ type: 'push', n: pending });
    pending = 0;
  }, 10);
  return { onDone: () => void pending++, stop: () => clearInterval(timer) };
}

interface Row {
  name: string;
  rps: number;
  tpErrors: number;
  p50: number;
  p99: number;
  rateErrors: number;
  cpuPer1k: number | undefined;
  note: string;
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const rateSeconds = Number(process.env.BENCH_RATE_SECONDS ?? 5);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
  const only = process.env.BENCH_ONLY?.split(',');
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const kafka = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
  const id = randomUUID().slice(0, 8);
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-bench-'));
  const redisPrefix = `cutover-bench-${id}:`;
  const out = (s: string): boolean => process.stdout.write(s + '\n');

  const agent = await spawnChild(['agent']);
  // The sidecar's publisher.linger (its default unless BENCH_LINGER says otherwise), for the floor row too.
  const { parseDuration } = await import('../src/duration.js');
  const { publisherSchema } = await import('../src/config/sidecar.js');
  const lingerMs = (process.env.BENCH_LINGER ? parseDuration(process.env.BENCH_LINGER) : undefined) ?? publisherSchema.parse({}).linger;
  const rows: Row[] = [];

  const sidecarConfig = (name: string, mode: 'direct' | 'shadow', bus: unknown, durability?: 'none' | 'interval' | 'strict') =>
    JSON.stringify({
      agent: 'inventory',
      listen: '127.0.0.1:0',
      upstream: `http://127.0.0.1:${agent.port}`,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus,
      dataDir: path.join(dir, name),
      log: { level: 'warn' },
      ...(process.env.BENCH_LINGER ? { publisher: { linger: process.env.BENCH_LINGER } } : {}),
      ...(durability ? { spool: { durability } } : {}),
      // Keep the bench's events apart from anything else on a shared broker.
      observationsTopic: `cutover.observations.bench-${id}`,
      flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: `commands.agent.inventory.bench-${id}`, key: 'body.sku', mode }],
    });

  const scenarios: Array<{ name: string; start: () => Promise<Child | undefined> }> = [
    { name: 'agent direct', start: async () => undefined },
    { name: 'minimal forwarder', start: () => spawnChild(['forwarder', String(agent.port)]) },
    { name: 'sidecar direct mode', start: () => spawnChild(['sidecar', sidecarConfig('direct', 'direct', { kind: 'embedded', path: path.join(dir, 'direct.db') })]) },
    { name: 'sidecar shadow embedded', start: () => spawnChild(['sidecar', sidecarConfig('embedded', 'shadow', { kind: 'embedded', path: path.join(dir, 'shadow.db') })]) },
    { name: 'sidecar shadow redis', start: () => spawnChild(['sidecar', sidecarConfig('redis', 'shadow', { kind: 'redis', url: redisUrl, prefix: redisPrefix })]) },
    // What the journal (spool.durability, default interval) costs: the same sidecars without it, and strict.
    { name: 'sidecar shadow embedded, durability none', start: () => spawnChild(['sidecar', sidecarConfig('embedded-none', 'shadow', { kind: 'embedded', path: path.join(dir, 'shadow-none.db') }, 'none')]) },
    { name: 'sidecar shadow redis, durability none', start: () => spawnChild(['sidecar', sidecarConfig('redis-none', 'shadow', { kind: 'redis', url: redisUrl, prefix: `${redisPrefix}none:` }, 'none')]) },
    { name: 'sidecar shadow redis, durability strict', start: () => spawnChild(['sidecar', sidecarConfig('redis-strict', 'shadow', { kind: 'redis', url: redisUrl, prefix: `${redisPrefix}strict:` }, 'strict')]) },
    { name: 'sidecar shadow kafka', start: () => spawnChild(['sidecar', sidecarConfig('kafka', 'shadow', { kind: 'kafka', brokers: kafka })]) },
    { name: 'kafkajs alone (floor)', start: () => spawnChild(['kafka-floor', kafka.join(','), id, String(lingerMs)]) },
    {
      // The best any kafkajs-based sidecar could do: the minimal forwarder, plus a second process that hands
      // kafkajs the two records of every call it forwards. No capture or event building, and two processes
      // (two event loops) where the sidecar has one.
      name: 'forwarder + kafkajs (bound)',
      start: async () => {
        companions.set('forwarder + kafkajs (bound)', await spawnChild(['kafka-floor', kafka.join(','), `${id}-bound`, String(lingerMs)]));
        return spawnChild(['forwarder', String(agent.port)]);
      },
    },
  ];
  const companions = new Map<string, Child>();

  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  out(`cutover bench/proxy: ${rounds} rounds (scenarios interleaved, medians reported) of ${seconds}s max-throughput at concurrency ${concurrency}, then ${rateSeconds}s at 1,000 req/s (open loop); POST /reservations, ${Buffer.byteLength(BODY)}-byte JSON body`);
  // Every proxy starts up front and idles while another is measured; rounds interleave the scenarios so
  // that load from elsewhere on the machine spreads over all of them instead of skewing one.
  const running: Array<{ name: string; child: Child | undefined }> = [];
  const samples = new Map<string, Array<Omit<Row, 'name' | 'note'>>>();
  const notes = new Map<string, string>();
  try {
    for (const s of scenarios) {
      if (only && !only.some((o) => s.name.includes(o))) continue;
      try {
        running.push({ name: s.name, child: await s.start() });
      } catch (err) {
        out(`  ${s.name}: could not start (${(err as Error).message}); skipped`);
      }
    }
    for (let round = 1; round <= rounds; round++) {
      for (const { name, child } of round % 2 === 1 ? running : [...running].reverse()) {
        if (name.startsWith('kafkajs alone')) {
          const r = await child!.ask('floor', { rate: 1_000, seconds: rateSeconds });
          const cpuPer1k = (r.cpuMicros! / 1e6 / r.sent!) * 1_000;
          const list = samples.get(name) ?? [];
          list.push({ rps: NaN, tpErrors: 0, p50: NaN, p99: NaN, rateErrors: 0, cpuPer1k });
          samples.set(name, list);
          notes.set(name, `a floor, not a proxy: 2 records per call handed to kafkajs, ${lingerMs} ms linger, no HTTP`);
          out(`  round ${round}: ${name}: ${cpuPer1k.toFixed(3)} CPU-s/1k`);
          continue;
        }
        const port = child?.port ?? agent.port;
        const companion = companions.get(name);
        const fed = companion ? feed(companion) : undefined;
        const tp = await throughput(port, concurrency, seconds, fed?.onDone);
        let cpuStart = 0;
        let cpuEnd = 0;
        const measured = [child ?? agent, ...(companion ? [companion] : [])];
        const cpu = async (): Promise<number> => (await Promise.all(measured.map((c) => c.ask('cpu')))).reduce((n, m) => n + m.cpuMicros!, 0);
        const rate = await fixedRate(
          port,
          1_000,
          rateSeconds,
          async () => void (cpuStart = await cpu()),
          async () => void (cpuEnd = await cpu()),
          fed?.onDone,
        );
        fed?.stop();
        if (companion) notes.set(name, 'CPU column: forwarder + kafkajs processes together');
        if (child && name.startsWith('sidecar')) {
          const stats = (await child.ask('stats')).stats as { enqueued: number; published: number; spooled: number; dropped: number; queueDepth: number; spoolDepth: number };
          notes.set(name, `events enqueued ${stats.enqueued}, published ${stats.published}, spooled ${stats.spooled}, dropped ${stats.dropped}, queue ${stats.queueDepth}, spool ${stats.spoolDepth}`);
        } else if (!child) {
          notes.set(name, 'CPU column: the agent process');
        }
        const list = samples.get(name) ?? [];
        list.push({ rps: tp.rps, tpErrors: tp.errors, p50: rate.p50, p99: rate.p99, rateErrors: rate.errors, cpuPer1k: ((cpuEnd - cpuStart) / 1e6 / rate.sent) * 1_000 });
        samples.set(name, list);
        out(`  round ${round}: ${name}: ${tp.rps.toFixed(0)} req/s, p50 ${rate.p50.toFixed(2)} ms, p99 ${rate.p99.toFixed(2)} ms, ${(((cpuEnd - cpuStart) / 1e6 / rate.sent) * 1_000).toFixed(3)} CPU-s/1k`);
      }
    }
  } finally {
    for (const r of running) await r.child?.stop();
    for (const c of companions.values()) await c.stop();
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
    await deleteRedisPrefix(redisUrl, redisPrefix).catch(() => undefined);
    // The topics this run created on the shared broker.
    await deleteKafkaTopics(kafka, (t) => t.endsWith(`bench-${id}`)).catch(() => undefined);
  }
  const median = (xs: number[]): number => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  for (const { name } of running) {
    const list = samples.get(name) ?? [];
    if (list.length === 0) continue;
    rows.push({
      name,
      rps: median(list.map((x) => x.rps)),
      tpErrors: list.reduce((a, x) => a + x.tpErrors, 0),
      p50: median(list.map((x) => x.p50)),
      p99: median(list.map((x) => x.p99)),
      rateErrors: list.reduce((a, x) => a + x.rateErrors, 0),
      cpuPer1k: median(list.map((x) => x.cpuPer1k ?? NaN)),
      note: notes.get(name) ?? '',
    });
  }

  const base = rows.find((r) => r.name === 'minimal forwarder');
  const direct = rows.find((r) => r.name === 'agent direct');
  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (n: number | undefined, d = 0): string => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
  out('');
  const nameWidth = Math.max(30, ...rows.map((r) => r.name.length + 2));
  const percent = (ratio: number): string => (Number.isNaN(ratio) ? '-' : (ratio * 100).toFixed(0) + '%');
  out(`${pad('scenario', nameWidth)}${pad('max req/s', 11)}${pad('vs fwd', 8)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('+p50 ms', 9)}${pad('CPU-s/1k', 10)}${pad('CPU/fwd', 9)}${pad('errors', 8)}notes`);
  for (const r of rows) {
    const ratio = base ? r.rps / base.rps : NaN;
    const cpuRatio = base?.cpuPer1k !== undefined && r.cpuPer1k !== undefined ? r.cpuPer1k / base.cpuPer1k : NaN;
    const added = direct ? r.p50 - direct.p50 : NaN;
    out(
      `${pad(r.name, nameWidth)}${pad(num(r.rps), 11)}${pad(percent(ratio), 8)}${pad(num(r.p50, 2), 8)}${pad(num(r.p99, 2), 8)}${pad(num(added, 2), 9)}${pad(num(r.cpuPer1k, 3), 10)}${pad(percent(cpuRatio), 9)}${pad(String(r.tpErrors + r.rateErrors), 8)}${r.note}`,
    );
  }
  const kafkaRow = rows.find((r) => r.name === 'sidecar shadow kafka');
  if (base && kafkaRow && direct) {
    out('');
    out(`goals: shadow/kafka throughput ${((kafkaRow.rps / base.rps) * 100).toFixed(0)}% of the minimal forwarder (goal >= 70%); added median latency at 1,000 req/s ${(kafkaRow.p50 - direct.p50).toFixed(2)} ms (goal <= 1 ms); ${num(kafkaRow.cpuPer1k, 3)} CPU-s per 1,000 requests (goal <= 0.2)`);
  }
  const bound = rows.find((r) => r.name.startsWith('forwarder + kafkajs'));
  if (base && bound) {
    out(`bound: forwarder + kafkajs in two processes reach ${((bound.rps / base.rps) * 100).toFixed(0)}% of the forwarder's throughput at ${num(bound.cpuPer1k, 3)} CPU-s/1k: no kafkajs-based sidecar does better here`);
  }
  const floor = rows.find((r) => r.name.startsWith('kafkajs alone'));
  if (base?.cpuPer1k !== undefined && floor?.cpuPer1k !== undefined) {
    const least = base.cpuPer1k + floor.cpuPer1k;
    out(
      `floor: minimal forwarder ${num(base.cpuPer1k, 3)} + kafkajs alone ${num(floor.cpuPer1k, 3)} = ${num(least, 3)} CPU-s per 1,000 shadowed calls at the least` +
        (kafkaRow?.cpuPer1k !== undefined ? `; the sidecar spends ${num(kafkaRow.cpuPer1k - least, 3)} over that` : ''),
    );
  }
}

switch (ROLE) {
  case 'agent':
    await runAgent();
    break;
  case 'forwarder':
    await runForwarder(Number(process.argv[3]));
    break;
  case 'sidecar':
    await runSidecarChild(process.argv[3]!);
    break;
  case 'kafka-floor':
    await runKafkaFloor(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
    break;
  default:
    await main();
}
