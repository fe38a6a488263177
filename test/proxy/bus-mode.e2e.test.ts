import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { CallHeaders } from '../../src/events/wire.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { createBus, type Bus, type BusConfigInput, type CreateBusOptions, type Delivery } from '../../src/bus/index.js';
import { ErrorCodes } from '../../src/errors.js';
import type { FlowMode } from '../../src/flips/mode.js';
import { createRegistry } from '../../src/metrics.js';
import { kafkaBrokers, rabbitmqUrl, redisUrl } from '../helpers/brokers.js';
import { deleteRabbitPrefix } from '../helpers/rabbitmq.js';
import { cuttableBus } from '../helpers/fault-proxy.js';
import { deleteKafkaTopics } from '../../src/bus/kafka/maintenance.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { request, type RawRequest, type RawResponse } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Bus mode end to end on the real brokers: caller → sidecar A (caller side) → bus → sidecar B (`deliver:`)
 * → inventory agent, with flips while traffic runs, and the broker cut at the connection layer.
 */

interface Target {
  kind: 'redis' | 'kafka' | 'rabbitmq';
  skip?: string;
  setup(topics: string[]): Promise<{ config: BusConfigInput; cleanup(): Promise<void> }>;
  faulty(config: BusConfigInput): Promise<{ config: BusConfigInput; options?: CreateBusOptions; down(): void; up(): void; close(): Promise<void> }>;
}

const redis = redisUrl();
const brokers = kafkaBrokers();
const rabbit = rabbitmqUrl();

const targets: Target[] = [
  {
    kind: 'redis',
    ...(redis ? {} : { skip: 'Redis unavailable' }),
    async setup() {
      const prefix = `cutover-busmode-${randomUUID().slice(0, 8)}:`;
      return {
        config: { kind: 'redis', url: redis!, prefix, blockTime: '200ms', claimIdle: '5s' },
        cleanup: () => deleteRedisPrefix(redis!, prefix).then(() => undefined),
      };
    },
    faulty: cuttableBus,
  },
  {
    kind: 'kafka',
    ...(brokers ? {} : { skip: 'Kafka unavailable' }),
    async setup(topics) {
      return {
        config: { kind: 'kafka', brokers: brokers!, partitions: 3, connectionTimeout: '1s', sessionTimeout: '6s', topicRefreshInterval: '1s' },
        // This test's flow topics, their DLQs, and the reply topics of its sidecars.
        cleanup: () => deleteKafkaTopics(brokers!, (t) => topics.some((p) => t.startsWith(p))).then(() => undefined),
      };
    },
    faulty: cuttableBus,
  },
  {
    kind: 'rabbitmq',
    ...(rabbit ? {} : { skip: 'RabbitMQ unavailable (see the line printed at start)' }),
    async setup() {
      const prefix = `cutover-busmode-${randomUUID().slice(0, 8)}`;
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

async function setupRun(target: Target, options: { faulty?: boolean; mode: FlowMode; fallback?: 'direct' }) {
  const id = randomUUID().replace(/-/g, '').slice(0, 10);
  // The agent name is unique per run so that reply topics (cutover.replies.<agent>.*) can be cleaned up.
  const agentName = `inv-${id}`;
  const flows = {
    reserve: { name: `inventory.reserve.${id}`, topic: `commands.agent.inventory.reserve-${id}` },
    stock: { name: `inventory.stock.${id}`, topic: `commands.agent.inventory.stock-${id}` },
    viewed: { name: `inventory.viewed.${id}`, topic: `commands.agent.inventory.viewed-${id}` },
  };
  const ns = await target.setup([flows.reserve.topic, flows.stock.topic, flows.viewed.topic, `cutover.replies.${agentName}.`]);
  cleanups.push(() => ns.cleanup());
  const agent = await startInventory();
  cleanups.push(() => agent.close());
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-busmode-e2e-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  let busConfig = ns.config;
  let busOptions: CreateBusOptions = {};
  let fault: Awaited<ReturnType<Target['faulty']>> | undefined;
  if (options.faulty) {
    fault = await target.faulty(ns.config);
    cleanups.push(() => fault!.close());
    busConfig = fault.config;
    busOptions = fault.options ?? {};
  }
  const flowList = (mode: FlowMode) => [
    { name: flows.reserve.name, match: { method: 'POST', path: '/reservations' }, topic: flows.reserve.topic, key: 'body.customerId', mode, timeout: '8s', ...(options.fallback ? { fallback: options.fallback } : {}) },
    { name: flows.stock.name, match: { method: 'GET', path: '/stock/:sku' }, topic: flows.stock.topic, key: 'path.sku', mode, timeout: '8s', verify: true, ...(options.fallback ? { fallback: options.fallback } : {}) },
    { name: flows.viewed.name, match: { method: 'POST', path: '/views' }, topic: flows.viewed.topic, mode, kind: 'event' as const },
  ];
  // Callee side: serves the flows' commands from the bus (never through the relays).
  const callee: SidecarHandle = await startSidecar(
    {
      agent: agentName,
      listen: '127.0.0.1:0',
      upstream: agent.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus: ns.config,
      dataDir: path.join(dataDir, 'callee'),
      deliver: { flows: [flows.reserve.name, flows.stock.name], concurrency: 8, timeout: '5s' },
      flows: flowList('direct'),
    },
    { registry: createRegistry() },
  );
  cleanups.push(() => callee.close());
  // Its consumers join their groups in the background (a failed join is retried); bus-mode calls need them.
  await waitFor(() => callee.deliver()?.ready === true, { timeoutMs: 30_000, what: 'callee deliver consumers' });
  // Caller side.
  const caller: SidecarHandle = await startSidecar(
    {
      agent: agentName,
      listen: '127.0.0.1:0',
      upstream: agent.url,
      admin: { listen: '127.0.0.1:0', auth: false },
      bus: busConfig,
      dataDir: path.join(dataDir, 'caller'),
      publisher: { backoff: '100ms', maxBackoff: '1s', publishTimeout: '2s', drainTimeout: '20s' },
      flows: flowList(options.mode),
    },
    { registry: createRegistry(), busOptions },
  );
  cleanups.push(() => caller.close());
  await waitFor(() => caller.replies.ready, { timeoutMs: 30_000, what: 'reply channel consuming' });

  // What is on the flow topics, read from the real bus directly.
  const observer: Bus = await createBus(ns.config);
  await observer.start();
  cleanups.push(() => observer.close());
  const onBus: Delivery[] = [];
  const sub = await observer.subscribe({ group: `observer-${id}`, topics: [flows.reserve.topic, flows.viewed.topic], concurrency: 8, handler: async (d) => void onBus.push(d) });
  cleanups.push(() => sub.close());
  return { caller, callee, agent, flows, fault, onBus };
}

const MUGS = ['SKU-RED-MUG', 'SKU-BLUE-MUG'];

function reserveRequest(i: number, keepAlive: http.Agent): RawRequest {
  return {
    method: 'POST',
    path: `/reservations?attempt=${i}`,
    headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID(), authorization: 'Bearer caller-secret' },
    body: JSON.stringify({ sku: MUGS[i % 2], qty: 1, customerId: `cust-${i}` }),
    agent: keepAlive,
  };
}

/** What the caller sees of a response, minus what legitimately differs between two transports (Date, Connection...). */
function visible(r: RawResponse): unknown {
  return { status: r.status, contentType: r.headers['content-type'], location: r.headers.location, body: r.body.toString('utf8') };
}

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`bus mode end to end: ${target.kind}`, () => {
    it('shadow → canary:10 → bus → direct (rollback) → bus while traffic runs: every answer equals the direct one', async ({ annotate }) => {
      const { caller, callee, agent, flows } = await setupRun(target, { mode: 'shadow' });
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });
      cleanups.push(async () => keepAlive.destroy());
      const mismatches: string[] = [];
      const failures: string[] = [];
      let sent = 0;
      let stop = false;
      const worker = async (): Promise<void> => {
        while (!stop) {
          const i = sent++;
          const req: RawRequest = i % 3 === 2 ? { path: i % 2 ? '/stock/SKU-KETTLE' : '/stock/NOPE', agent: keepAlive } : reserveRequest(i, keepAlive);
          const viaSidecar = await request(caller.data.url, req);
          // Same Idempotency-Key: the agent replays the answer it gave the first time, byte for byte.
          const direct = await request(agent.url, req);
          if (viaSidecar.status >= 500) failures.push(`${i}: ${viaSidecar.status} ${viaSidecar.body.toString()}`);
          if (JSON.stringify(visible(viaSidecar)) !== JSON.stringify(visible(direct))) mismatches.push(`${i}: ${JSON.stringify(visible(viaSidecar))} vs ${JSON.stringify(visible(direct))}`);
        }
      };
      const workers = Array.from({ length: 4 }, () => worker());
      const setAll = (mode: FlowMode): void => {
        for (const f of [flows.reserve.name, flows.stock.name]) caller.flows.setMode(f, mode);
      };
      const served = () => caller.flows.get(flows.reserve.name)!.counters.busServed + caller.flows.get(flows.stock.name)!.counters.busServed;
      const phases: string[] = [];
      const runFor = async (n: number): Promise<void> => {
        const until = sent + n;
        await waitFor(() => sent >= until || failures.length > 0, { timeoutMs: 60_000, what: `${n} more requests` });
      };
      await runFor(30);
      setAll('canary:10');
      await runFor(80);
      phases.push(`canary:10 bus-served ${served()}`);
      setAll('bus');
      const beforeBus = served();
      await runFor(60);
      phases.push(`bus +${served() - beforeBus}`);
      setAll('direct');
      await runFor(30);
      setAll('bus');
      await runFor(40);
      stop = true;
      await Promise.all(workers);
      const delivered = callee.deliver()!.consumers.map((c) => c.stats());
      await annotate(`${target.kind}: ${sent} calls; ${phases.join(', ')}; total bus-served ${served()}; callee deliveries ${JSON.stringify(delivered)}`);
      expect(failures).toEqual([]);
      expect(mismatches).toEqual([]);
      expect(served()).toBeGreaterThan(60);
      // Shadow copies were skipped by the callee: their direct call had already reached the agent.
      expect(delivered.reduce((n, s) => n + s.skipped, 0)).toBeGreaterThan(0);
      // A consumer counts a delivery after publishing its reply: the caller may have its answer first.
      await waitFor(() => callee.deliver()!.consumers.reduce((n, c) => n + c.stats().delivered, 0) >= served(), { what: 'callee deliveries counted' });
    });

    it('bus down in bus mode with fallback: direct: callers still get answers', async ({ annotate }) => {
      const { caller, fault, flows } = await setupRun(target, { faulty: true, mode: 'bus', fallback: 'direct' });
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
      cleanups.push(async () => keepAlive.destroy());
      const statuses: number[] = [];
      let i = 0;
      const send = async (n: number): Promise<void> => {
        await Promise.all(Array.from({ length: 4 }, async () => {
          while (n-- > 0) statuses.push((await request(caller.data.url, reserveRequest(i++, keepAlive))).status);
        }));
      };
      await send(12);
      fault!.down();
      const downAt = Date.now();
      while (!(caller.flows.get(flows.reserve.name)!.counters.fallbacks > 0 && Date.now() - downAt > 2_000)) await send(4);
      fault!.up();
      await send(12);
      const c = caller.flows.get(flows.reserve.name)!.counters;
      await annotate(`${target.kind}: ${statuses.length} calls, busServed ${c.busServed}, fallbacks ${c.fallbacks} (timeouts ${c.replyTimeouts}, unavailable ${c.busUnavailable})`);
      expect(statuses.filter((s) => s !== 201)).toEqual([]);
      expect(c.fallbacks).toBeGreaterThan(0);
    });

    it('bus down in bus mode without fallback: 503 CUTOVER_BUS_UNAVAILABLE, and every success is on the bus', async ({ annotate }) => {
      const { caller, fault, flows, onBus } = await setupRun(target, { faulty: true, mode: 'bus' });
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
      cleanups.push(async () => keepAlive.destroy());
      const results: Array<{ key: string; status: number; code?: string; eventId?: string }> = [];
      let i = 0;
      const send = async (n: number): Promise<void> => {
        await Promise.all(Array.from({ length: 4 }, async () => {
          while (n-- > 0) {
            const k = i++;
            if (k % 2 === 0) {
              const req = reserveRequest(k, keepAlive);
              const res = await request(caller.data.url, req);
              const code = res.status >= 500 ? (JSON.parse(res.body.toString()) as { error: { code: string } }).error.code : undefined;
              results.push({ key: req.headers!['idempotency-key']!, status: res.status, ...(code ? { code } : {}) });
            } else {
              const res = await request(caller.data.url, { method: 'POST', path: '/views', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ page: `/p/${k}` }), agent: keepAlive });
              results.push({ key: `view-${k}`, status: res.status, ...(res.status === 202 ? { eventId: (JSON.parse(res.body.toString()) as { id: string }).id } : {}) });
            }
          }
        }));
      };
      await send(12);
      fault!.down();
      const downAt = Date.now();
      while (!(results.some((r) => r.status === 503) && Date.now() - downAt > 2_000)) await send(4);
      fault!.up();
      // After the outage the reply channel and publisher reconnect: calls succeed again.
      await waitFor(async () => (await request(caller.data.url, reserveRequest(i++, keepAlive))).status === 201, { timeoutMs: 60_000, intervalMs: 200, what: 'bus mode answering again' });
      await send(8);

      const bad = results.filter((r) => ![201, 202, 503, 504].includes(r.status));
      expect(bad).toEqual([]);
      const unavailable = results.filter((r) => r.status === 503);
      expect(unavailable.length).toBeGreaterThan(0);
      for (const r of unavailable) expect(r.code ?? ErrorCodes.BUS_UNAVAILABLE).toBe(ErrorCodes.BUS_UNAVAILABLE);
      expect(results.filter((r) => r.status === 503 && r.key.startsWith('view-')).length).toBe(0); // events spool instead
      // Nothing acknowledged is lost: every 201 command and every 202 event is on the bus.
      const acked = results.filter((r) => r.status === 201 || r.status === 202);
      const keys = (): Set<string> => {
        const out = new Set<string>();
        for (const d of onBus) {
          if (d.topic === flows.viewed.topic) out.add(`event:${d.event.id}`);
          else out.add((JSON.parse(d.headers[CallHeaders.headers] ?? '{}') as Record<string, string>)['idempotency-key'] ?? '');
        }
        return out;
      };
      await waitFor(() => caller.publisher.spoolDepth === 0, { timeoutMs: 60_000, what: 'spool drained' });
      await waitFor(() => {
        const have = keys();
        return acked.every((r) => have.has(r.eventId ? `event:${r.eventId}` : r.key));
      }, { timeoutMs: 60_000, what: 'every acknowledged call on the bus' });
      const c = caller.flows.get(flows.reserve.name)!.counters;
      await annotate(`${target.kind}: ${results.length} calls: ${acked.length} acknowledged (${results.filter((r) => r.status === 202).length} events), ${unavailable.length} × 503, ${results.filter((r) => r.status === 504).length} × 504; spooled ${caller.publisher.stats.spooled}; reserve counters ${JSON.stringify(c)}`);
    });
  });
}
