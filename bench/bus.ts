/**
 * Bus throughput, every adapter in one run: `npm run bench:bus` (KAFKA_BROKERS / REDIS_URL / RABBITMQ_URL as
 * for the tests; start Kafka with `npm run kafka:start`). Adapters whose server is unreachable are reported and skipped.
 *
 * For each adapter it measures, with ~1 KB CloudEvents:
 *   raw      the vendor client alone writing the same bytes the same way (the baseline, same run); on
 *            RabbitMQ amqplib on a confirm channel into one stream queue, the queue cutover's publish
 *            writes to while no group exists, each batch awaited until RabbitMQ confirmed it
 *   publish  cutover's Bus.publish (batches of BATCH, INFLIGHT calls in flight)
 *   drain    a subscriber consuming a pre-filled topic
 *   e2e      publish and consume at once: time until the last event is handled
 * and prints events/s with ratios: publish vs raw, and each figure vs the goals (20k/s publish, 10k/s consume).
 *
 * Identity (agent signatures, src/bus/signed-bus.ts), in the same run: the Ed25519 sign and verify cost per
 * event alone (µs, no bus), then per adapter `publish` and `drain` again through `signedBus` (signing every
 * event on publish, verifying every delivery before the handler), each beside the unsigned figure above:
 * the ratio, and the µs per event signing or verifying adds to the adapter's own cost. BENCH_SIGNED=0 skips it.
 *
 * `kafka-platformatic` (not in the default list) is the Kafka bus with `client.producer: platformatic`; its raw
 * baseline is @platformatic/kafka alone, the same way (acks=all, not idempotent, same records). Run it beside
 * `kafka` in both orders (BENCH_ADAPTERS=kafka,kafka-platformatic, then the other way round) to compare clients.
 *
 * Env: BENCH_EVENTS (default 50000), BENCH_BATCH (200), BENCH_INFLIGHT (16), BENCH_ADAPTERS
 * (embedded,redis,kafka,rabbitmq; kafka-platformatic on request).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { compatibilityPartitioner, ProduceAcks, Producer, stringSerializers } from '@platformatic/kafka';
import { Kafka, logLevel } from 'kafkajs';
import { createBus, type Bus, type BusConfigInput, type BusMessage } from '../src/bus/index.js';
import { buildEvent, serializeEvent } from '../src/events/cloudevent.js';
import { deleteRedisPrefix } from '../src/bus/redis/maintenance.js';
import { deleteKafkaTopics } from '../src/bus/kafka/maintenance.js';
import { deleteRabbitObjects } from '../src/bus/rabbitmq/maintenance.js';
import type { RabbitmqBus } from '../src/bus/rabbitmq/rabbitmq-bus.js';
import { signedBus } from '../src/bus/signed-bus.js';
import { signEvent, verifyEvent, type Signer, type Trust } from '../src/events/signature.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 50_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 16);
const ADAPTERS = (process.env.BENCH_ADAPTERS ?? 'embedded,redis,kafka,rabbitmq').split(',');
const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672/';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KAFKA = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const GOAL_PUBLISH = 20_000;
const GOAL_CONSUME = 10_000;
const SIGNED = process.env.BENCH_SIGNED !== '0';

/** A fresh Ed25519 identity for the run: the producer's signer and a consumer trust holding its public key. */
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const SIGNER: Signer = { agent: 'bench', keyId: 'bench-1', key: privateKey };
const TRUST: Trust = { keys: new Map([['bench', new Map([['bench-1', publicKey]])]]), allowUnsigned: new Set(), enforce: true };

function messages(n: number): BusMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `sku-${i % 64}`,
    event: buildEvent({ source: '/agents/bench', type: 'bench.event', data: { n: i, payload: 'x'.repeat(820) } }),
  }));
}

const SAMPLE = messages(EVENTS);
const EVENT_BYTES = Buffer.byteLength(serializeEvent(SAMPLE[0]!.event));

/** Runs `work` over batches with at most INFLIGHT in flight; returns events/s. */
async function pump(all: BusMessage[], work: (batch: BusMessage[]) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < all.length) {
      const batch = all.slice(next, next + BATCH);
      next += BATCH;
      await work(batch);
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  return all.length / ((performance.now() - started) / 1000);
}

async function consume(bus: Bus, topic: string, expected: number, publish?: () => Promise<unknown>): Promise<number> {
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const started = performance.now();
  const sub = await bus.subscribe({
    group: `bench-${randomUUID()}`,
    topics: [topic],
    concurrency: 16,
    handler: async () => {
      seen += 1;
      if (seen === expected) done();
    },
  });
  const t0 = publish ? performance.now() : started;
  await Promise.all([publish?.(), finished]);
  const rate = expected / ((performance.now() - t0) / 1000);
  await sub.close();
  return rate;
}

interface Row { adapter: string; raw?: number; publish?: number; drain?: number; e2e?: number; signedPublish?: number; signedDrain?: number; note?: string }

/** Sign and verify cost alone, µs per event, over the sample's events (one warm-up pass first). */
function cryptoCost(): { signUs: number; verifyUs: number } {
  const topic = 'bench.identity';
  const events = SAMPLE.slice(0, Math.min(SAMPLE.length, 20_000)).map((m) => m.event);
  events.slice(0, 1_000).forEach((e) => verifyEvent(signEvent(e, topic, SIGNER), topic, TRUST));
  let t0 = performance.now();
  const signed = events.map((e) => signEvent(e, topic, SIGNER));
  const signUs = ((performance.now() - t0) * 1_000) / events.length;
  t0 = performance.now();
  for (const e of signed) if (verifyEvent(e, topic, TRUST) !== 'ok') throw new Error('bench: a signed event did not verify');
  const verifyUs = ((performance.now() - t0) * 1_000) / events.length;
  return { signUs, verifyUs };
}

async function rawBaseline(kind: string, topic: string, dir: string): Promise<number> {
  if (kind === 'embedded') {
    const db = new Database(path.join(dir, 'raw.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE m (seq INTEGER PRIMARY KEY, topic TEXT, key TEXT, event TEXT, headers TEXT, at INTEGER)');
    const insert = db.prepare('INSERT INTO m (topic, key, event, headers, at) VALUES (?, ?, ?, ?, ?)');
    const tx = db.transaction((batch: BusMessage[]) => {
      for (const m of batch) insert.run(topic, m.key, serializeEvent(m.event), '{}', Date.now());
    });
    const rate = await pump(SAMPLE, async (batch) => tx(batch));
    db.close();
    return rate;
  }
  if (kind === 'redis') {
    const redis = new Redis(REDIS_URL);
    const key = `bench:raw:${topic}`;
    const rate = await pump(SAMPLE, async (batch) => {
      const p = redis.pipeline();
      for (const m of batch) p.xadd(key, 'MAXLEN', '~', '1000000', '*', 'key', m.key ?? '', 'event', serializeEvent(m.event));
      await p.exec();
    });
    await redis.del(key);
    await redis.quit();
    return rate;
  }
  if (kind === 'rabbitmq') {
    const model = await amqp.connect(RABBITMQ_URL);
    const queue = `${topic}.raw`;
    try {
      const ch = await model.createConfirmChannel();
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'stream' } });
      const rate = await pump(SAMPLE, async (batch) => {
        await Promise.all(
          batch.map(
            (m) =>
              new Promise<void>((resolve, reject) => {
                const options = { persistent: true, contentType: 'application/cloudevents+json', messageId: m.event.id, headers: { 'cutover-key': m.key } };
                ch.publish('', queue, Buffer.from(serializeEvent(m.event)), options, (err: unknown) => (err ? reject(new Error('nacked')) : resolve()));
              }),
          ),
        );
      });
      await ch.deleteQueue(queue);
      return rate;
    } finally {
      await model.close();
    }
  }
  const kafka = new Kafka({ brokers: KAFKA, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: `${topic}.raw`, numPartitions: 6 }], waitForLeaders: true });
  let rate: number;
  if (kind === 'kafka-platformatic') {
    const producer = new Producer({ clientId: 'bench-raw', bootstrapBrokers: KAFKA, serializers: stringSerializers, acks: ProduceAcks.ALL, compression: 'none', partitioner: compatibilityPartitioner });
    rate = await pump(SAMPLE, (batch) => producer.send({ acks: ProduceAcks.ALL, messages: batch.map((m) => ({ topic: `${topic}.raw`, key: m.key ?? undefined, value: serializeEvent(m.event) })) }));
    await producer.close();
  } else {
    const producer = kafka.producer();
    await producer.connect();
    rate = await pump(SAMPLE, (batch) => producer.send({ topic: `${topic}.raw`, acks: -1, messages: batch.map((m) => ({ key: m.key, value: serializeEvent(m.event) })) }));
    await producer.disconnect();
  }
  await admin.deleteTopics({ topics: [`${topic}.raw`] }).catch(() => undefined);
  await admin.disconnect();
  return rate;
}

async function benchAdapter(kind: string, dir: string): Promise<Row> {
  const prefix = `bench:${randomUUID().slice(0, 8)}:`;
  const topic = `bench.${kind}.${randomUUID().slice(0, 8)}`;
  const config: BusConfigInput =
    kind === 'embedded' ? { kind: 'embedded', path: path.join(dir, 'bus.db') }
      : kind === 'redis' ? { kind: 'redis', url: REDIS_URL, prefix }
        : kind === 'rabbitmq' ? { kind: 'rabbitmq', url: RABBITMQ_URL, prefix: `bench-${prefix.slice(6, 14)}` }
          : kind === 'kafka-platformatic' ? { kind: 'kafka', brokers: KAFKA, client: { producer: 'platformatic' } }
            : { kind: 'kafka', brokers: KAFKA };
  const bus = await createBus(config);
  try {
    await bus.start();
  } catch (err) {
    return { adapter: kind, note: `skipped: ${(err as Error).message.split('\n')[0]}` };
  }
  try {
    const raw = await rawBaseline(kind, topic, dir);
    const publish = await pump(SAMPLE, (batch) => bus.publish(topic, batch));
    const drain = await consume(bus, topic, EVENTS);
    const topic2 = `${topic}.e2e`;
    const e2e = await consume(bus, topic2, EVENTS, () => pump(SAMPLE, (batch) => bus.publish(topic2, batch)));
    if (!SIGNED) return { adapter: kind, raw, publish, drain, e2e };
    // The same bus, wrapped as the sidecar and every consumer wrap it when identity and trust are configured.
    const signed = signedBus(bus, { signer: SIGNER, trust: TRUST });
    const topic3 = `${topic}.signed`;
    const signedPublish = await pump(SAMPLE, (batch) => signed.publish(topic3, batch));
    const signedDrain = await consume(signed, topic3, EVENTS);
    return { adapter: kind, raw, publish, drain, e2e, signedPublish, signedDrain };
  } finally {
    // AMQP cannot list a vhost: the RabbitMQ bus names what it declared.
    const declared = kind === 'rabbitmq' ? (bus as RabbitmqBus).declaredNames() : undefined;
    await bus.close();
    if (declared) await deleteRabbitObjects(RABBITMQ_URL, declared).catch(() => undefined);
    await cleanup(kind, prefix, [topic, `${topic}.e2e`, `${topic}.signed`]);
  }
}

/** Leaves the shared servers as it found them. */
async function cleanup(kind: string, prefix: string, topics: string[]): Promise<void> {
  if (kind === 'redis') {
    await deleteRedisPrefix(REDIS_URL, prefix);
  } else if (kind.startsWith('kafka')) {
    await deleteKafkaTopics(KAFKA, (t) => topics.includes(t)).catch(() => undefined);
  }
}

const fmt = (n: number | undefined): string => (n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const ratio = (a: number | undefined, b: number): string => (a === undefined ? '-' : `${(a / b).toFixed(2)}x`);

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-bench-'));
const rows: Row[] = [];
const crypto = SIGNED ? cryptoCost() : undefined;
try {
  for (const kind of ADAPTERS) {
    process.stderr.write(`benchmarking ${kind}...\n`);
    rows.push(await benchAdapter(kind, dir));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\nbus throughput: ${EVENTS.toLocaleString('en-US')} events of ${EVENT_BYTES} bytes, batches of ${BATCH}, ${INFLIGHT} publishes in flight, ${os.cpus().length} cores`);
console.log('adapter   | raw client/s | publish/s | vs raw | vs 20k goal | drain/s | e2e/s  | vs 10k goal (e2e)');
for (const r of rows) {
  if (r.note) {
    console.log(`${r.adapter.padEnd(9)} | ${r.note}`);
    continue;
  }
  console.log(
    `${r.adapter.padEnd(9)} | ${fmt(r.raw).padStart(12)} | ${fmt(r.publish).padStart(9)} | ${ratio(r.publish, r.raw!).padStart(6)} | ${ratio(r.publish, GOAL_PUBLISH).padStart(11)} | ${fmt(r.drain).padStart(7)} | ${fmt(r.e2e).padStart(6)} | ${ratio(r.e2e, GOAL_CONSUME)}`,
  );
}
if (crypto) {
  /** Extra µs per event of the signed rate over the unsigned one (1/rate is the cost per event). */
  const extraUs = (signed: number | undefined, plain: number | undefined): string => (signed === undefined || plain === undefined ? '-' : `${(1e6 / signed - 1e6 / plain).toFixed(1)}`);
  console.log(`\nidentity (Ed25519, src/bus/signed-bus.ts): sign ${crypto.signUs.toFixed(1)} µs/event, verify ${crypto.verifyUs.toFixed(1)} µs/event on one core, no bus`);
  console.log('adapter   | publish/s | signed/s  | ratio | +µs/event | drain/s | verified/s | ratio | +µs/event');
  for (const r of rows) {
    if (r.note || r.signedPublish === undefined) continue;
    console.log(
      `${r.adapter.padEnd(9)} | ${fmt(r.publish).padStart(9)} | ${fmt(r.signedPublish).padStart(9)} | ${ratio(r.signedPublish, r.publish!).padStart(5)} | ${extraUs(r.signedPublish, r.publish).padStart(9)} | ${fmt(r.drain).padStart(7)} | ${fmt(r.signedDrain).padStart(10)} | ${ratio(r.signedDrain, r.drain!).padStart(5)} | ${extraUs(r.signedDrain, r.drain).padStart(9)}`,
    );
  }
}
process.exit(0);
