import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { createBus, type BusConfigInput } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { createRegistry } from '../../src/metrics.js';
import { flowCompareSchema, flowShadowSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { redisUrl } from '../helpers/brokers.js';
import { waitFor } from '../helpers/wait-for.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { collectParity } from '../helpers/parity.js';

/**
 * The real chain on Redis: caller → sidecar (shadow mode) → REST agent, the sidecar's call events delivered
 * by the shadow consumer to a second instance of the agent, both results paired by the comparator.
 * Checks that the events the sidecar really publishes replay exactly.
 */

const redis = redisUrl();

function post(url: string, body: unknown): Promise<number> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/reservations?src=test`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length, authorization: 'Bearer secret' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

(redis ? describe : describe.skip)('sidecar + shadow delivery + comparator on redis', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it('every call through the sidecar is replayed to the shadow agent and pairs as a match', async () => {
    const prefix = `cutover-shadow-sidecar-${randomUUID().slice(0, 8)}:`;
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-shadow-sidecar-'));
    cleanups.push(async () => {
      await deleteRedisPrefix(redis!, prefix);
      await rm(dir, { recursive: true, force: true });
    });
    const busConfig: BusConfigInput = { kind: 'redis', url: redis!, prefix, blockTime: '200ms' };
    const direct = await startInventory();
    const shadowAgent = await startInventory();
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const flow = { name: 'inventory.reserve', match: { method: 'POST' as const, path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow' as const };
    const sidecar = await startSidecar(
      { agent: 'inventory', listen: '127.0.0.1:0', upstream: direct.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: busConfig, dataDir: dir, flows: [flow] },
      { registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());

    const bus = await createBus(busConfig);
    await bus.start();
    cleanups.push(() => bus.close());
    const records = await collectParity(bus);
    const runtime = new ShadowRuntime({
      bus,
      busConfig: busConfigSchema.parse(busConfig),
      dataDir: dir,
      flows: [{ ...flow, shadow: flowShadowSchema.parse({ target: shadowAgent.url }), compare: flowCompareSchema.parse({ ignore: ['/body/reservationId'], headers: ['content-type'] }) }],
      shadow: shadowConfigSchema.parse({ window: '20s' }),
    });
    await runtime.start();
    cleanups.push(() => runtime.close());

    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push(await post(sidecar.data.url, { sku: i % 3 === 0 ? 'SKU-TEAPOT' : 'SKU-RED-MUG', qty: 2, customerId: `c-${i}` }));
    await waitFor(() => records.length >= 30, { timeoutMs: 30_000, what: '30 parity records' });
    expect(records.filter((r) => r.outcome !== 'match')).toEqual([]);
    expect(records.map((r) => r.directStatus).sort()).toEqual([...statuses].sort());
    expect(shadowAgent.served.get('POST /reservations')).toBe(30);
    for (const r of records) {
      expect(r.busLatencyMs).toBeGreaterThanOrEqual(r.busLagMs!);
      expect(r.directLatencyMs).toBeGreaterThan(0);
    }
  });
});
