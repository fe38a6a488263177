import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { createBus, dlqTopic, DlqHeaders, type Bus, type BusConfigInput, type Delivery } from '../../../src/bus/index.js';
import { ErrorCodes } from '../../../src/errors.js';
import { buildEvent } from '../../../src/events/cloudevent.js';
import { kafkaBrokers } from '../../helpers/brokers.js';
import { startFaultProxy, type FaultProxy } from '../../helpers/fault-proxy.js';
import { settled, waitFor } from '../../helpers/wait-for.js';

const brokers = kafkaBrokers();
const topicsMade = new Set<string>();

function topicName(): string {
  const t = `test.${randomUUID()}`;
  topicsMade.add(t);
  topicsMade.add(dlqTopic(t));
  return t;
}

function config(extra: Partial<Extract<BusConfigInput, { kind: 'kafka' }>> = {}): BusConfigInput {
  // 6 s: the lowest session timeout a broker accepts by default (group.min.session.timeout.ms).
  return { kind: 'kafka', brokers: brokers!, partitions: 3, sessionTimeout: '6s', topicRefreshInterval: '500ms', publishTimeout: '2s', ...extra };
}

async function openBus(extra: Partial<Extract<BusConfigInput, { kind: 'kafka' }>> = {}, options: Parameters<typeof createBus>[1] = {}): Promise<Bus> {
  const bus = await createBus(config(extra), options);
  onTestFinished(() => bus.close());
  return bus;
}

function event(n: number): ReturnType<typeof buildEvent> {
  return buildEvent({ source: '/agents/test', type: 'test.happened', data: { n } });
}

/** Test-side admin, only to check and clean up what the adapter did; the adapter itself is under test. */
let admin: ReturnType<Kafka['admin']>;

describe.skipIf(!brokers)('kafka bus adapter', () => {
  beforeAll(async () => {
    admin = new Kafka({ brokers: brokers!, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
  });

  afterAll(async () => {
    if (!admin) return;
    const existing = new Set(await admin.listTopics());
    const mine = [...topicsMade].filter((t) => existing.has(t));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => undefined);
    await admin.disconnect();
  });

  it('creates topics on demand with the configured partitions and round-trips a message', async () => {
    const bus = await openBus({ partitions: 4 });
    await bus.start();
    const topic = topicName();
    const ev = event(1);
    await bus.publish(topic, [{ key: 'k1', event: ev, headers: { 'x-trace': 'abc' } }]);

    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(meta.topics[0]!.partitions).toHaveLength(4);

    const got: Delivery[] = [];
    const sub = await bus.subscribe({ group: `g.${randomUUID()}`, topics: [topic], handler: async (d) => void got.push(d) });
    onTestFinished(() => sub.close());
    await waitFor(() => got.length === 1, { what: 'the delivery' });
    const d = got[0]!;
    expect(d.event).toEqual(JSON.parse(JSON.stringify(ev)));
    expect(d).toMatchObject({ topic, key: 'k1', headers: { 'x-trace': 'abc' }, attempt: 1 });
    expect(d.position).toMatch(/^\d+:\d+$/);
    expect(Math.abs(d.publishedAt - Date.now())).toBeLessThan(60_000);
  });

  it('creates a missing exact topic on subscribe, and delivers what is published after subscribe resolves', async () => {
    const bus = await openBus();
    const topic = topicName();
    const got: number[] = [];
    const sub = await bus.subscribe({ group: `g.${randomUUID()}`, topics: [topic], from: 'end', handler: async (d) => void got.push((d.event.data as { n: number }).n) });
    onTestFinished(() => sub.close());
    expect(await admin.listTopics()).toContain(topic);
    await bus.publish(topic, [{ key: null, event: event(7) }]);
    await waitFor(() => got.length === 1, { what: 'the delivery' });
    expect(got).toEqual([7]);
  });

  it('shares partitions between two consumers of one group, each message handled once', async () => {
    const topic = topicName();
    const group = `g.${randomUUID()}`;
    const [a, b] = [await openBus({ partitions: 4 }), await openBus({ partitions: 4 })];
    const seen = { a: [] as string[], b: [] as string[] };
    const subA = await a.subscribe({ group, topics: [topic], concurrency: 2, handler: async (d) => void seen.a.push(d.event.id) });
    const subB = await b.subscribe({ group, topics: [topic], concurrency: 2, handler: async (d) => void seen.b.push(d.event.id) });
    onTestFinished(async () => {
      await subA.close();
      await subB.close();
    });
    // Both joined: the group now has two members with partitions each.
    const description = await waitFor(async () => {
      const { groups } = await admin.describeGroups([group]);
      const g = groups[0];
      return g && g.state === 'Stable' && g.members.length === 2 ? g : undefined;
    }, { what: 'a stable group of two' });
    expect(description.members).toHaveLength(2);

    const messages = Array.from({ length: 200 }, (_, i) => ({ key: `key-${i % 20}`, event: event(i) }));
    await a.publish(topic, messages);
    await waitFor(() => seen.a.length + seen.b.length >= 200, { timeoutMs: 20_000, what: 'all 200 handled' });
    expect(seen.a.length).toBeGreaterThan(0);
    expect(seen.b.length).toBeGreaterThan(0);
    const all = [...seen.a, ...seen.b];
    expect(new Set(all).size).toBe(200);
    expect(all).toHaveLength(200);
  });

  it('commits handled offsets after a batch without a later batch to carry them, so a restarted group resumes after them', async () => {
    const topic = topicName();
    const group = `g.${randomUUID()}`;
    const bus = await openBus();
    const first: string[] = [];
    const sub = await bus.subscribe({ group, topics: [topic], concurrency: 4, handler: async (d) => void first.push(d.event.id) });
    await bus.publish(topic, Array.from({ length: 30 }, (_, i) => ({ key: `key-${i % 6}`, event: event(i) })));
    await waitFor(() => first.length >= 30, { what: 'all 30 handled' });
    // Nothing more is published: the commit sent after the last batch must land on its own.
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high]));
    await waitFor(async () => {
      const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      return offsets!.partitions.every((p) => p.offset === ends.get(p.partition) || ends.get(p.partition) === '0') ? true : undefined;
    }, { what: 'the group committed every partition to its end' });
    await sub.close();

    const second: string[] = [];
    await bus.subscribe({ group, topics: [topic], concurrency: 4, handler: async (d) => void second.push(d.event.id) });
    // One new message per key of the first round: every partition that held old messages gets one, and a
    // partition delivers in order, so an old message handed out again would come before its new one.
    const fresh = Array.from({ length: 6 }, (_, i) => ({ key: `key-${i}`, event: event(30 + i) }));
    await bus.publish(topic, fresh);
    await waitFor(() => fresh.every((m) => second.includes(m.event.id)), { what: 'the new messages' });
    expect([...second].sort()).toEqual(fresh.map((m) => m.event.id).sort());
  });

  it('keeps per-key order and micro-batches concurrent publishes to several topics', async () => {
    const bus = await openBus({ linger: '5ms' });
    const [t1, t2] = [topicName(), topicName()];
    const calls = [];
    for (let i = 0; i < 50; i += 1) {
      const topic = i % 2 === 0 ? t1 : t2;
      calls.push(bus.publish(topic, Array.from({ length: 10 }, (_, j) => ({ key: `k${j % 3}`, event: event(i * 10 + j) }))));
    }
    await Promise.all(calls);
    const perKey = new Map<string, number[]>();
    const sub = await bus.subscribe({
      group: `g.${randomUUID()}`,
      topics: [t1, t2],
      concurrency: 4,
      handler: async (d) => {
        const k = `${d.topic}/${d.key}`;
        perKey.set(k, [...(perKey.get(k) ?? []), (d.event.data as { n: number }).n]);
      },
    });
    onTestFinished(() => sub.close());
    await waitFor(() => [...perKey.values()].reduce((n, l) => n + l.length, 0) === 500, { what: '500 deliveries' });
    for (const list of perKey.values()) expect(list).toEqual([...list].sort((x, y) => x - y));
  });

  it('picks up a topic created after a pattern subscription, from its start', async () => {
    const bus = await openBus();
    const base = `test.${randomUUID()}`;
    const got: string[] = [];
    const sub = await bus.subscribe({ group: `g.${randomUUID()}`, topics: [`${base}.*`], handler: async (d) => void got.push(d.topic) });
    onTestFinished(() => sub.close());
    const topic = `${base}.new`;
    topicsMade.add(topic);
    await bus.publish(topic, [{ key: null, event: event(1) }]);
    await bus.publish(dlqTopic(`${base}`), [{ key: null, event: event(2) }]);
    topicsMade.add(dlqTopic(base));
    await waitFor(() => got.length >= 1, { timeoutMs: 15_000, what: 'the new topic delivered' });
    expect(got).toEqual([topic]);
  });

  it('retries a failing handler, then dead-letters with the DLQ headers and moves on', async () => {
    const bus = await openBus();
    const topic = topicName();
    const attempts: number[] = [];
    const group = `g.${randomUUID()}`;
    const sub = await bus.subscribe({
      group,
      topics: [topic],
      maxAttempts: 3,
      backoff: { initialMs: 10 },
      handler: async (d) => {
        attempts.push(d.attempt);
        throw new Error('always');
      },
    });
    onTestFinished(() => sub.close());
    const ev = event(1);
    await bus.publish(topic, [{ key: 'only', event: ev }]);
    const dead = await waitFor(async () => {
      const out: Delivery[] = [];
      for await (const d of bus.read(dlqTopic(topic), { from: 'start', follow: false })) out.push(d);
      return out.length > 0 ? out : undefined;
    }, { timeoutMs: 15_000, intervalMs: 200, what: 'the dead letter' });
    expect(attempts).toEqual([1, 2, 3]);
    expect(dead[0]!.event).toEqual(JSON.parse(JSON.stringify(ev)));
    expect(dead[0]!.key).toBe('only');
    expect(dead[0]!.headers).toMatchObject({ [DlqHeaders.attempts]: '3', [DlqHeaders.originalTopic]: topic, [DlqHeaders.group]: group, [DlqHeaders.errorMessage]: 'always' });
  });

  it('reads a topic to its end without a group, and follows from the end', async () => {
    const bus = await openBus({ partitions: 1 });
    const topic = topicName();
    await bus.publish(topic, Array.from({ length: 30 }, (_, i) => ({ key: 'log', event: event(i) })));
    const all: number[] = [];
    for await (const d of bus.read(topic, { from: 'start', follow: false })) all.push((d.event.data as { n: number }).n);
    expect(all).toEqual(Array.from({ length: 30 }, (_, i) => i));

    const empty: Delivery[] = [];
    for await (const d of bus.read(topicName(), { from: 'start', follow: false })) empty.push(d);
    expect(empty).toEqual([]);

    // A publish right after read() belongs to the follower, however fast it lands: often within the same
    // millisecond, so several rounds give that case its chance.
    for (let round = 0; round < 8; round++) {
      const follower = bus.read(topic, { from: 'end', follow: true });
      const tail: number[] = [];
      const consumed = (async () => {
        for await (const d of follower) {
          tail.push((d.event.data as { n: number }).n);
          if (tail.length === 2) break;
        }
      })();
      const first = 100 + 2 * round;
      await bus.publish(topic, [{ key: 'log', event: event(first) }, { key: 'log', event: event(first + 1) }]);
      await settled(consumed, { timeoutMs: 20_000, what: `round ${round}: the follower to see both new messages` });
      expect(tail).toEqual([first, first + 1]);
    }
  });

  it('rejects invalid topics and oversized messages without publishing anything', async () => {
    const bus = await openBus({ maxMessageBytes: 1_000 });
    await expect(bus.publish('bad topic', [{ key: null, event: event(1) }])).rejects.toMatchObject({ code: ErrorCodes.TOPIC_INVALID });
    const topic = topicName();
    const big = buildEvent({ source: '/agents/test', type: 't', data: 'x'.repeat(2_000) });
    await expect(bus.publish(topic, [{ key: null, event: event(1) }, { key: null, event: big }])).rejects.toMatchObject({ code: ErrorCodes.MESSAGE_TOO_LARGE });
    expect(await admin.listTopics()).not.toContain(topic);
    await expect(bus.subscribe({ group: 'g', topics: ['a.#.b'], handler: async () => undefined })).rejects.toMatchObject({ code: ErrorCodes.TOPIC_INVALID });
  });

  it('creates topics with bus.minInsyncReplicas, and refuses a replication factor the cluster cannot hold with CUTOVER_BUS_MISCONFIGURED', async () => {
    const bus = await openBus({ replicationFactor: 1, minInsyncReplicas: 1 });
    await bus.start();
    const topic = topicName();
    await bus.publish(topic, [{ key: 'k', event: event(1) }]);
    const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topic, configNames: ['min.insync.replicas'] }] });
    // Set on the topic itself, not inherited from the broker's default.
    expect(resources[0]!.configEntries[0]).toMatchObject({ configName: 'min.insync.replicas', configValue: '1', isDefault: false });

    const { brokers: live } = await admin.describeCluster();
    const tooMany = await openBus({ replicationFactor: live.length + 1 });
    await tooMany.start();
    const err = await tooMany.publish(topicName(), [{ key: 'k', event: event(2) }]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_MISCONFIGURED, retriable: false });
    expect((err as Error).message).toContain('bus.replicationFactor');
  });

  it('close is idempotent; publish after close rejects with CUTOVER_BUS_CLOSED', async () => {
    const bus = await createBus(config());
    const sub = await bus.subscribe({ group: `g.${randomUUID()}`, topics: [topicName()], handler: async () => undefined });
    await sub.close();
    await sub.close();
    await bus.close();
    await bus.close();
    await expect(bus.publish(topicName(), [{ key: null, event: event(1) }])).rejects.toMatchObject({ code: ErrorCodes.BUS_CLOSED });
  });

  it('the platformatic producer puts every key on the partition the kafkajs producer (Java murmur2) puts it on', async () => {
    const keys = ['SKU-RED-MUG', 'SKU-BLUE-MUG', 'cust-42', '21', 'héllo', ...Array.from({ length: 40 }, () => randomUUID())];
    const partitionsOf = async (producer: 'kafkajs' | 'platformatic'): Promise<Map<string, string>> => {
      const bus = await openBus({ partitions: 6, client: { producer } });
      const topic = topicName();
      await bus.publish(topic, keys.map((key, n) => ({ key, event: event(n) })));
      const out = new Map<string, string>();
      for await (const d of bus.read(topic, { from: 'start', follow: false })) out.set(d.key!, d.position.split(':')[0]!);
      return out;
    };
    const viaKafkajs = await partitionsOf('kafkajs');
    const viaPlatformatic = await partitionsOf('platformatic');
    expect(viaPlatformatic.size).toBe(keys.length);
    expect(viaPlatformatic).toEqual(viaKafkajs);
    // Both sides spread the keys: the comparison is not between two constant partitions.
    expect(new Set(viaKafkajs.values()).size).toBeGreaterThan(1);
  });

  it('the platformatic producer fails start() fast with CUTOVER_BUS_UNAVAILABLE, and refuses a connection hook it could not honour', async () => {
    const port = await freePort();
    const bus = await createBus({ kind: 'kafka', brokers: [`127.0.0.1:${port}`], connectionTimeout: '300ms', publishTimeout: '1s', client: { producer: 'platformatic' } });
    onTestFinished(() => bus.close());
    const err = await settled(bus.start(), { timeoutMs: 10_000, what: 'start() to fail' });
    expect(err).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    const hooked = await createBus(config({ client: { producer: 'platformatic' } }), { connect: (host, p) => net.connect(p, host) }).catch((e: unknown) => e);
    expect(hooked).toMatchObject({ code: ErrorCodes.BUS_MISCONFIGURED });
    expect((hooked as Error).message).toContain('bus.client.producer');
  });

  it('start() fails fast with CUTOVER_BUS_UNAVAILABLE naming the brokers when none answers', async () => {
    const port = await freePort();
    const bus = await createBus({ kind: 'kafka', brokers: [`127.0.0.1:${port}`], connectionTimeout: '300ms', publishTimeout: '1s' });
    onTestFinished(() => bus.close());
    const err = await settled(bus.start(), { timeoutMs: 10_000, what: 'start() to fail' });
    expect(err).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect(await bus.health()).toMatchObject({ ok: false, kind: 'kafka' });
  });

  it('sends kafkajs log lines to the injected pino logger, never to the console', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const consoleCalls = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) => vi.spyOn(console, m));
    onTestFinished(() => consoleCalls.forEach((spy) => spy.mockRestore()));
    const port = await freePort();
    const bus = await createBus({ kind: 'kafka', brokers: [`127.0.0.1:${port}`], connectionTimeout: '300ms', publishTimeout: '1s' }, { logger: pino({ level: 'debug' }, sink) });
    onTestFinished(() => bus.close());
    await bus.start().catch(() => undefined);
    await waitFor(() => lines.some((l) => typeof l.kafkajs === 'string'), { what: 'a kafkajs line in pino' });
    const line = lines.find((l) => typeof l.kafkajs === 'string')!;
    expect(line).toMatchObject({ component: 'kafkajs', bus: 'kafka' });
    for (const spy of consoleCalls) expect(spy).not.toHaveBeenCalled();
  });

  it('rejects with a typed error in bounded time against a broker that accepts but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const blackhole = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      sockets.forEach((s) => s.destroy());
      return new Promise<void>((resolve) => blackhole.close(() => resolve()));
    });
    const { port } = blackhole.address() as net.AddressInfo;
    const bus = await createBus(
      { kind: 'kafka', brokers: ['127.0.0.1:9'], connectionTimeout: '500ms', publishTimeout: '1s' },
      { connect: () => net.connect(port, '127.0.0.1') },
    );
    const startErr = await settled(bus.start(), { timeoutMs: 5_000, what: 'start() to fail' });
    expect([ErrorCodes.BUS_UNAVAILABLE, ErrorCodes.BUS_TIMEOUT]).toContain((startErr as { code: string }).code);
    const err = await settled(bus.publish(topicName(), [{ key: null, event: event(1) }]), { timeoutMs: 3_000, what: 'the publish to fail' });
    expect([ErrorCodes.BUS_UNAVAILABLE, ErrorCodes.BUS_TIMEOUT]).toContain((err as { code: string }).code);
    expect(await bus.health()).toMatchObject({ ok: false });
    await settled(bus.close(), { timeoutMs: 10_000, what: 'close()' });
  });

  it('leaves nothing that keeps the process alive after close()', async () => {
    const root = path.resolve(import.meta.dirname, '../../..');
    const topic = topicName();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'exit-after-close.fixture.ts'), JSON.stringify(config()), topic], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => void (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    await waitFor(() => out.includes('closed'), { timeoutMs: 30_000, what: 'close() in the child' });
    // Exit follows close() at once rather than after some straggling timer.
    const code = await settled(exited, { timeoutMs: 2_000, what: 'the child to exit after close()' });
    expect(code).toBe(0);
  });

  describe('through a relay that the test cuts', () => {
    let relays: Map<string, FaultProxy>;

    beforeAll(async () => {
      relays = new Map();
      // Every broker address the cluster advertises gets its own relay; here that is the one we know.
      for (const address of brokers!) {
        const [host, port] = address.split(':');
        relays.set(address, await startFaultProxy(host!, Number(port)));
      }
    });

    afterAll(async () => {
      await Promise.all([...relays.values()].map((r) => r.close()));
    });

    it('rejects a publish within publishTimeout while the broker is cut off, then recovers on the same bus', async () => {
      const connect = (host: string, port: number): net.Socket => {
        const relay = relays.get(`${host}:${port}`);
        if (!relay) throw new Error(`no relay for ${host}:${port}`);
        return net.connect(relay.port, relay.host);
      };
      const bus = await openBus({ publishTimeout: '2s' }, { connect });
      await bus.start();
      const topic = topicName();
      await bus.publish(topic, [{ key: 'a', event: event(1) }]);
      expect(await bus.health()).toMatchObject({ ok: true });

      for (const r of relays.values()) r.down();
      onTestFinished(() => relays.forEach((r) => r.up()));
      // publishTimeout plus timer slack: the point is that it never hangs.
      const err = await settled(bus.publish(topic, [{ key: 'a', event: event(2) }]), { timeoutMs: 4_000, what: 'the publish to fail' });
      expect(err).toBeDefined();
      expect([ErrorCodes.BUS_UNAVAILABLE, ErrorCodes.BUS_TIMEOUT]).toContain((err as { code: string }).code);
      expect(await bus.health()).toMatchObject({ ok: false });

      for (const r of relays.values()) r.up();
      await waitFor(async () => (await bus.health()).ok, { timeoutMs: 15_000, intervalMs: 200, what: 'health back' });
      await waitFor(() => bus.publish(topic, [{ key: 'a', event: event(3) }]).then(() => true), { timeoutMs: 15_000, intervalMs: 200, what: 'publish back' });
    });

    it('keeps a subscription consuming across an outage', async () => {
      const connect = (host: string, port: number): net.Socket => {
        const relay = relays.get(`${host}:${port}`)!;
        return net.connect(relay.port, relay.host);
      };
      const consumerBus = await openBus({}, { connect });
      const producerBus = await openBus();
      const topic = topicName();
      const got = new Set<number>();
      await consumerBus.subscribe({ group: `g.${randomUUID()}`, topics: [topic], handler: async (d) => void got.add((d.event.data as { n: number }).n) });
      await producerBus.publish(topic, [{ key: 'a', event: event(1) }]);
      await waitFor(() => got.has(1), { what: 'the first delivery' });

      for (const r of relays.values()) r.down();
      onTestFinished(() => relays.forEach((r) => r.up()));
      // Published straight to the broker while the consumer is cut off.
      await producerBus.publish(topic, [{ key: 'a', event: event(2) }]);
      await waitFor(async () => !(await consumerBus.health()).ok, { what: 'the consumer side to notice' });
      for (const r of relays.values()) r.up();
      await producerBus.publish(topic, [{ key: 'a', event: event(3) }]);
      await waitFor(() => got.has(2) && got.has(3), { timeoutMs: 45_000, intervalMs: 200, what: 'deliveries after the outage' });
    });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
