/**
 * Sidecar benchmark: `npx tsx bench/proxy.ts` (or `npm run bench:proxy`).
 *
 * In one run, against the same agent: the agent called directly, a minimal Node forwarding proxy (the
 * baseline every ratio is against), http-proxy-middleware alone with the sidecar's options (the bound for
 * direct mode: the sidecar forwards through it), the sidecar with its flow in direct mode, and in shadow mode on the
 * embedded, Redis, Kafka and RabbitMQ buses (with the default `spool.durability: interval`; to price the journal,
 * also embedded and Redis with `none` and Redis with `strict`). For each:
 * - max throughput: closed loop, fixed concurrency, fixed duration;
 * - latency at a fixed 1,000 req/s: open loop (requests are sent on schedule whether or not earlier ones
 *   returned; latency counts from the scheduled time, so a stall is not hidden), p50 and p99;
 * - CPU seconds of the proxy process per 1,000 requests during the fixed-rate phase (process.cpuUsage
 *   read over IPC from the child).
 * The sidecars run without the shadow side (`shadow.inProcess: false`, which the embedded bus would
 * otherwise default to), so every bus's row prices the same work; the shadow side is measured by
 * bench:comparator and bench:many-flows.
 *
 * Rows marked (floor) are bounds rather than proxies: a process that only publishes the two records a
 * shadow call costs (the call event and the direct observation, built as the sidecar builds them, batched
 * every publisher.linger like the sidecar's outbox) at 1,000 calls/s. "<bus> adapter alone" goes through
 * cutover's bus adapter (serialization included); "kafkajs alone" hands pre-encoded records straight to
 * kafkajs. Forwarder CPU + a floor is the least a Node sidecar on that client can spend per 1,000 shadowed
 * calls; the run ends with each bus's targets, PASS or MISS, and the sidecar's distance to its floor.
 * "@platformatic/kafka alone (floor)" is the bare kafkajs floor with @platformatic/kafka as the client (same
 * records, rate, linger, acks=all, idempotence), and "sidecar shadow kafka, platformatic producer" the Kafka
 * sidecar with that client as its publisher's producer (`bus.client.producer: platformatic`).
 * "forwarder + kafkajs (bound)": the minimal forwarder with a kafkajs floor process fed two records per
 * completed request, in both phases. "http-proxy-middleware + <bus> adapter (bound)": one process that
 * forwards through http-proxy-middleware with the sidecar's options and hands the adapter the two prebuilt
 * records of every completed request through the floor's batching loop; no capture, event building or
 * journal, so no sidecar on that library and adapter does better in one process.
 *
 * The load generator is written here (keep-alive agents, node:http) rather than autocannon: it is one
 * small file, needs no extra dependency, and gives the open-loop schedule the latency goal needs.
 * The agent, the proxy under test and the load generator each run in their own process; on a small
 * machine they share the cores, so absolute numbers are low and ratios are what to read.
 *
 * Identity: "sidecar shadow embedded, signed" and "sidecar shadow kafka, signed" are the same sidecars with
 * an `identity:` (a fresh Ed25519 key), so every call event and direct observation is signed on publish;
 * the run ends with their throughput and CPU beside the unsigned rows, as a ratio and as µs of CPU per
 * request and per signed event (two per shadowed call).
 *
 * Tracing: "sidecar shadow embedded, traced" is the same sidecar with an OpenTelemetry SDK registered (batch
 * processor, an exporter that only counts), against the plain row, which runs the same code with no SDK.
 * What the tracing calls cost with no SDK is measured in this process (the spans of one shadowed call,
 * many times over) and printed as µs per request and as a share of the plain sidecar's CPU per request.
 *
 * Env: BENCH_SECONDS (throughput phase, default 5), BENCH_RATE_SECONDS (default 5), BENCH_CONCURRENCY
 * (default 32), BENCH_ROUNDS (default 3), BENCH_ONLY (comma list of scenario name parts; `=name` for one name exactly), REDIS_URL,
 * KAFKA_BROKERS, RABBITMQ_URL, BENCH_LINGER (publisher.linger of the sidecars), BENCH_PROF (directory for CPU profiles),
 * BENCH_FROM_SOURCE=1 (run the sidecars from the TypeScript sources through tsx instead of the compiled dist/).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import { deleteRabbitObjects, deleteRabbitPrefixObjects, listRabbitNames } from '../src/bus/rabbitmq/maintenance.js';
import { buildProduct, product } from './lib/product.js';
import { openLoop, post, type RateResult } from './lib/load.js';
import { buildCallMessage, buildObservationMessage } from '../proxy/call-event.js';

type BusMessageLike = ReturnType<typeof buildCallMessage>;

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
  /** floor: calls handed to the client during the measured part. */
  sent?: number;
  /** floor: records the client reported acknowledged during the measured part (two per call). */
  acked?: number;
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

/**
 * http-proxy-middleware alone, with the options the sidecar gives it (proxy/upstreams.ts) and a 502 on
 * error: what direct mode costs at the least with the library the sidecar forwards through.
 */
async function runProxyMiddleware(upstreamPort: number, bus?: { json: string; suffix: string; linger: number }): Promise<void> {
  const { createProxyMiddleware } = await import('http-proxy-middleware');
  // With a bus: the two records of a shadowed call (prebuilt, as the floor sends them) handed to the adapter
  // for every response, through the floor's batching loop. No capture, no event building, no journal.
  const publishing = bus ? floorLoop(await busSender(bus.json, bus.suffix), bus.linger, await defaultMaxBatch()) : undefined;
  const { proxyOptions } = await product<typeof import('../proxy/upstreams.js')>('proxy/upstreams');
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' });
  const proxy = createProxyMiddleware(
    proxyOptions(`http://127.0.0.1:${upstreamPort}`, agent, (p) =>
      p.on('error', (_err, _req, res) => {
        if ('writeHead' in res && !res.headersSent) res.writeHead(502);
        res.end();
      }),
    ),
  );
  const server = http.createServer((req, res) => {
    if (publishing) res.once('finish', () => publishing.push(1));
    void proxy(req, res, () => res.writeHead(502).end());
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.on('SIGTERM', () => void (publishing ? publishing.stop() : Promise.resolve()).finally(() => process.exit(0)));
  reportCpu();
  process.send!({ type: 'ready', port: (server.address() as AddressInfo).port } satisfies ChildMessage);
}

async function runSidecarChild(configJson: string, traced: boolean): Promise<void> {
  if (traced) await registerTracing();
  const { startSidecar } = await product<typeof import('../proxy/sidecar.js')>('proxy/sidecar');
  const { createLogger } = await product<typeof import('../src/logger.js')>('src/logger');
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

/** A user's OpenTelemetry setup: an SDK with a batch processor; the exporter only counts what it is given. */
async function registerTracing(): Promise<void> {
  const { trace } = await import('@opentelemetry/api');
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const exporter = { export: (_spans: unknown[], done: (r: { code: number }) => void) => done({ code: 0 }), shutdown: async () => undefined };
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] }));
}

/** Microseconds the tracing calls of one shadowed call (forward and publish spans) cost with no SDK registered. */
async function untracedSpanMicros(): Promise<number> {
  const { endSpan, SpanKind, startSpan } = await import('../src/tracing.js');
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const once = (): void => {
    const forward = startSpan('cutover forward', SpanKind.SERVER, traceparent, { 'http.request.method': 'POST', 'url.path': '/reservations', 'cutover.flow': 'inventory.reserve', 'cutover.mode': 'shadow' });
    const publish = startSpan('cutover publish', SpanKind.PRODUCER, forward, { 'messaging.destination.name': 'commands.agent.inventory.reserve', 'cutover.flow': 'inventory.reserve' });
    endSpan(publish, undefined, { 'messaging.message.id': 'x' });
    endSpan(forward, undefined, { 'http.response.status_code': 201 });
  };
  const n = 200_000;
  for (let i = 0; i < n / 10; i++) once();
  const started = performance.now();
  for (let i = 0; i < n; i++) once();
  return ((performance.now() - started) * 1_000) / n;
}

/** Sends one gathered batch of a floor process's records (call events and observations, topics mixed). */
interface FloorSender {
  callTopic: string;
  obsTopic: string;
  send(batch: Array<{ topic: string; index: 0 | 1 }>): Promise<void>;
  close(): Promise<void>;
}

/**
 * kafkajs alone: the two records of a shadow call, built and encoded once by the sidecar's own code, handed
 * to one kafkajs producer (acks=all) per batch. No serialization per call, no adapter.
 */
async function kafkaClientSender(client: 'kafkajs' | 'platformatic', brokers: string, suffix: string): Promise<FloorSender> {
  const { Kafka, logLevel, Partitioners } = await import('kafkajs');
  const { encodeMessages } = await product<typeof import('../src/bus/kafka/codec.js')>('src/bus/kafka/codec');
  const kafka = new Kafka({ clientId: 'bench-floor', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const callTopic = `commands.agent.inventory.floor-${suffix}`;
  const obsTopic = `cutover.observations.floor-${suffix}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [callTopic, obsTopic].map((topic) => ({ topic, numPartitions: 6 })), waitForLeaders: true });
  await admin.disconnect();
  const producer = client === 'kafkajs' ? await kafkajsProducer(kafka, Partitioners.DefaultPartitioner) : await platformaticProducer(brokers.split(','));
  const [call, obs] = floorMessages(callTopic);
  const encoded = [encodeMessages(callTopic, [call], 1 << 20)[0]!.message, encodeMessages(obsTopic, [obs], 1 << 20)[0]!.message];
  return {
    callTopic,
    obsTopic,
    send: async (batch) => {
      await producer.send(
        batch.map(({ topic, index }) => {
          const m = encoded[index]!;
          return { topic, key: index === 0 ? 'SKU-RED-MUG' : randomUUID(), value: m.value as string, headers: m.headers as Record<string, string> };
        }),
      );
    },
    close: async () => {
      const cleanup = kafka.admin();
      await cleanup.connect();
      await cleanup.deleteTopics({ topics: [callTopic, obsTopic] }).catch(() => undefined);
      await cleanup.disconnect();
      await producer.close();
    },
  };
}

type FloorRecord = { topic: string; key: string; value: string; headers: Record<string, string> };

/** kafkajs as the floor has always used it: an idempotent producer, the default (Java-compatible) partitioner, acks=all. */
async function kafkajsProducer(kafka: import('kafkajs').Kafka, partitioner: import('kafkajs').ICustomPartitioner): Promise<{ send(batch: FloorRecord[]): Promise<void>; close(): Promise<void> }> {
  const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false, createPartitioner: partitioner });
  await producer.connect();
  return {
    send: async (batch) => {
      const byTopic = new Map<string, Array<Omit<FloorRecord, 'topic'>>>();
      for (const { topic, ...m } of batch) {
        let list = byTopic.get(topic);
        if (!list) byTopic.set(topic, (list = []));
        list.push(m);
      }
      await producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1 });
    },
    close: () => producer.disconnect(),
  };
}

/**
 * @platformatic/kafka with the same settings: idempotent, acks=all, no compression, string serializers, and
 * its Java-compatible murmur2 partitioner (its default one maps negative hashes elsewhere).
 */
async function platformaticProducer(brokers: string[]): Promise<{ send(batch: FloorRecord[]): Promise<void>; close(): Promise<void> }> {
  const { Producer, ProduceAcks, compatibilityPartitioner, stringSerializers } = await import('@platformatic/kafka');
  const producer = new Producer({
    clientId: 'bench-floor',
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    compression: 'none',
    partitioner: compatibilityPartitioner,
    autocreateTopics: false,
  });
  return {
    send: async (batch) => {
      await producer.send({ messages: batch, acks: ProduceAcks.ALL });
    },
    close: () => producer.close(),
  };
}

/**
 * A cutover bus adapter alone: the same two records per call through `bus.publish` (one call per topic per
 * batch, as the sidecar's outbox sends), so its serialization and the adapter's own work are in the figure.
 */
async function busSender(busJson: string, suffix: string): Promise<FloorSender> {
  const { openBus } = await product<typeof import('../src/bus/index.js')>('src/bus/index');
  const { createLogger } = await product<typeof import('../src/logger.js')>('src/logger');
  const bus = await openBus(JSON.parse(busJson), { logger: createLogger({ level: 'warn' }) });
  const callTopic = `commands.agent.inventory.floor-${suffix}`;
  const obsTopic = `cutover.observations.floor-${suffix}`;
  const [call, obs] = floorMessages(callTopic);
  return {
    callTopic,
    obsTopic,
    send: async (batch) => {
      const byTopic = new Map<string, Array<typeof call>>();
      for (const { topic, index } of batch) {
        let list = byTopic.get(topic);
        if (!list) byTopic.set(topic, (list = []));
        list.push(index === 0 ? call : obs);
      }
      await Promise.all([...byTopic].map(([topic, messages]) => bus.publish(topic, messages)));
    },
    close: () => bus.close(),
  };
}

/** The call event and the direct observation of one shadowed call, as the sidecar builds them. */
function floorMessages(callTopic: string): [BusMessageLike, BusMessageLike] {
  const flow = { name: 'inventory.reserve', schemaVersion: '1', mode: 'shadow' as const };
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  return [
    buildCallMessage({ agent: 'inventory', flow, topic: callTopic, id: randomUUID(), traceparent, partitionKey: 'SKU-RED-MUG', data: { body: JSON.parse(BODY), params: {}, query: {} }, method: 'POST', target: '/reservations', headers: { 'content-type': 'application/json' } }),
    buildObservationMessage({ agent: 'inventory', flow, correlationId: randomUUID(), traceparent, data: { status: 201, headers: { 'content-type': 'application/json; charset=utf-8' }, latencyMs: 0.8, body: { reservationId: randomUUID(), sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-42', remaining: 999 }, request: { method: 'POST', target: '/reservations', headers: { 'content-type': 'application/json' }, body: BODY } } }),
  ];
}

/** The sidecar's default publisher.maxBatch. */
async function defaultMaxBatch(): Promise<number> {
  const { publisherSchema } = await import('../src/config/sidecar.js');
  return publisherSchema.parse({}).maxBatch;
}

/**
 * The floor's publishing loop: two records queued per call, sent in batches like the sidecar's publisher
 * (gather for `linger` unless a full batch waits; one batch in flight).
 */
function floorLoop(sender: FloorSender, linger: number, maxBatch: number): { push(n: number): void; acked(): number; stop(): Promise<void> } {
  const queue: Array<{ topic: string; index: 0 | 1 }> = [];
  let stopping = false;
  let acked = 0;
  const loop = (async () => {
    while (!stopping) {
      if (queue.length < maxBatch) await new Promise((r) => setTimeout(r, linger));
      if (queue.length === 0) continue;
      const batch = queue.splice(0, maxBatch);
      await sender.send(batch);
      // A client that dropped records would look cheap: the row says how many were acknowledged.
      acked += batch.length;
    }
  })();
  return {
    push(n) {
      for (let i = 0; i < n; i++) {
        queue.push({ topic: sender.callTopic, index: 0 });
        queue.push({ topic: sender.obsTopic, index: 1 });
      }
    },
    acked: () => acked,
    async stop() {
      stopping = true;
      await loop.catch(() => undefined);
      await sender.close().catch(() => undefined);
    },
  };
}

/**
 * A floor process: fed the two records of a shadow call (call event and direct observation) per call, at
 * a fixed rate or one call per request a load generator completed, batched like the sidecar's publisher
 * (gather for `linger` unless a full batch waits; one batch in flight). No HTTP, no capture. Its CPU per
 * 1,000 calls is the least the publishing side of a shadowing sidecar can cost with that client.
 */
async function runFloor(kind: string, target: string, suffix: string, linger: number): Promise<void> {
  const sender = kind === 'kafkajs' || kind === 'platformatic' ? await kafkaClientSender(kind, target, suffix) : await busSender(target, suffix);
  const { push, acked: ackedSoFar, stop } = floorLoop(sender, linger, await defaultMaxBatch());
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
    const ackedBefore = ackedSoFar();
    let sent = 0;
    const timer = setInterval(() => {
      push(perStep);
      sent += perStep;
    }, 10);
    await new Promise((r) => setTimeout(r, msg.seconds! * 1_000));
    clearInterval(timer);
    const used = process.cpuUsage(before);
    process.send!({ type: 'floor', cpuMicros: used.user + used.system, sent, acked: ackedSoFar() - ackedBefore } satisfies ChildMessage);
  });
  process.on('SIGTERM', () => void stop().finally(() => process.exit(0)));
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

const PAYLOAD = { sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-42', note: 'bench reservation with a realistic little payload' };
const BODY = JSON.stringify(PAYLOAD);
/**
 * The JSON-RPC rows' body: an MCP `tools/call` of `reserve_stock` around the same payload. The payload
 * also stays at the top level, where the inventory agent reads it (it ignores the envelope), so the agent's
 * work is the same as in the other rows and only the sidecar's matching differs.
 */
const RPC_BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'reserve_stock', arguments: PAYLOAD }, ...PAYLOAD });

function once(port: number, agent: http.Agent, body = BODY): Promise<number> {
  return post(port, agent, '/reservations', body, { authorization: 'Bearer bench-secret-token' });
}

async function throughput(port: number, concurrency: number, seconds: number, onDone?: () => void, body = BODY): Promise<{ rps: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  // Warm-up: connections, JIT, topic creation.
  const warmUntil = performance.now() + 1_000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < warmUntil) {
      await once(port, agent, body);
      onDone?.();
    }
  }));
  let done = 0;
  let errors = 0;
  const started = performance.now();
  const until = started + seconds * 1_000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const status = await once(port, agent, body);
      onDone?.();
      if (status === 201) done++;
      else errors++;
    }
  }));
  agent.destroy();
  return { rps: done / ((performance.now() - started) / 1_000), errors };
}

/** Open loop at `rate` req/s after a 1 s warm-up, so sockets exist before measuring. */
function fixedRate(port: number, rate: number, seconds: number, onStart: () => Promise<void>, onEnd: () => Promise<void>, onDone?: () => void, body = BODY): Promise<RateResult> {
  return openLoop({ rate, seconds, warmUp: rate, maxSockets: 256, send: (agent) => once(port, agent, body).finally(() => onDone?.()), onStart, onEnd });
}

/**
 * Feeds a floor child one shadow call per request the load generator completes (batched every 10 ms
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
  const rabbitmqUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672/';
  const id = randomUUID().slice(0, 8);
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-bench-'));
  const redisPrefix = `cutover-bench-${id}:`;
  const rabbitPrefix = `cutover-bench-${id}`;
  const out = (s: string): boolean => process.stdout.write(s + '\n');

  // The sidecars and floors run the compiled code (see product()): build it from the sources of this checkout.
  buildProduct();
  const agent = await spawnChild(['agent']);
  // The sidecar's publisher.linger (its default unless BENCH_LINGER says otherwise), for the floor row too.
  const { parseDuration } = await import('../src/duration.js');
  const { publisherSchema } = await import('../src/config/sidecar.js');
  const lingerMs = (process.env.BENCH_LINGER ? parseDuration(process.env.BENCH_LINGER) : undefined) ?? publisherSchema.parse({}).linger;
  const rows: Row[] = [];

  // The signing key of the signed scenarios, made for this run (PEM PKCS#8, as `cutover keygen` writes it).
  const signingKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const topic = `commands.agent.inventory.bench-${id}`;
  const plainFlows = (mode: string): unknown[] => [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic, key: 'body.sku', mode }];
  // The JSON-RPC rows: the URL's calls told apart by method and tool, the rest to a plain flow beside it.
  const rpcFlows = (mode: string): unknown[] => [
    { name: 'inventory.reserve', match: { method: 'POST', path: '/reservations', rpc: 'tools/call', tool: 'reserve_stock' }, topic, key: 'rpc.params.arguments.sku', mode },
    { name: 'inventory.other', match: { method: 'POST', path: '/reservations' }, topic: `${topic}-other`, mode: 'direct' },
  ];
  const sidecarConfig = (name: string, mode: 'direct' | 'shadow', bus: unknown, durability?: 'none' | 'interval' | 'strict', signed = false, flows = plainFlows(mode)): string =>
    JSON.stringify({
      ...(signed ? { identity: { keyId: `bench-${id}`, privateKey: signingKey } } : {}),
      agent: 'inventory',
      listen: '127.0.0.1:0',
      upstream: `http://127.0.0.1:${agent.port}`,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus,
      dataDir: path.join(dir, name),
      log: { level: 'warn' },
      ...(process.env.BENCH_LINGER ? { publisher: { linger: process.env.BENCH_LINGER } } : {}),
      ...(durability ? { spool: { durability } } : {}),
      // The sidecar alone on every bus: the shadow side (in the sidecar by default on the embedded bus) runs
      // elsewhere, as `cutover shadow`; bench:comparator and bench:many-flows measure it.
      shadow: { inProcess: false },
      // Keep the bench's events apart from anything else on a shared broker.
      observationsTopic: `cutover.observations-bench-${id}`,
      flows,
    });

  const scenarios: Array<{ name: string; start: () => Promise<Child | undefined>; body?: string }> = [
    { name: 'agent direct', start: async () => undefined },
    { name: 'minimal forwarder', start: () => spawnChild(['forwarder', String(agent.port)]) },
    // The library the sidecar forwards through, alone: the least direct mode can cost with it.
    { name: 'http-proxy-middleware alone (bound)', start: () => spawnChild(['hpm', String(agent.port)]) },
    { name: 'sidecar direct mode', start: () => spawnChild(['sidecar', sidecarConfig('direct', 'direct', { kind: 'embedded', path: path.join(dir, 'direct.db') })]) },
    { name: 'sidecar shadow embedded', start: () => spawnChild(['sidecar', sidecarConfig('embedded', 'shadow', { kind: 'embedded', path: path.join(dir, 'shadow.db') })]) },
    // What selecting flows by JSON-RPC method and tool costs: the same JSON-RPC body without and with rpc flows.
    { name: 'sidecar direct, JSON-RPC body, path flow', body: RPC_BODY, start: () => spawnChild(['sidecar', sidecarConfig('rpc-plain', 'direct', { kind: 'embedded', path: path.join(dir, 'rpc-plain.db') })]) },
    { name: 'sidecar direct, JSON-RPC flows', body: RPC_BODY, start: () => spawnChild(['sidecar', sidecarConfig('rpc-direct', 'direct', { kind: 'embedded', path: path.join(dir, 'rpc-direct.db') }, undefined, false, rpcFlows('direct'))]) },
    { name: 'sidecar shadow embedded, JSON-RPC flows', body: RPC_BODY, start: () => spawnChild(['sidecar', sidecarConfig('rpc-shadow', 'shadow', { kind: 'embedded', path: path.join(dir, 'rpc-shadow.db') }, undefined, false, rpcFlows('shadow'))]) },
    { name: 'sidecar shadow redis', start: () => spawnChild(['sidecar', sidecarConfig('redis', 'shadow', { kind: 'redis', url: redisUrl, prefix: redisPrefix })]) },
    // What the journal (spool.durability, default interval) costs: the same sidecars without it, and strict.
    { name: 'sidecar shadow embedded, durability none', start: () => spawnChild(['sidecar', sidecarConfig('embedded-none', 'shadow', { kind: 'embedded', path: path.join(dir, 'shadow-none.db') }, 'none')]) },
    { name: 'sidecar shadow redis, durability none', start: () => spawnChild(['sidecar', sidecarConfig('redis-none', 'shadow', { kind: 'redis', url: redisUrl, prefix: `${redisPrefix}none:` }, 'none')]) },
    { name: 'sidecar shadow redis, durability strict', start: () => spawnChild(['sidecar', sidecarConfig('redis-strict', 'shadow', { kind: 'redis', url: redisUrl, prefix: `${redisPrefix}strict:` }, 'strict')]) },
    { name: 'sidecar shadow kafka', start: () => spawnChild(['sidecar', sidecarConfig('kafka', 'shadow', { kind: 'kafka', brokers: kafka })]) },
    // The same sidecar with the publisher's producer on @platformatic/kafka (bus.client.producer).
    { name: 'sidecar shadow kafka, platformatic producer', start: () => spawnChild(['sidecar', sidecarConfig('kafka-pk', 'shadow', { kind: 'kafka', brokers: kafka, client: { producer: 'platformatic' } })]) },
    { name: 'sidecar shadow rabbitmq', start: () => spawnChild(['sidecar', sidecarConfig('rabbitmq', 'shadow', { kind: 'rabbitmq', url: rabbitmqUrl, prefix: rabbitPrefix })]) },
    // What signing every published event costs (identity:), against the unsigned rows of the same buses.
    { name: 'sidecar shadow embedded, signed', start: () => spawnChild(['sidecar', sidecarConfig('embedded-signed', 'shadow', { kind: 'embedded', path: path.join(dir, 'shadow-signed.db') }, undefined, true)]) },
    // What tracing costs with a user's OpenTelemetry SDK registered (the plain row runs the same code without one).
    { name: 'sidecar shadow embedded, traced', start: () => spawnChild(['sidecar', sidecarConfig('embedded-traced', 'shadow', { kind: 'embedded', path: path.join(dir, 'shadow-traced.db') }), 'traced']) },
    { name: 'sidecar shadow kafka, signed', start: () => spawnChild(['sidecar', sidecarConfig('kafka-signed', 'shadow', { kind: 'kafka', brokers: kafka }, undefined, true)]) },
    // Floors: the publishing side alone, per bus (the adapter) and for Kafka also the bare client.
    { name: 'kafkajs alone (floor)', start: () => spawnChild(['floor', 'kafkajs', kafka.join(','), id, String(lingerMs)]) },
    { name: '@platformatic/kafka alone (floor)', start: () => spawnChild(['floor', 'platformatic', kafka.join(','), `${id}-pk`, String(lingerMs)]) },
    { name: 'embedded adapter alone (floor)', start: () => spawnChild(['floor', 'bus', JSON.stringify({ kind: 'embedded', path: path.join(dir, 'floor.db') }), id, String(lingerMs)]) },
    { name: 'redis adapter alone (floor)', start: () => spawnChild(['floor', 'bus', JSON.stringify({ kind: 'redis', url: redisUrl, prefix: `${redisPrefix}floor:` }), id, String(lingerMs)]) },
    { name: 'kafka adapter alone (floor)', start: () => spawnChild(['floor', 'bus', JSON.stringify({ kind: 'kafka', brokers: kafka }), `adapter-bench-${id}`, String(lingerMs)]) },
    { name: 'rabbitmq adapter alone (floor)', start: () => spawnChild(['floor', 'bus', JSON.stringify({ kind: 'rabbitmq', url: rabbitmqUrl, prefix: rabbitPrefix }), id, String(lingerMs)]) },
    // One-process bounds: http-proxy-middleware forwarding and handing the adapter two prebuilt records per
    // call (no capture, event building or journal): the most a sidecar on that library and adapter can reach.
    { name: 'http-proxy-middleware + embedded adapter (bound)', start: () => spawnChild(['hpm', String(agent.port), JSON.stringify({ kind: 'embedded', path: path.join(dir, 'hpm-bound.db') }), `${id}-hpm`, String(lingerMs)]) },
    { name: 'http-proxy-middleware + redis adapter (bound)', start: () => spawnChild(['hpm', String(agent.port), JSON.stringify({ kind: 'redis', url: redisUrl, prefix: `${redisPrefix}hpm:` }), `${id}-hpm`, String(lingerMs)]) },
    { name: 'http-proxy-middleware + kafka adapter (bound)', start: () => spawnChild(['hpm', String(agent.port), JSON.stringify({ kind: 'kafka', brokers: kafka }), `adapter-bench-${id}-hpm`, String(lingerMs)]) },
    { name: 'http-proxy-middleware + rabbitmq adapter (bound)', start: () => spawnChild(['hpm', String(agent.port), JSON.stringify({ kind: 'rabbitmq', url: rabbitmqUrl, prefix: rabbitPrefix }), `${id}-hpm`, String(lingerMs)]) },
    {
      // The best any kafkajs-based sidecar could do: the minimal forwarder, plus a second process that hands
      // kafkajs the two records of every call it forwards. No capture or event building, and two processes
      // (two event loops) where the sidecar has one.
      name: 'forwarder + kafkajs (bound)',
      start: async () => {
        companions.set('forwarder + kafkajs (bound)', await spawnChild(['floor', 'kafkajs', kafka.join(','), `${id}-bound`, String(lingerMs)]));
        return spawnChild(['forwarder', String(agent.port)]);
      },
    },
  ];
  const companions = new Map<string, Child>();

  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  out(`cutover bench/proxy: ${rounds} rounds (scenarios interleaved, medians reported) of ${seconds}s max-throughput at concurrency ${concurrency}, then ${rateSeconds}s at 1,000 req/s (open loop); POST /reservations, ${Buffer.byteLength(BODY)}-byte JSON body`);
  // Every proxy starts up front and idles while another is measured; rounds interleave the scenarios so
  // that load from elsewhere on the machine spreads over all of them instead of skewing one.
  const running: Array<{ name: string; child: Child | undefined; body?: string }> = [];
  const samples = new Map<string, Array<Omit<Row, 'name' | 'note'>>>();
  const notes = new Map<string, string>();
  try {
    for (const s of scenarios) {
      if (only && !only.some((o) => (o.startsWith('=') ? s.name === o.slice(1) : s.name.includes(o)))) continue;
      try {
        running.push({ name: s.name, child: await s.start(), ...(s.body ? { body: s.body } : {}) });
      } catch (err) {
        out(`  ${s.name}: could not start (${(err as Error).message}); skipped`);
      }
    }
    for (let round = 1; round <= rounds; round++) {
      for (const { name, child, body } of round % 2 === 1 ? running : [...running].reverse()) {
        if (name.endsWith('(floor)')) {
          const r = await child!.ask('floor', { rate: 1_000, seconds: rateSeconds });
          const cpuPer1k = (r.cpuMicros! / 1e6 / r.sent!) * 1_000;
          const list = samples.get(name) ?? [];
          list.push({ rps: NaN, tpErrors: 0, p50: NaN, p99: NaN, rateErrors: 0, cpuPer1k });
          samples.set(name, list);
          notes.set(name, `a floor, not a proxy: 2 records per call, ${lingerMs} ms linger, no HTTP`);
          out(`  round ${round}: ${name}: ${cpuPer1k.toFixed(3)} CPU-s/1k, ${r.acked} of ${r.sent! * 2} records acknowledged`);
          continue;
        }
        const port = child?.port ?? agent.port;
        const companion = companions.get(name);
        const fed = companion ? feed(companion) : undefined;
        const tp = await throughput(port, concurrency, seconds, fed?.onDone, body);
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
          body,
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
    // Everything under the run's prefix where rabbitmqctl can list it (the broker on this host), else the
    // topics' log streams from the registry and the shared objects (the sidecar's reply group stays).
    await deleteRabbitObjects(rabbitmqUrl, await listRabbitNames(rabbitPrefix)).catch(() => undefined);
    await deleteRabbitPrefixObjects(rabbitmqUrl, rabbitPrefix).catch(() => undefined);
    // The topics this run created on the shared broker.
    // Flow topics end in bench-<id>; observation topics are cutover.observations-bench-<id>.<flow>.
    await deleteKafkaTopics(kafka, (t) => t.endsWith(`bench-${id}`) || t.startsWith(`cutover.observations-bench-${id}.`)).catch(() => undefined);
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
  // The targets, per bus: shadow mode >= 70% of the forwarder's throughput, <= 0.2 CPU-s per 1,000 requests
  // at 1,000 req/s, <= 0.5 ms added median; direct mode >= 90%. Beside each, the floor that bounds it: the
  // forwarder's CPU plus the bus's publishing alone, and how far the sidecar is above that.
  if (base && direct) {
    const mark = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
    const sidecarDirect = rows.find((r) => r.name === 'sidecar direct mode');
    out('');
    out('targets (ratios within this run):');
    const hpm = rows.find((r) => r.name === 'http-proxy-middleware alone (bound)');
    if (sidecarDirect) {
      out(
        `  direct mode: ${percent(sidecarDirect.rps / base.rps)} of the forwarder's throughput (target >= 90%: ${mark(sidecarDirect.rps / base.rps >= 0.9)}); CPU ${num(sidecarDirect.cpuPer1k, 3)} vs ${num(base.cpuPer1k, 3)} CPU-s/1k` +
          (hpm
            ? `; bound: http-proxy-middleware alone ${percent(hpm.rps / base.rps)} at ${num(hpm.cpuPer1k, 3)} CPU-s/1k, direct mode is ${percent(sidecarDirect.rps / hpm.rps)} of it and spends ${num((sidecarDirect.cpuPer1k! - hpm.cpuPer1k!) * 1_000, 1)} µs of CPU per request over it`
            : ''),
      );
    }
    for (const bus of ['embedded', 'redis', 'kafka', 'rabbitmq']) {
      const row = rows.find((r) => r.name === `sidecar shadow ${bus}`);
      if (!row) continue;
      const tp = row.rps / base.rps;
      const added = row.p50 - direct.p50;
      const floorRow = rows.find((r) => r.name === `${bus} adapter alone (floor)`);
      const least = floorRow?.cpuPer1k !== undefined && base.cpuPer1k !== undefined ? base.cpuPer1k + floorRow.cpuPer1k : NaN;
      out(
        `  shadow ${bus}: throughput ${percent(tp)} (>= 70%: ${mark(tp >= 0.7)}), CPU ${num(row.cpuPer1k, 3)} CPU-s/1k (<= 0.2: ${mark((row.cpuPer1k ?? Infinity) <= 0.2)}), ` +
          `added p50 ${num(added, 2)} ms (<= 0.5: ${mark(added <= 0.5)})` +
          (Number.isNaN(least) ? '' : `; floor forwarder + ${bus} adapter alone = ${num(least, 3)} CPU-s/1k, the sidecar spends ${num(row.cpuPer1k! - least, 3)} over it`),
      );
      const oneProcess = rows.find((r) => r.name === `http-proxy-middleware + ${bus} adapter (bound)`);
      if (oneProcess) {
        out(
          `    bound in one process (http-proxy-middleware + ${bus} adapter, nothing else): ${percent(oneProcess.rps / base.rps)} of the forwarder's throughput at ${num(oneProcess.cpuPer1k, 3)} CPU-s/1k` +
            `, p50 +${num(oneProcess.p50 - direct.p50, 2)} ms; the sidecar reaches ${percent(row.rps / oneProcess.rps)} of its throughput and spends ${num((row.cpuPer1k! - oneProcess.cpuPer1k!) * 1_000, 1)} µs of CPU per request more`,
        );
      }
    }
  }
  const bound = rows.find((r) => r.name.startsWith('forwarder + kafkajs'));
  if (base && bound) {
    out(`bound: forwarder + kafkajs in two processes reach ${((bound.rps / base.rps) * 100).toFixed(0)}% of the forwarder's throughput at ${num(bound.cpuPer1k, 3)} CPU-s/1k: no kafkajs-based sidecar does better here`);
  }
  for (const bus of ['embedded', 'kafka']) {
    const plain = rows.find((r) => r.name === `sidecar shadow ${bus}`);
    const signed = rows.find((r) => r.name === `sidecar shadow ${bus}, signed`);
    if (!plain || !signed) continue;
    // CPU-s per 1,000 requests = ms per request; a shadowed call publishes two events (call and observation).
    const extraUsPerRequest = signed.cpuPer1k !== undefined && plain.cpuPer1k !== undefined ? (signed.cpuPer1k - plain.cpuPer1k) * 1_000 : NaN;
    out(
      `identity on ${bus}: signed ${percent(signed.rps / plain.rps)} of unsigned max throughput (${num(signed.rps)} vs ${num(plain.rps)} req/s); ` +
        `p50 ${num(signed.p50, 2)} vs ${num(plain.p50, 2)} ms at 1,000 req/s; CPU ${num(signed.cpuPer1k, 3)} vs ${num(plain.cpuPer1k, 3)} CPU-s/1k = ` +
        `${num(extraUsPerRequest, 1)} µs per request, ${num(extraUsPerRequest / 2, 1)} µs per signed event`,
    );
  }
  const plainEmbedded = rows.find((r) => r.name === 'sidecar shadow embedded');
  const traced = rows.find((r) => r.name === 'sidecar shadow embedded, traced');
  if (plainEmbedded) {
    const micros = await untracedSpanMicros();
    // CPU-s per 1,000 requests = ms per request.
    out(`tracing, no SDK registered: ${num(micros, 3)} µs per shadowed call = ${((micros / 1_000 / plainEmbedded.cpuPer1k!) * 100).toFixed(2)}% of the sidecar's CPU per request (${num(plainEmbedded.cpuPer1k! * 1_000, 1)} µs)`);
    if (traced) out(`tracing with an SDK (batch processor): ${percent(traced.rps / plainEmbedded.rps)} of the untraced max throughput; CPU ${num(traced.cpuPer1k, 3)} vs ${num(plainEmbedded.cpuPer1k, 3)} CPU-s/1k`);
  }
  const rpcPlain = rows.find((r) => r.name === 'sidecar direct, JSON-RPC body, path flow');
  const rpcDirect = rows.find((r) => r.name === 'sidecar direct, JSON-RPC flows');
  const rpcShadow = rows.find((r) => r.name === 'sidecar shadow embedded, JSON-RPC flows');
  const shadowEmbedded = rows.find((r) => r.name === 'sidecar shadow embedded');
  if (rpcPlain && rpcDirect) {
    // CPU-s per 1,000 requests = ms per request.
    const extraUs = rpcDirect.cpuPer1k !== undefined && rpcPlain.cpuPer1k !== undefined ? (rpcDirect.cpuPer1k - rpcPlain.cpuPer1k) * 1_000 : NaN;
    out(
      `JSON-RPC matching (same ${Buffer.byteLength(RPC_BODY)}-byte body, direct mode): rpc flows ${percent(rpcDirect.rps / rpcPlain.rps)} of the path-only flow's max throughput ` +
        `(${num(rpcDirect.rps)} vs ${num(rpcPlain.rps)} req/s); p50 ${num(rpcDirect.p50, 2)} vs ${num(rpcPlain.p50, 2)} ms at 1,000 req/s; ${num(extraUs, 1)} µs of CPU per request` +
        (rpcShadow && shadowEmbedded ? `; shadow on embedded with rpc flows ${percent(rpcShadow.rps / shadowEmbedded.rps)} of shadow with a path flow` : ''),
    );
  }
  const kafkaRow = rows.find((r) => r.name === 'sidecar shadow kafka');
  const pkRow = rows.find((r) => r.name === 'sidecar shadow kafka, platformatic producer');
  if (kafkaRow && pkRow) {
    out(
      `producer client: sidecar shadow kafka with @platformatic/kafka ${num(pkRow.cpuPer1k, 3)} vs kafkajs ${num(kafkaRow.cpuPer1k, 3)} CPU-s/1k (${percent(pkRow.cpuPer1k! / kafkaRow.cpuPer1k!)}); ` +
        `max throughput ${num(pkRow.rps)} vs ${num(kafkaRow.rps)} req/s (${percent(pkRow.rps / kafkaRow.rps)}); p50 at 1,000 req/s ${num(pkRow.p50, 2)} vs ${num(kafkaRow.p50, 2)} ms`,
    );
  }
  const pkFloor = rows.find((r) => r.name.startsWith('@platformatic/kafka alone'));
  const floor = rows.find((r) => r.name.startsWith('kafkajs alone'));
  if (pkFloor?.cpuPer1k !== undefined && floor?.cpuPer1k !== undefined) {
    // Per-round ratios: both floors ran back to back in every round, so each ratio shares the round's load.
    const ratios = (samples.get(pkFloor.name) ?? []).map((x, i) => x.cpuPer1k! / (samples.get(floor.name) ?? [])[i]!.cpuPer1k!);
    out(
      `kafka clients: @platformatic/kafka alone ${num(pkFloor.cpuPer1k, 3)} vs kafkajs alone ${num(floor.cpuPer1k, 3)} CPU-s per 1,000 calls (median ratio ${percent(pkFloor.cpuPer1k / floor.cpuPer1k)}; per round ${ratios.map((r) => percent(r)).join(', ')})`,
    );
  }
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
  case 'hpm':
    await runProxyMiddleware(Number(process.argv[3]), process.argv[4] ? { json: process.argv[4], suffix: process.argv[5]!, linger: Number(process.argv[6]) } : undefined);
    break;
  case 'sidecar':
    await runSidecarChild(process.argv[3]!, process.argv[4] === 'traced');
    break;
  case 'floor':
    await runFloor(process.argv[3]!, process.argv[4]!, process.argv[5]!, Number(process.argv[6]));
    break;
  default:
    await main();
}
