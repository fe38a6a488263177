import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { createBus } from '../../src/bus/index.js';
import { createRegistry } from '../../src/metrics.js';
import { request, type RawRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/wait-for.js';
import { collectParity } from '../helpers/parity.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/**
 * A sidecar on its own embedded bus with the shadow side in process (the default there), and the parity
 * records it produces, read from that bus.
 */
async function startWithParity(agent: string, upstream: string, flows: SidecarConfigInput['flows']) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-inprocess-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const bus = { kind: 'embedded' as const, path: path.join(dir, 'bus.db') };
  const sidecar = await startSidecar(
    { agent, listen: '127.0.0.1:0', upstream, admin: { listen: '127.0.0.1:0', auth: false }, bus, dataDir: dir, shadow: { window: '20s' }, flows },
    { registry: createRegistry() },
  );
  cleanups.push(() => sidecar.close());
  const reader = await createBus(bus);
  await reader.start();
  cleanups.push(() => reader.close());
  return { sidecar, records: await collectParity(reader) };
}

const reserve = (customerId: string): RawRequest => ({
  method: 'POST',
  path: '/reservations',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId }),
});

describe('sidecar with the shadow side in process (the default on the embedded bus)', () => {
  it('replays each shadowed call to the shadow target and records parity, with no other process', async () => {
    const direct = await startInventory();
    const shadowAgent = await startInventory();
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const { sidecar, records } = await startWithParity('inventory', direct.url, [{
      name: 'inventory.reserve',
      match: { method: 'POST', path: '/reservations' },
      topic: 'commands.agent.inventory.reserve',
      key: 'body.sku',
      mode: 'shadow',
      shadow: { target: shadowAgent.url },
      compare: { ignore: ['/body/reservationId'] },
    }, {
      // A second flow with a shadow target: every flow's delivery consumer shares the sidecar's registry.
      name: 'inventory.stock',
      match: { method: 'GET', path: '/stock/:sku' },
      topic: 'commands.agent.inventory.stock',
      key: 'path.sku',
      mode: 'shadow',
      shadow: { target: shadowAgent.url },
    }]);
    expect(sidecar.shadow()).toBeDefined();

    for (let i = 0; i < 20; i++) expect((await request(sidecar.data.url, reserve(`c-${i}`))).status).toBe(201);
    for (let i = 0; i < 5; i++) expect((await fetch(`${sidecar.data.url}/stock/SKU-TEAPOT`)).status).toBe(200);
    await waitFor(() => records.length >= 25, { timeoutMs: 30_000, what: '25 parity records' });
    expect(records.filter((r) => r.flow === 'inventory.reserve').map((r) => r.outcome)).toEqual(Array(20).fill('match'));
    expect(records.filter((r) => r.flow === 'inventory.stock').map((r) => r.outcome)).toEqual(Array(5).fill('match'));
    expect(shadowAgent.served.get('POST /reservations')).toBe(20);
  });

  it('stays out of the way when shadow.inProcess is false', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-inprocess-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const direct = await startInventory();
    cleanups.push(() => direct.close());
    const sidecar = await startSidecar(
      { agent: 'inventory', listen: '127.0.0.1:0', upstream: direct.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: { kind: 'embedded', path: path.join(dir, 'bus.db') }, dataDir: dir, shadow: { inProcess: false }, flows: [] },
      { registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());
    expect(sidecar.shadow()).toBeUndefined();
  });
});

describe('noise baseline from the sidecar (flow noise.sample)', () => {
  /** An agent whose quotes carry a random token: two direct calls of one request always differ there. */
  async function quoteAgent(): Promise<{ url: string; calls: () => number; close: () => Promise<void> }> {
    let calls = 0;
    const server = http.createServer((req, res) => {
      calls += 1;
      const sku = (req.url ?? '').split('/').pop();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sku, price: 12.5, token: Math.random().toString(36).slice(2) }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    return { url: `http://127.0.0.1:${port}`, calls: () => calls, close: () => new Promise((r) => server.close(() => r())) };
  }

  it('calls the agent twice for sampled safe requests, so a random field is noise and not a mismatch', async () => {
    const direct = await quoteAgent();
    const shadowAgent = await quoteAgent();
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const { sidecar, records } = await startWithParity('pricing', direct.url, [{
      name: 'pricing.quote',
      match: { method: 'GET', path: '/quotes/:sku' },
      topic: 'commands.agent.pricing.quote',
      key: 'path.sku',
      mode: 'shadow',
      shadow: { target: shadowAgent.url },
      noise: { sample: 1 },
    }]);

    for (let i = 0; i < 12; i++) expect((await fetch(`${sidecar.data.url}/quotes/SKU-${i % 3}`)).status).toBe(200);
    await waitFor(() => records.length >= 12, { timeoutMs: 30_000, what: '12 parity records' });
    expect(direct.calls()).toBe(24); // every sampled call made twice
    expect(records.map((r) => r.outcome)).toEqual(Array(12).fill('match'));
    expect(records.every((r) => r.noise?.includes('/body/token'))).toBe(true);
  });
});
