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
 * generator here. On a small shared machine the absolute numbers are low; read the ratios. Beside the
 * latency, the CPU the two sidecar processes used (user + system, process.cpuUsage) per 1,000 measured
 * requests, so that a latency bought with polling shows its price, and how busy the whole machine was
 * meanwhile (all CPUs, every process: the broker too; Linux only). Each bus row is judged against its
 * target: added p50 <= 1.5 ms on Redis, <= 5 ms on Kafka; no verdict when the direct row itself shows
 * a saturated machine (direct p50 over 10 ms, or errors). The whole measurement runs BENCH_ROUNDS times
 * (default 3) and the verdict per bus is that of its median round (by added p50): on a small shared
 * machine single runs of the same code spread by a factor of 2 or more.
 *
 * In bus mode the caller child also records where each measured call spent its time, from the caller's
 * own clock and the timestamps the reply carries (all processes share one machine clock): the caller
 * registering the call, the bus timestamp of the command (Kafka: when the produce request was encoded;
 * Redis: the entry id), the broker's ack of the command, the callee taking it, the agent's answer, the
 * reply's bus timestamp and the caller getting the reply. Medians per stage are printed per bus.
 *
 * For Kafka, a bound in the same run: a request/reply over kafkajs alone (a responder that answers each
 * command on a reply topic, a caller driving the same rate; the adapter's consumer settings, acks=all, no
 * HTTP, no sidecar). Bus mode cannot add less than that round trip less the local HTTP hop it replaces.
 *
 * Env: BENCH_RATE (default 500), BENCH_SECONDS (default 10), BENCH_ROUNDS (default 3), BENCH_ONLY (redis|kafka), REDIS_URL (default
 * redis://127.0.0.1:6379), KAFKA_BROKERS (default 127.0.0.1:19092), BENCH_BUS (JSON merged into both
 * sidecars' `bus:` config, to try client settings), BENCH_PROF (directory for the children's CPU profiles),
 * BENCH_FROM_SOURCE=1 (run the agent and the sidecars from the TypeScript sources through tsx instead of
 * the compiled dist/, which the run builds first).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import { openLoop, post, type RateResult } from './lib/load.js';
import { buildProduct, product } from './lib/product.js';

const SELF = fileURLToPath(import.meta.url);
const ROLE = process.argv[2];

interface Ready {
  type: 'ready';
  port: number;
  stats?: unknown;
}

/** CPU sampling and the caller's trace, over IPC: the parent brackets the measured part with these. */
type Control = { type: 'stop' } | { type: 'mark' } | { type: 'measure' };
interface Measured {
  type: 'measured';
  /** CPU microseconds (user + system) since the last mark. */
  cpuMicros: number;
  trace?: Trace;
}

/** Medians (ms) of the stages of one bus-mode call, from the caller's trace. */
type Trace = Record<string, number>;

/** Answers `mark` and `measure` for this process (CPU since the last mark, and the trace when given). */
function measureOnRequest(trace?: { start(): void; medians(): Trace }): void {
  let mark = process.cpuUsage();
  process.on('message', (m: Control) => {
    if (m.type === 'mark') {
      mark = process.cpuUsage();
      trace?.start();
    } else if (m.type === 'measure') {
      const d = process.cpuUsage(mark);
      process.send!({ type: 'measured', cpuMicros: d.user + d.system, ...(trace ? { trace: trace.medians() } : {}) } satisfies Measured);
    }
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

/** The stages of a bus-mode call, in path order. */
const STAGES = [
  ['call to command on the bus', 'publish'],
  ['command on the bus to its ack at the caller', 'ack'],
  ['command on the bus to the callee taking it', 'fetch'],
  ['callee taking it to the reply built (dedupe, agent call)', 'handle'],
  ['  of which the agent call', 'agent'],
  ['reply built to the reply on the bus', 'replyPublish'],
  ['reply on the bus to the caller getting it', 'replyFetch'],
  ['call to the caller getting the reply (total)', 'total'],
] as const;

/**
 * Wraps the caller sidecar's reply channel and outbox (both public on the handle) to time each bus-mode
 * call: a bench-only view, the product is not changed for it.
 */
function traceCalls(sc: { replies: { expect: (...a: never[]) => Promise<unknown> }; publisher: { publishDurable: (...a: never[]) => Promise<unknown> } }): { start(): void; medians(): Trace } {
  type Row = { t0: number; acked?: number; got?: number; d?: { publishedAt: number; event: { data?: Record<string, number> } } };
  let recording = false;
  let rows: Row[] = [];
  const byId = new Map<string, Row>();
  const replies = sc.replies as unknown as { expect(id: string, ...rest: unknown[]): Promise<Row['d']> };
  const expect = replies.expect.bind(replies);
  replies.expect = (id: string, ...rest: unknown[]) => {
    const p = expect(id, ...rest);
    if (!recording) return p;
    const row: Row = { t0: Date.now() };
    rows.push(row);
    byId.set(id, row);
    p.then(
      (d) => {
        row.got = Date.now();
        row.d = d;
      },
      () => byId.delete(id),
    );
    return p;
  };
  const outbox = sc.publisher as unknown as { publishDurable(topic: string, m: { event: { id: string } }, o: unknown): Promise<unknown> };
  const publish = outbox.publishDurable.bind(outbox);
  outbox.publishDurable = (topic, m, o) => {
    const p = publish(topic, m, o);
    const row = byId.get(m.event.id);
    if (row) p.then(() => (row.acked = Date.now()), () => undefined);
    return p;
  };
  return {
    start() {
      recording = true;
      rows = [];
      byId.clear();
    },
    medians() {
      recording = false;
      const done = rows.filter((r) => r.got !== undefined && r.acked !== undefined && r.d);
      const col = (f: (r: Required<Row>, x: Record<string, number>) => number): number => median(done.map((r) => f(r as Required<Row>, r.d!.event.data ?? {})));
      const trace: Trace = {
        publish: col((r, x) => x.eventPublishedAt! - r.t0),
        ack: col((r, x) => r.acked - x.eventPublishedAt!),
        fetch: col((_, x) => x.consumedAt! - x.eventPublishedAt!),
        handle: col((_, x) => x.repliedAt! - x.consumedAt!),
        agent: col((_, x) => x.latencyMs!),
        replyPublish: col((r, x) => r.d.publishedAt - x.repliedAt!),
        replyFetch: col((r) => r.got - r.d.publishedAt),
        total: col((r) => r.got - r.t0),
        calls: done.length,
      };
      return trace;
    },
  };
}

/** Child: the inventory agent and the callee sidecar that serves the flow's commands from the bus. */
async function runCallee(configJson: string): Promise<void> {
  const { start } = await product<typeof import('../examples/agents/inventory.js')>('examples/agents/inventory');
  const { startSidecar } = await product<typeof import('../proxy/sidecar.js')>('proxy/sidecar');
  const agent = await start();
  const config = JSON.parse(configJson) as Record<string, unknown>;
  const sc = await startSidecar({ ...config, upstream: agent.url } as never);
  measureOnRequest();
  process.send!({ type: 'ready', port: agent.port } satisfies Ready);
  process.on('message', async (m: Control) => {
    if (m.type === 'stop') {
      await sc.close();
      await agent.close();
      process.exit(0);
    }
  });
}

/** Child: the caller-side sidecar. */
async function runCaller(configJson: string): Promise<void> {
  const { startSidecar } = await product<typeof import('../proxy/sidecar.js')>('proxy/sidecar');
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
  measureOnRequest(traceCalls(sc as never));
  process.send!({ type: 'ready', port: sc.data.port } satisfies Ready);
  process.on('message', async (m: Control) => {
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
  /** Starts a measured stretch: CPU from now (and the caller's trace). */
  mark(): void;
  measure(): Promise<Measured>;
}

async function spawn(role: string, config: unknown): Promise<Child> {
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
  const proc = fork(SELF, [role, JSON.stringify(config)], { execArgv: ['--import', 'tsx', ...prof], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
        proc.send({ type: 'stop' } satisfies Control);
      }),
    mark: () => void proc.send({ type: 'mark' } satisfies Control),
    measure: () =>
      new Promise((resolve) => {
        const on = (m: Measured): void => {
          if (m.type !== 'measured') return;
          proc.off('message', on);
          resolve(m);
        };
        proc.on('message', on);
        proc.send({ type: 'measure' } satisfies Control);
      }),
  };
}

function reserve(agent: http.Agent, port: number, i: number): Promise<number> {
  return post(port, agent, '/reservations', JSON.stringify({ sku: i % 2 ? 'SKU-RED-MUG' : 'SKU-BLUE-MUG', qty: 1, customerId: `cust-${i % 1000}` }));
}

/** Open loop at `rate` req/s after a 2 s warm-up (sockets, JIT, consumer fetch loops). */
function fixedRate(port: number, rate: number, seconds: number, hooks: { onStart(): Promise<void>; onEnd(): Promise<void> }): Promise<RateResult> {
  return openLoop({ rate, seconds, warmUp: rate * 2, send: (agent, i) => reserve(agent, port, i), ...hooks });
}

/** What a kafkajs bound child is told: the broker, its topics, and for the caller the load. */
interface KafkajsBoundSpec {
  brokers: string[];
  commands: string;
  replies: string;
  rate: number;
  seconds: number;
}

/** A kafkajs client and consumer with the adapter's timing settings (maxWaitTimeInMs, session, heartbeat). */
async function kafkajsParts(spec: KafkajsBoundSpec, clientId: string, group: string) {
  const { Kafka, logLevel, Partitioners } = await import('kafkajs');
  const { kafkaBusSchema } = await import('../src/config/bus.js');
  const { consumerTiming } = await import('../src/bus/kafka/subscription.js');
  const t = consumerTiming(kafkaBusSchema.parse({ kind: 'kafka', brokers: spec.brokers }));
  const kafka = new Kafka({ clientId, brokers: spec.brokers, logLevel: logLevel.NOTHING });
  // As the adapter's producer: not idempotent, acks=all on every send, sends of one turn in flight together.
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: t.sessionTimeout, heartbeatInterval: t.heartbeatInterval, rebalanceTimeout: t.rebalanceTimeout, maxWaitTimeInMs: t.maxWaitTimeInMs, allowAutoTopicCreation: false });
  await Promise.all([producer.connect(), consumer.connect()]);
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  return { producer, consumer, joined };
}

/**
 * Child: kafkajs alone answering commands. A consumer in a group reads the command topic and, per batch,
 * sends one reply per command (all of the batch's sends at once, acks=all), then commits; no HTTP, no
 * sidecar, no agent. With the caller below: the least a request/reply over kafkajs with the adapter's
 * consumer settings takes on this broker.
 */
async function runKafkajsResponder(specJson: string): Promise<void> {
  const spec = JSON.parse(specJson) as KafkajsBoundSpec;
  const { producer, consumer, joined } = await kafkajsParts(spec, 'bench-bound-responder', `bench-bound-responder-${spec.commands}`);
  await consumer.subscribe({ topics: [spec.commands], fromBeginning: false });
  await consumer.run({
    eachBatchAutoResolve: false,
    autoCommit: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch, resolveOffset }) => {
      await Promise.all(batch.messages.map((m) => producer.send({ topic: spec.replies, acks: -1, messages: [{ key: m.key, value: m.value }] })));
      for (const m of batch.messages) resolveOffset(m.offset);
      // Not awaited, as the adapter commits in the background of the next fetch.
      void consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }]).catch(() => undefined);
    },
  });
  await joined;
  process.send!({ type: 'ready', port: 0 } satisfies Ready);
  process.on('message', async (m: Control) => {
    if (m.type !== 'stop') return;
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    process.exit(0);
  });
}

/**
 * Child: the caller of the kafkajs bound. Sends `rate` commands per second (open loop, 2 s of warm-up not
 * counted), each keyed like the bench's calls, reads the replies on its own topic with a consumer of the
 * same settings, and reports p50 and p99 of the round trips from each command's scheduled send time.
 */
async function runKafkajsCaller(specJson: string): Promise<void> {
  const spec = JSON.parse(specJson) as KafkajsBoundSpec;
  const { producer, consumer, joined } = await kafkajsParts(spec, 'bench-bound-caller', `bench-bound-caller-${spec.replies}`);
  const sentAt = new Map<string, number>();
  const rtts: number[] = [];
  await consumer.subscribe({ topics: [spec.replies], fromBeginning: false });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const id = message.value?.toString() ?? '';
      const t0 = sentAt.get(id);
      if (t0 === undefined) return;
      sentAt.delete(id);
      // Only the measured commands: late answers to the warm-up do not count.
      if (id.startsWith('m')) rtts.push(performance.now() - t0);
    },
  });
  await joined;
  const run = async (count: number, record: boolean): Promise<void> => {
    const start = performance.now();
    const gap = 1_000 / spec.rate;
    for (let i = 0; i < count; i++) {
      const due = start + i * gap;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const id = `${record ? 'm' : 'w'}${i}`;
      sentAt.set(id, due);
      void producer.send({ topic: spec.commands, acks: -1, messages: [{ key: `cust-${i % 1000}`, value: id }] }).catch(() => undefined);
    }
  };
  await run(spec.rate * 2, false);
  await run(spec.rate * spec.seconds, true);
  const until = Date.now() + 5_000;
  while (rtts.length < spec.rate * spec.seconds && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const sorted = [...rtts].sort((a, b) => a - b);
  const at = (q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  process.send!({ type: 'bound', p50: at(0.5), p99: at(0.99), sent: spec.rate * spec.seconds, answered: rtts.length });
  await consumer.disconnect().catch(() => undefined);
  await producer.disconnect().catch(() => undefined);
  process.exit(0);
}

/**
 * The kafkajs request/reply bound: topics made for it (three partitions, as the bench's bus), a responder
 * child, then a caller child that drives the load and reports.
 */
async function kafkajsBound(brokers: string[], id: string, rate: number, seconds: number): Promise<{ p50: number; p99: number; sent: number; answered: number }> {
  const { Kafka, logLevel } = await import('kafkajs');
  const spec: KafkajsBoundSpec = { brokers, commands: `commands.agent.bound${id}.call`, replies: `cutover.replies.bound${id}`, rate, seconds };
  const admin = new Kafka({ clientId: 'bench-bound-admin', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [spec.commands, spec.replies].map((topic) => ({ topic, numPartitions: 3 })), waitForLeaders: true });
  await admin.disconnect();
  const responder = await spawn('kafkajs-responder', spec);
  const caller = fork(SELF, ['kafkajs-caller', JSON.stringify(spec)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  // The caller reports within its warm-up, its run and 5 s of stragglers; a broker gone silent must not hang the bench.
  const limitMs = (spec.seconds + 2) * 1_000 + 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise((resolve, reject) => {
      caller.on('message', (m: { type: string; p50: number; p99: number; sent: number; answered: number }) => {
        if (m.type === 'bound') resolve(m);
      });
      caller.once('exit', (code) => reject(new Error(`kafkajs bound caller exited with ${code} before reporting`)));
      timer = setTimeout(() => {
        caller.kill('SIGKILL');
        reject(new Error(`kafkajs bound caller did not report within ${limitMs} ms`));
      }, limitMs);
    });
  } finally {
    clearTimeout(timer);
    await responder.stop();
  }
}

/** Added p50 targets per bus, ms. */
const TARGETS: Record<string, number> = { redis: 1.5, kafka: 5 };
/**
 * A direct-mode p50 above this means the machine could not serve the rate even without the bus: the
 * difference between the rows is then queueing on a saturated CPU, and no verdict is given.
 */
const SATURATED_DIRECT_P50 = 10;

/** Busy and total jiffies of all CPUs (Linux /proc/stat); undefined where it cannot be read. */
function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    // idle and iowait
    return { busy: total - fields[3]! - (fields[4] ?? 0), total };
  } catch {
    return undefined;
  }
}

/** Share of the machine's CPUs busy between two readings, in percent (NaN when unknown). */
function busyPercent(from: ReturnType<typeof machineCpu>, to: ReturnType<typeof machineCpu>): number {
  if (!from || !to || to.total === from.total) return NaN;
  return (100 * (to.busy - from.busy)) / (to.total - from.total);
}

interface Row {
  bus: string;
  mode: string;
  p50: number;
  p99: number;
  errors: number;
  sent: number;
  cpu: number;
  /** Percent of the machine's CPUs busy while the row was measured (every process, the broker too). */
  machine: number;
  wrongPath: string | undefined;
}

interface Bound {
  p50: number;
  p99: number;
  sent: number;
  answered: number;
}

interface Settings {
  rate: number;
  seconds: number;
  only: string | undefined;
  redisUrl: string;
  brokers: string[];
  tune: Record<string, unknown>;
  out: (line: string) => void;
}

/** One round: per bus, the direct and the bus rows in front of one agent; for Kafka, then the kafkajs bound. */
async function oneRound(st: Settings): Promise<{ rows: Row[]; traces: Array<{ bus: string; trace: Trace }>; bound: Bound | undefined }> {
  const { rate, seconds, only, redisUrl, brokers, tune, out } = st;
  const rows: Row[] = [];
  const traces: Array<{ bus: string; trace: Trace }> = [];
  for (const kind of ['redis', 'kafka'] as const) {
    if (only && only !== kind) continue;
    const id = randomUUID().replace(/-/g, '').slice(0, 8);
    const agentName = `benchinv${id}`;
    const prefix = `cutover-bench-busmode-${id}:`;
    const bus = { ...(kind === 'redis' ? { kind, url: redisUrl, prefix, blockTime: '1s' } : { kind, brokers, partitions: 3 }), ...tune };
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-bench-busmode-'));
    // A flow name of this run: the flip log is one topic per bus, and a flip of `inventory.reserve` left by
    // anything else on a shared broker would otherwise set this run's mode.
    const flowName = `inventory.reserve-${id}`;
    const flow = (mode: string) => ({ name: flowName, match: { method: 'POST', path: '/reservations' }, topic: `commands.agent.inventory.reserve-${id}`, key: 'body.customerId', mode, timeout: '5s' });
    const base = { agent: agentName, listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0', auth: false }, bus, log: { level: 'warn' } };
    const callee = await spawn('callee', { ...base, dataDir: path.join(dir, 'callee'), flows: [flow('direct')], deliver: { flows: [flowName], concurrency: 64 } });
    try {
      for (const mode of ['direct', 'bus']) {
        const caller = await spawn('caller', { ...base, upstream: `http://127.0.0.1:${callee.port}`, dataDir: path.join(dir, `caller-${mode}`), flows: [flow(mode)] });
        let measured: Measured[] = [];
        let cpuFrom: ReturnType<typeof machineCpu>;
        let cpuTo: ReturnType<typeof machineCpu>;
        const r = await fixedRate(caller.port, rate, seconds, {
          onStart: async () => {
            caller.mark();
            callee.mark();
            cpuFrom = machineCpu();
          },
          onEnd: async () => {
            cpuTo = machineCpu();
            measured = await Promise.all([caller.measure(), callee.measure()]);
          },
        });
        const stats = await caller.stop();
        // Sidecar CPU: the caller's process, plus the callee's less the agent's share when direct (the callee
        // child holds agent and callee sidecar in both modes, so the two rows compare like with like).
        const cpu = ((measured[0]!.cpuMicros + measured[1]!.cpuMicros) / 1_000 / r.sent) * 1_000;
        const machine = busyPercent(cpuFrom, cpuTo);
        // The calls must have taken the path the row names: served from the bus in bus mode, nothing
        // dual-written in direct mode.
        const counted = stats as { busServed?: number; events?: number };
        const wrongPath =
          mode === 'bus' ? ((counted.busServed ?? 0) === 0 ? 'no call was served from the bus' : undefined) : (counted.events ?? 0) > 0 ? `${counted.events} events published in direct mode` : undefined;
        rows.push({ bus: kind, mode, ...r, cpu, machine, wrongPath });
        if (mode === 'bus' && measured[0]!.trace) traces.push({ bus: kind, trace: measured[0]!.trace });
        out(
          `${kind} ${mode}: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.errors} errors of ${r.sent}, CPU ${cpu.toFixed(0)} ms per 1,000 requests (caller sidecar ${(measured[0]!.cpuMicros / r.sent).toFixed(0)}, agent + callee side ${(measured[1]!.cpuMicros / r.sent).toFixed(0)}), machine ${machine.toFixed(0)}% busy; counters ${JSON.stringify(stats)}`,
        );
      }
    } finally {
      await callee.stop();
      await rm(dir, { recursive: true, force: true });
      if (kind === 'redis') await deleteRedisPrefix(redisUrl, prefix).catch(() => undefined);
      else await deleteKafkaTopics(brokers, (t) => t.includes(id)).catch(() => undefined);
    }
  }
  // The bound for Kafka: request/reply over kafkajs alone, with the adapter's consumer settings.
  let bound: Bound | undefined;
  if (!only || only === 'kafka') {
    const id = randomUUID().replace(/-/g, '').slice(0, 8);
    try {
      bound = await kafkajsBound(brokers, id, rate, seconds);
      out(`kafkajs alone, request/reply: p50 ${bound.p50.toFixed(2)} ms, p99 ${bound.p99.toFixed(2)} ms, ${bound.answered} of ${bound.sent} answered`);
    } catch (err) {
      out(`kafkajs alone, request/reply: could not run (${(err as Error).message})`);
    } finally {
      await deleteKafkaTopics(brokers, (t) => t.includes(`bound${id}`)).catch(() => undefined);
    }
  }
  return { rows, traces, bound };
}

/** The verdict of a bus row against its direct row (a row of one round, or the medians over the rounds). */
function verdictOf(r: Row, d: Row): string {
  const added = r.p50 - d.p50;
  const saturated = d.p50 > SATURATED_DIRECT_P50 || d.errors > 0;
  const invalid = r.wrongPath ?? d.wrongPath;
  if (r.mode === 'direct') return r.wrongPath ?? '';
  if (invalid) return `INVALID: ${invalid}`;
  if (saturated) return `NO VERDICT: direct p50 ${d.p50.toFixed(1)} ms > ${SATURATED_DIRECT_P50} ms or direct errors, the machine is saturated`;
  return `${added <= TARGETS[r.bus]! && r.errors === 0 ? 'PASS' : 'MISS'} (added p50 <= ${TARGETS[r.bus]} ms)`;
}

async function main(): Promise<void> {
  // The agent and the sidecars run the compiled code (see product()): build it from the sources of this checkout.
  buildProduct();
  const st: Settings = {
    rate: Number(process.env.BENCH_RATE ?? 500),
    seconds: Number(process.env.BENCH_SECONDS ?? 10),
    only: process.env.BENCH_ONLY,
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(','),
    tune: process.env.BENCH_BUS ? (JSON.parse(process.env.BENCH_BUS) as Record<string, unknown>) : {},
    out: (line: string): void => void process.stdout.write(line + '\n'),
  };
  const { rate, seconds, out } = st;
  const roundCount = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
  const rounds: Array<Awaited<ReturnType<typeof oneRound>>> = [];
  for (let i = 0; i < roundCount; i++) {
    out(`round ${i + 1} of ${roundCount}`);
    rounds.push(await oneRound(st));
  }
  out('');
  out(`bus mode vs direct mode, POST /reservations at ${rate} req/s for ${seconds} s (open loop), ${roundCount} round(s)${process.env.BENCH_BUS ? `, bus ${process.env.BENCH_BUS}` : ''}`);
  out('| round | bus | mode | p50 ms | p99 ms | errors | p50 ratio | p99 ratio | added p50 ms | added p99 ms | sidecar CPU ms / 1k req | CPU ratio | machine busy | target |');
  out('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  rounds.forEach(({ rows }, i) => {
    for (const r of rows) {
      const d = rows.find((x) => x.bus === r.bus && x.mode === 'direct')!;
      out(
        `| ${i + 1} | ${r.bus} | ${r.mode} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors}/${r.sent} | ${(r.p50 / d.p50).toFixed(2)} | ${(r.p99 / d.p99).toFixed(2)} | ${(r.p50 - d.p50).toFixed(2)} | ${(r.p99 - d.p99).toFixed(2)} | ${r.cpu.toFixed(0)} | ${(r.cpu / d.cpu).toFixed(2)} | ${r.machine.toFixed(0)}% | ${verdictOf(r, d)} |`,
      );
    }
  });
  // The verdict: the median round of each bus (by added p50), so that one lucky or unlucky round on a
  // shared machine does not decide it; every round is in the table above.
  out('');
  out(`verdict per bus: the round with the median added p50 (of ${roundCount})`);
  out('| bus | added p50 ms, each round | median round: added p50 ms | added p99 ms | sidecar CPU ratio | machine busy (bus row) | target |');
  out('|---|---|---:|---:|---:|---:|---|');
  const medianRounds: Record<string, { r: Row; d: Row }> = {};
  for (const bus of ['redis', 'kafka']) {
    const pairs = rounds
      .map(({ rows }) => ({ r: rows.find((x) => x.bus === bus && x.mode === 'bus'), d: rows.find((x) => x.bus === bus && x.mode === 'direct') }))
      .filter((p): p is { r: Row; d: Row } => p.r !== undefined && p.d !== undefined);
    if (pairs.length === 0) continue;
    const sorted = [...pairs].sort((a, b) => a.r.p50 - a.d.p50 - (b.r.p50 - b.d.p50));
    const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
    medianRounds[bus] = mid;
    // A round whose calls took the wrong path makes the whole verdict invalid, whatever its latency.
    const wrong = pairs.find((p) => p.r.wrongPath ?? p.d.wrongPath);
    const verdict = wrong ? `INVALID: ${wrong.r.wrongPath ?? wrong.d.wrongPath}` : verdictOf(mid.r, mid.d);
    out(
      `| ${bus} | ${pairs.map((p) => (p.r.p50 - p.d.p50).toFixed(2)).join(', ')} | ${(mid.r.p50 - mid.d.p50).toFixed(2)} | ${(mid.r.p99 - mid.d.p99).toFixed(2)} | ${(mid.r.cpu / mid.d.cpu).toFixed(2)} | ${mid.r.machine.toFixed(0)}% | ${verdict} |`,
    );
  }
  const bounds = rounds.map((r) => r.bound).filter((b): b is Bound => b !== undefined);
  const kafka = medianRounds.kafka;
  if (bounds.length > 0 && kafka) {
    const boundP50 = median(bounds.map((b) => b.p50));
    const added = kafka.r.p50 - kafka.d.p50;
    out('');
    out(
      `bound: a request/reply over kafkajs alone (the adapter's consumer settings, acks=all, no HTTP, no sidecar) takes ${boundP50.toFixed(2)} ms at the median of its rounds (${bounds.map((b) => b.p50.toFixed(2)).join(', ')}) at ${rate} req/s; ` +
        `bus mode on Kafka adds ${added.toFixed(2)} ms over direct in its median round, ${(added - boundP50).toFixed(2)} ms over that round trip; ` +
        `target ${TARGETS.kafka} ms: ${boundP50 > TARGETS.kafka! ? 'out of reach for any kafkajs-based request/reply with these settings' : 'within reach of kafkajs'}`,
    );
  }
  // Stage medians of every traced bus-mode call, over all rounds.
  const traces = rounds.flatMap((r) => r.traces);
  const buses = [...new Set(traces.map((t) => t.bus))];
  if (buses.length > 0) {
    out('');
    out('where a bus-mode call spends its time (median ms per stage, caller trace, the median over the rounds; clocks of one machine, 1 ms resolution)');
    out(`| stage | ${buses.join(' | ')} |`);
    out(`|---|${buses.map(() => '---:').join('|')}|`);
    const of = (bus: string, key: string): number => median(traces.filter((t) => t.bus === bus).map((t) => t.trace[key] ?? NaN));
    for (const [label, key] of STAGES) out(`| ${label} | ${buses.map((b) => of(b, key).toFixed(1)).join(' | ')} |`);
    out(`| calls traced | ${buses.map((b) => String(traces.filter((t) => t.bus === b).reduce((n, t) => n + (t.trace.calls ?? 0), 0))).join(' | ')} |`);
  }
}

/** The children's entry points, by the role this file is forked with; no role: the bench itself. */
const roles: Record<string, (arg: string) => Promise<void>> = {
  callee: runCallee,
  caller: runCaller,
  'kafkajs-responder': runKafkajsResponder,
  'kafkajs-caller': runKafkajsCaller,
};
const role = ROLE === undefined ? undefined : roles[ROLE];
if (role) await role(process.argv[3]!);
else await main();
