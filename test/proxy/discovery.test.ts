import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../../bin/main.js';
import { discoveryFile, readDiscoverySummary } from '../../proxy/discovery.js';
import { discoverFlows } from '../../src/discovery/propose.js';
import { discoveryTable } from '../../src/discovery/table.js';
import { startSidecar } from '../../proxy/sidecar.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { ErrorCodes } from '../../src/errors.js';
import { createRegistry } from '../../src/metrics.js';
import { request } from '../helpers/http.js';
import { MemoryBus } from '../helpers/memory-bus.js';

const TOKEN = 'admin-token-0123456789';
const CONTEXTS = ['ctx-a', 'ctx-b', 'ctx-c', 'ctx-d'];

/** An agent with REST resources, a JSON-RPC endpoint (A2A methods and MCP tools) and a health check. */
function startAgent(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const url = req.url!;
      let m: RegExpExecArray | null;
      if (url === '/healthz') return void res.end('ok');
      if ((m = /^\/orders\/(\d+)$/.exec(url)) && req.method === 'GET') return send(200, { id: Number(m[1]), status: 'open', total: 12.5 });
      if ((m = /^\/orders\/(\d+)\/cancel$/.exec(url)) && req.method === 'POST') return send(200, { id: Number(m[1]), status: 'cancelled' });
      if ((m = /^\/customers\/([0-9a-f-]{36})$/.exec(url))) return send(200, { id: m[1], tier: 'gold' });
      if (url === '/rpc' && req.method === 'POST') {
        const rpc = JSON.parse(Buffer.concat(chunks).toString()) as { id: number; method: string; params: { contextId: string; name: string; arguments: { sku: string } } };
        if (rpc.method === 'tools/call') return send(200, { jsonrpc: '2.0', id: rpc.id, result: { content: [{ type: 'text', text: `${rpc.params.name} ${rpc.params.arguments.sku}: 7` }] } });
        if (rpc.method === 'tasks/get') return send(200, { jsonrpc: '2.0', id: rpc.id, result: { state: 'completed', contextId: rpc.params.contextId } });
        return send(200, { jsonrpc: '2.0', id: rpc.id, result: { messageId: randomUUID() } });
      }
      send(404, { error: 'not found' });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) })));
}

let dir: string;
let agent: Awaited<ReturnType<typeof startAgent>>;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-discovery-'));
  agent = await startAgent();
});
afterAll(async () => {
  await agent.close();
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (s) => void out.push(s), err: (s) => void err.push(s) }, { env: {} });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('discovery through a real sidecar', () => {
  it('observes mixed traffic and cutover discover proposes flows, templates and keys that validate', async () => {
    const dataDir = path.join(dir, 'data');
    const config: SidecarConfigInput = {
      agent: 'shop',
      listen: '127.0.0.1:0',
      upstream: agent.url,
      admin: { listen: '127.0.0.1:0', token: TOKEN },
      dataDir,
      observe: { writeInterval: '1h' },
      // One flow is configured already: discovery marks its calls and proposes nothing new for them.
      flows: [{ name: 'shop.cancel', match: { method: 'POST', path: '/orders/:id/cancel' }, topic: 'commands.agent.shop.cancel', key: 'path.id', mode: 'shadow' }],
    };
    const sc = await startSidecar(config, { bus: new MemoryBus(), registry: createRegistry() });
    try {
      const customers = [randomUUID(), randomUUID(), randomUUID()];
      for (let i = 0; i < 24; i++) {
        expect((await request(sc.data.url, { path: `/orders/${100 + (i % 6)}` })).status).toBe(200);
        await request(sc.data.url, { path: `/customers/${customers[i % 3]}` });
        const rpc = (method: string, params: object) => request(sc.data.url, { method: 'POST', path: '/rpc', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: i, method, params }) });
        await rpc('tasks/get', { contextId: CONTEXTS[i % 4], taskId: `task-${i}` });
        await rpc('message/send', { contextId: CONTEXTS[i % 4], message: { role: 'user', text: `hello ${i}` } });
        await rpc('tools/call', { name: 'lookup_stock', arguments: { sku: `SKU-${i % 5}` } });
        if (i % 4 === 0) await rpc('tools/call', { name: 'get_price', arguments: { sku: `SKU-${i % 8}` } });
        if (i % 4 === 0) await request(sc.data.url, { method: 'POST', path: `/orders/${100 + i}/cancel` });
        await request(sc.data.url, { path: '/healthz' });
      }
      const live = await fetch(`${sc.admin.url}/discovery`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(live.status).toBe(200);
      expect(((await live.json()) as { sampled: number }).sampled).toBe(24 * 6 + 6 + 6);
      // The same rows, as a program running the sidecar in process prints them.
      expect(discoveryTable(discoverFlows([sc.discovery()!]))).toContain('shop.get-order -> commands.agent.shop.get-order');
    } finally {
      await sc.close();
    }

    const summary = readDiscoverySummary(discoveryFile(dataDir, 'shop'));
    const templates = summary.candidates.map((c) => `${c.method} ${c.template}${c.rpc ? ` ${c.rpc}` : ''}${c.tool ? ` ${c.tool}` : ''}`).sort();
    expect(templates).toEqual([
      'GET /customers/:customerId', 'GET /healthz', 'GET /orders/:orderId', 'POST /orders/:orderId/cancel',
      'POST /rpc message/send', 'POST /rpc tasks/get', 'POST /rpc tools/call get_price', 'POST /rpc tools/call lookup_stock',
    ]);
    expect(summary.candidates.find((c) => c.template.endsWith('/cancel'))!.flow).toBe('shop.cancel');

    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, `# the shop's sidecar\n${stringify(config)}`);
    const out = path.join(dir, 'proposed.yaml');
    const run = await cli(['discover', '--config', file, '--out', out]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/GET\s+\/orders\/:orderId\s+24\s+0\.0 .* yes\s+path\.orderId\s+shop\.get-order -> commands\.agent\.shop\.get-order/);
    expect(run.out).toMatch(/POST\s+\/orders\/:orderId\/cancel\s+6 .* shop\.cancel \(configured\)/);
    // One flow per JSON-RPC method, and per MCP tool for tools/call, keyed by a member of the call.
    expect(run.out).toMatch(/POST\s+\/rpc\s+tasks\/get\s+24 .* likely\s+rpc\.params\.contextId\s+shop\.tasks-get -> commands\.agent\.shop\.tasks-get/);
    expect(run.out).toMatch(/POST\s+\/rpc\s+message\/send\s+24 .* no\s+rpc\.params\.contextId\s+shop\.message-send -> commands\.agent\.shop\.message-send/);
    expect(run.out).toMatch(/POST\s+\/rpc\s+tools\/call lookup_stock\s+24 .* likely\s+rpc\.params\.arguments\.sku\s+shop\.lookup-stock -> commands\.agent\.shop\.lookup-stock/);
    expect(run.out).toMatch(/GET\s+\/healthz .* \(health, readiness or metrics endpoint: not a flow\)/);
    expect(run.out).toContain('suggested migration order');

    const written = await readFile(out, 'utf8');
    expect(written).toContain("# the shop's sidecar");
    const proposed = parseConfigText(written, cutoverConfigSchema, { env: {} });
    expect(proposed.flows.map((f) => [f.name, f.match, f.key, f.safe])).toEqual([
      ['shop.cancel', { method: 'POST', path: '/orders/:id/cancel' }, 'path.id', undefined],
      // Safe reads first, then methods likely safe to repeat; sending a message (not safe to repeat) comes last.
      ['shop.get-order', { method: 'GET', path: '/orders/:orderId' }, 'path.orderId', undefined],
      ['shop.get-customer', { method: 'GET', path: '/customers/:customerId' }, 'path.customerId', undefined],
      ['shop.tasks-get', { method: 'POST', path: '/rpc', rpc: 'tasks/get' }, 'rpc.params.contextId', true],
      ['shop.lookup-stock', { method: 'POST', path: '/rpc', rpc: 'tools/call', tool: 'lookup_stock' }, 'rpc.params.arguments.sku', true],
      ['shop.get-price', { method: 'POST', path: '/rpc', rpc: 'tools/call', tool: 'get_price' }, 'rpc.params.arguments.sku', true],
      ['shop.message-send', { method: 'POST', path: '/rpc', rpc: 'message/send' }, 'rpc.params.contextId', undefined],
    ]);
    expect(written).toMatch(/# discovered: migrate #1: safe to repeat: GET is safe by HTTP semantics, 24 calls/);
    expect(await cli(['validate', '--config', out])).toMatchObject({ code: 0, err: '' });
  });

  it('samples a share of calls, counts the rest, and restarts from the summary it wrote', async () => {
    const dataDir = path.join(dir, 'sampled');
    const config: SidecarConfigInput = { agent: 'shop', listen: '127.0.0.1:0', upstream: agent.url, admin: { listen: '127.0.0.1:0', token: TOKEN }, dataDir, observe: { sample: 0, writeInterval: '1h' } };
    const first = await startSidecar(config, { bus: new MemoryBus(), registry: createRegistry() });
    for (let i = 0; i < 5; i++) await request(first.data.url, { path: `/orders/${i}` });
    await first.close();
    expect(readDiscoverySummary(discoveryFile(dataDir, 'shop'))).toMatchObject({ seen: 5, sampled: 0, candidates: [] });

    const second = await startSidecar({ ...config, observe: { sample: 1, writeInterval: '1h' } }, { bus: new MemoryBus(), registry: createRegistry() });
    await request(second.data.url, { path: '/orders/1' });
    await second.close();
    expect(readDiscoverySummary(discoveryFile(dataDir, 'shop'))).toMatchObject({ seen: 6, sampled: 1, candidates: [{ template: '/orders/:orderId', calls: 1 }] });
  });

  it('without observe: records nothing and serves no /discovery; discover names the missing summary', async () => {
    const dataDir = path.join(dir, 'off');
    const sc = await startSidecar({ agent: 'shop', listen: '127.0.0.1:0', upstream: agent.url, admin: { listen: '127.0.0.1:0', token: TOKEN }, dataDir }, { bus: new MemoryBus(), registry: createRegistry() });
    await request(sc.data.url, { path: '/orders/1' });
    expect((await fetch(`${sc.admin.url}/discovery`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    expect(sc.discovery()).toBeUndefined();
    await sc.close();
    const file = path.join(dir, 'off.yaml');
    await writeFile(file, stringify({ agent: 'shop', dataDir, admin: { auth: false } }));
    const run = await cli(['discover', '--config', file]);
    expect(run.code).toBe(1);
    expect(run.err).toContain(`${ErrorCodes.NOT_FOUND}: no discovery summary at ${discoveryFile(dataDir, 'shop')}: set observe:`);
  });
});
