import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CloudEvent } from 'cloudevents';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { CallHeaders, isObservationsTopic, observationsTopicOf } from '../../src/events/wire.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { createBus, type Bus, type BusConfigInput, type CreateBusOptions, type Delivery } from '../../src/bus/index.js';
import { createRegistry } from '../../src/metrics.js';
import { kafkaBrokers, rabbitmqUrl, redisUrl } from '../helpers/brokers.js';
import { deleteRabbitPrefix } from '../helpers/rabbitmq.js';
import { cuttableBus } from '../helpers/fault-proxy.js';
import { deleteKafkaTopics } from '../../src/bus/kafka/maintenance.js';
import { comparableHeaders, request, type RawRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * The sidecar against the real buses (SQLite file, Redis, Kafka, RabbitMQ): events and observations as a bus consumer
 * sees them, and a broker cut mid-traffic at the connection layer.
 */

const SECRET = `Bearer caller-secret-${randomUUID()}`;
const COOKIE = `session=${randomUUID()}`;

interface Target {
  kind: 'embedded' | 'redis' | 'kafka' | 'rabbitmq';
  skip?: string;
  /** Bus config for a fresh, isolated namespace (file, key prefix); `cleanup` removes it. */
  setup(topics: string[]): Promise<{ config: BusConfigInput; cleanup(): Promise<void>; rawContains?(needle: string): Promise<boolean> }>;
  /** The same bus through relays the test can cut. */
  faulty?(config: BusConfigInput): Promise<{ config: BusConfigInput; options?: CreateBusOptions; down(): void; up(): void; close(): Promise<void> }>;
}

const redis = redisUrl();
const brokers = kafkaBrokers();
const rabbit = rabbitmqUrl();

const targets: Target[] = [
  {
    kind: 'embedded',
    async setup() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cutover-e2e-'));
      const file = path.join(dir, 'bus.db');
      return {
        config: { kind: 'embedded', path: file, pollInterval: '10ms' },
        cleanup: () => rm(dir, { recursive: true, force: true }),
        async rawContains(needle) {
          for (const name of await readdir(dir)) if ((await readFile(path.join(dir, name))).includes(needle)) return true;
          return false;
        },
      };
    },
  },
  {
    kind: 'redis',
    ...(redis ? {} : { skip: 'Redis unavailable (see the line printed at start)' }),
    async setup() {
      const prefix = `cutover-e2e-${randomUUID().slice(0, 8)}:`;
      const client = new Redis(redis!);
      const keys = async (): Promise<string[]> => {
        const out: string[] = [];
        let cursor = '0';
        do {
          const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          out.push(...batch);
          cursor = next;
        } while (cursor !== '0');
        return out;
      };
      return {
        config: { kind: 'redis', url: redis!, prefix, blockTime: '200ms', claimIdle: '5s' },
        async cleanup() {
          const all = await keys();
          if (all.length) await client.del(...all);
          await client.quit();
        },
        async rawContains(needle) {
          for (const key of await keys()) {
            if ((await client.type(key)) !== 'stream') continue;
            const entries = await client.xrange(key, '-', '+');
            if (JSON.stringify(entries).includes(needle)) return true;
          }
          return false;
        },
      };
    },
    faulty: cuttableBus,
  },
  {
    kind: 'kafka',
    ...(brokers ? {} : { skip: 'Kafka unavailable (see the line printed at start)' }),
    async setup(topics) {
      return {
        config: { kind: 'kafka', brokers: brokers!, partitions: 3, connectionTimeout: '1s', sessionTimeout: '6s', topicRefreshInterval: '1s' },
        // Every topic is this test's own: its flow topics and their observation topics.
        cleanup: () => deleteKafkaTopics(brokers!, (t) => topics.includes(t)).then(() => undefined),
      };
    },
    faulty: cuttableBus,
  },
  {
    kind: 'rabbitmq',
    ...(rabbit ? {} : { skip: 'RabbitMQ unavailable (see the line printed at start)' }),
    async setup() {
      const prefix = `cutover-e2e-${randomUUID().slice(0, 8)}`;
      return {
        config: { kind: 'rabbitmq', url: rabbit!, prefix, rebalanceInterval: '200ms' },
        cleanup: () => deleteRabbitPrefix(rabbit!, prefix),
      };
    },
    faulty: cuttableBus,
  },
];

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/** What a consumer of the flow topics and the observations sees, for this test's flows only. */
class Collector {
  readonly calls = new Map<string, Delivery[]>();
  readonly observations = new Map<string, Delivery[]>();
  readonly raw: Delivery[] = [];

  constructor(private readonly flowNames: ReadonlySet<string>) {}

  handle = async (d: Delivery): Promise<void> => {
    if (!this.flowNames.has(d.event.cutoverflow ?? '')) return;
    this.raw.push(d);
    const observation = isObservationsTopic(d.topic);
    const map = observation ? this.observations : this.calls;
    const key = observation ? d.event.correlationid! : d.event.id;
    map.set(key, [...(map.get(key) ?? []), d]);
  };

  duplicates(): number {
    let n = 0;
    for (const list of [...this.calls.values(), ...this.observations.values()]) n += list.length - 1;
    return n;
  }
}

async function setupRun(target: Target, options: { faulty?: boolean } = {}) {
  const id = randomUUID().replace(/-/g, '').slice(0, 10);
  const flows = {
    reserve: { name: `inventory.reserve.${id}`, topic: `commands.agent.inventory.reserve-${id}` },
    stock: { name: `inventory.stock.${id}`, topic: `commands.agent.inventory.stock-${id}` },
  };
  const observations = [observationsTopicOf(flows.reserve.name), observationsTopicOf(flows.stock.name)];
  const ns = await target.setup([flows.reserve.topic, flows.stock.topic, ...observations]);
  cleanups.push(() => ns.cleanup());
  const agent = await startInventory();
  cleanups.push(() => agent.close());
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-e2e-data-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));

  let busConfig = ns.config;
  let busOptions: CreateBusOptions = {};
  let fault: Awaited<ReturnType<NonNullable<Target['faulty']>>> | undefined;
  if (options.faulty) {
    fault = await target.faulty!(ns.config);
    cleanups.push(() => fault!.close());
    busConfig = fault.config;
    busOptions = fault.options ?? {};
  }

  // The consumer talks to the bus directly, never through the relays.
  const consumer: Bus = await createBus(ns.config);
  await consumer.start();
  cleanups.push(() => consumer.close());
  const collector = new Collector(new Set([flows.reserve.name, flows.stock.name]));
  const sub = await consumer.subscribe({ group: `e2e-${id}`, topics: [flows.reserve.topic, flows.stock.topic, ...observations], handler: collector.handle, concurrency: 8, from: 'start' });
  cleanups.push(() => sub.close());

  const sc: SidecarHandle = await startSidecar(
    {
      agent: 'inventory',
      listen: '127.0.0.1:0',
      upstream: agent.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus: busConfig,
      dataDir,
      publisher: { backoff: '100ms', maxBackoff: '1s', publishTimeout: '3s', drainTimeout: '20s' },
      flows: [
        { name: flows.reserve.name, match: { method: 'POST', path: '/reservations' }, topic: flows.reserve.topic, key: 'body.sku', mode: 'shadow' },
        { name: flows.stock.name, match: { method: 'GET', path: '/stock/:sku' }, topic: flows.stock.topic, key: 'path.sku', mode: 'shadow' },
      ],
    },
    { registry: createRegistry(), busOptions },
  );
  cleanups.push(() => sc.close());
  return { sc, agent, collector, flows, fault, ns };
}

const SKUS = ['SKU-RED-MUG', 'SKU-BLUE-MUG', 'SKU-TEAPOT'];

function reserveRequest(i: number, skus = SKUS): RawRequest {
  return {
    method: 'POST',
    path: `/reservations?attempt=${i}`,
    headers: { 'content-type': 'application/json', authorization: SECRET, cookie: COOKIE, 'idempotency-key': randomUUID() },
    body: JSON.stringify({ sku: skus[i % skus.length], qty: 1, customerId: `cust-${i}` }),
  };
}

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`sidecar end to end: ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    it('N calls give N call events and N direct observations, valid CloudEvents, byte-identical responses, no credentials on the bus', async () => {
      const { sc, agent, collector, flows, ns } = await setupRun(target);
      const keepAlive = new http.Agent({ keepAlive: true });
      cleanups.push(async () => keepAlive.destroy());
      const N = 40;
      for (let i = 0; i < N; i++) {
        const req: RawRequest = i % 2 === 0 ? { ...reserveRequest(i), agent: keepAlive } : { path: `/stock/${SKUS[i % SKUS.length]}`, headers: { authorization: SECRET, 'x-api-key': 'key-' + SECRET }, agent: keepAlive };
        const viaSidecar = await request(sc.data.url, req);
        const direct = await request(agent.url, req); // POST: same Idempotency-Key replays the answer
        expect(viaSidecar.status, `request ${i}`).toBe(direct.status);
        expect(viaSidecar.statusMessage).toBe(direct.statusMessage);
        expect(comparableHeaders(viaSidecar.rawHeaders)).toEqual(comparableHeaders(direct.rawHeaders));
        expect(viaSidecar.body.equals(direct.body), `body of request ${i}`).toBe(true);
      }

      await waitFor(() => collector.calls.size === N && collector.observations.size === N, { timeoutMs: 30_000, what: `${N} events and ${N} observations` });
      const calls = [...collector.calls.values()].map((l) => l[0]!);
      expect(calls.filter((d) => d.topic === flows.reserve.topic)).toHaveLength(N / 2);
      expect(calls.filter((d) => d.topic === flows.stock.topic)).toHaveLength(N / 2);
      for (const d of [...calls, ...[...collector.observations.values()].map((l) => l[0]!)]) {
        const ce = new CloudEvent(d.event as never); // the official SDK validates on construction
        expect(ce.specversion).toBe('1.0');
      }
      for (const d of calls) {
        expect(collector.observations.has(d.event.id)).toBe(true);
        expect(d.event.correlationid).toBe(d.event.id);
        expect(d.key).toBe(d.event.partitionkey);
        expect(d.headers[CallHeaders.method]).toMatch(/^(POST|GET)$/);
      }
      const reserve = calls.find((d) => d.topic === flows.reserve.topic)!;
      expect(reserve.event.data).toMatchObject({ body: { qty: 1 }, query: { attempt: expect.any(String) } });
      expect(collector.observations.get(reserve.event.id)![0]!.event.data).toMatchObject({ status: 201, body: { status: 'held' } });

      const everything = JSON.stringify(collector.raw);
      expect(everything).not.toContain(SECRET);
      expect(everything).not.toContain('caller-secret');
      expect(everything).not.toContain(COOKIE);
      if (ns.rawContains) {
        expect(await ns.rawContains('caller-secret')).toBe(false);
        expect(await ns.rawContains(COOKIE)).toBe(false);
      }
    });

    // The embedded bus is a local SQLite file: there is no broker connection to cut.
    const outage = target.faulty ? it : it.skip;
    outage(`broker cut mid-traffic: zero failed direct calls, and every event arrives once it is back${target.faulty ? '' : ' (skipped: no broker to cut)'}`, async ({ annotate }) => {
      const { sc, collector, fault } = await setupRun(target, { faulty: true });
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
      cleanups.push(async () => keepAlive.destroy());
      const statuses: number[] = [];
      let sent = 0;
      const send = async (count: number): Promise<void> => {
        // Four callers at a time, like a small service calling in parallel.
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (count > 0) {
              count--;
              // Mugs only: plenty of stock, so every call should be a 201.
              const res = await request(sc.data.url, { ...reserveRequest(sent++, ['SKU-RED-MUG', 'SKU-BLUE-MUG']), agent: keepAlive });
              statuses.push(res.status);
            }
          }),
        );
      };

      await send(30);
      fault!.down();
      // Keep the traffic going through the outage: until the publisher has failed and at least two
      // seconds of calls were made with the broker unreachable.
      const downAt = Date.now();
      while (!(sc.publisher.stats.failures > 0 && Date.now() - downAt > 2_000)) await send(4);
      const duringOutage = sent - 30;
      fault!.up();
      await send(30);

      const N = sent;
      expect(statuses).toHaveLength(N);
      expect(statuses.filter((s) => s !== 201)).toEqual([]);
      await waitFor(() => collector.calls.size === N && collector.observations.size === N, { timeoutMs: 60_000, what: `${N} events and ${N} observations after the broker came back` });
      await waitFor(() => sc.publisher.spoolDepth === 0 && sc.publisher.queueDepth === 0, { timeoutMs: 30_000, what: 'spool drained' });
      const stats = sc.publisher.stats;
      await annotate(`${target.kind}: ${N} calls (${duringOutage} during the outage), ${collector.calls.size} events + ${collector.observations.size} observations, ${collector.duplicates()} duplicate deliveries; publisher spooled ${stats.spooled}, failures ${stats.failures}, dropped ${stats.dropped}`);
      expect(stats.spooled).toBeGreaterThan(0);
      expect(stats.dropped).toBe(0);
    });
  });
}
