import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { createBus } from '../../src/bus/index.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { createRegistry } from '../../src/metrics.js';
import { flowCompareSchema, flowShadowSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { busTargets } from '../helpers/bus-targets.js';
import { waitFor } from '../helpers/wait-for.js';
import { collectParity } from '../helpers/parity.js';

/**
 * The real chain on Redis and on RabbitMQ: caller → sidecar (shadow mode) → REST agent, the sidecar's call events delivered
 * by the shadow consumer to a second instance of the agent, both results paired by the comparator.
 * Checks that the events the sidecar really publishes replay exactly.
 */

const targets = busTargets('shadow-sidecar').filter((t) => t.kind === 'redis' || t.kind === 'rabbitmq');

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

describe.each(targets)('sidecar + shadow delivery + comparator on $kind', (target) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it.skipIf(target.skip)(`every call through the sidecar is replayed to the shadow agent and pairs as a match${target.skip ? ` (skipped: ${target.skip})` : ''}`, async () => {
    const env = await target.setup(randomUUID().slice(0, 8));
    cleanups.push(() => env.cleanup());
    const { config: busConfig, dir } = env;
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
