import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CloudEvent } from 'cloudevents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start as startInventory, type InventoryAgent } from '../../examples/agents/inventory.js';
import { CallHeaders, OBSERVATIONS_TOPIC, ObservationTypes, observationsTopicOf } from '../../src/events/wire.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { FieldCipher } from '../../src/crypto/field-cipher.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { ErrorCodes } from '../../src/errors.js';
import { createRegistry } from '../../src/metrics.js';
import { comparableHeaders, request } from '../helpers/http.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'admin-token-0123456789';
const RESERVE_TOPIC = 'commands.agent.inventory.reserve';
const STOCK_TOPIC = 'commands.agent.inventory.stock';
// Each flow's observations (and the replyto of its call events) are on its own topic.
const RESERVE_OBS = observationsTopicOf('inventory.reserve');
const STOCK_OBS = observationsTopicOf('inventory.stock');

let agent: InventoryAgent;
let dataDir: string;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  agent = await startInventory();
  dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-sidecar-'));
  cleanups.push(() => agent.close(), () => rm(dataDir, { recursive: true, force: true }));
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(overrides: Partial<SidecarConfigInput> = {}): SidecarConfigInput {
  return {
    agent: 'inventory',
    listen: '127.0.0.1:0',
    upstream: agent.url,
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    dataDir: path.join(dataDir, randomUUID()),
    flows: [
      { name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: RESERVE_TOPIC, key: 'body.sku', mode: 'shadow' },
      { name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: STOCK_TOPIC, key: 'path.sku', mode: 'shadow' },
      { name: 'inventory.release', match: { method: 'DELETE', path: '/reservations/:id' }, topic: 'commands.agent.inventory.release', key: 'path.id', mode: 'direct' },
    ],
    ...overrides,
  };
}

async function sidecar(overrides: Partial<SidecarConfigInput> = {}, env: NodeJS.ProcessEnv = {}): Promise<{ sc: SidecarHandle; bus: MemoryBus }> {
  const bus = new MemoryBus();
  const sc = await startSidecar(config(overrides), { bus, registry: createRegistry(), env });
  cleanups.push(() => sc.close());
  return { sc, bus };
}

const reserve = (sku: string, extra: Record<string, string> = {}) => ({
  method: 'POST',
  path: '/reservations',
  headers: { 'content-type': 'application/json', authorization: 'Bearer caller-secret-token', 'idempotency-key': randomUUID(), ...extra },
  body: JSON.stringify({ sku, qty: 1, customerId: 'cust-1' }),
});

describe('sidecar (in process, memory bus)', () => {
  it('forwards unchanged and dual-writes a valid CloudEvent plus the direct observation', async () => {
    const { sc, bus } = await sidecar();
    const req = { ...reserve('SKU-RED-MUG', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', cookie: 'sid=abc' }), path: '/reservations?dryRun=0&api_key=query-secret' };
    const viaSidecar = await request(sc.data.url, req);
    const direct = await request(agent.url, req); // same Idempotency-Key: the agent replays its answer
    expect(viaSidecar.status).toBe(201);
    expect(viaSidecar.status).toBe(direct.status);
    expect(viaSidecar.statusMessage).toBe(direct.statusMessage);
    expect(comparableHeaders(viaSidecar.rawHeaders)).toEqual(comparableHeaders(direct.rawHeaders));
    expect(viaSidecar.body.equals(direct.body)).toBe(true);

    await waitFor(() => bus.messages(RESERVE_TOPIC).length === 1 && bus.messages(RESERVE_OBS).length === 1);
    const call = bus.messages(RESERVE_TOPIC)[0]!;
    const obs = bus.messages(RESERVE_OBS)[0]!;
    new CloudEvent(call.event as never); // throws when invalid
    new CloudEvent(obs.event as never);
    expect(call.key).toBe('SKU-RED-MUG');
    expect(call.event).toMatchObject({
      specversion: '1.0',
      source: '/agents/inventory',
      type: 'inventory.reserve',
      datacontenttype: 'application/json',
      schemaversion: '1',
      replyto: RESERVE_OBS,
      partitionkey: 'SKU-RED-MUG',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      cutoverflow: 'inventory.reserve',
      cutovermode: 'shadow',
      data: { body: { sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-1' }, params: {}, query: { dryRun: '0', api_key: '[REDACTED]' } },
    });
    expect(call.event.correlationid).toBe(call.event.id);
    expect(call.headers[CallHeaders.method]).toBe('POST');
    expect(call.headers[CallHeaders.target]).toBe('/reservations?dryRun=0&api_key=%5BREDACTED%5D');
    expect(JSON.parse(call.headers[CallHeaders.headers]!)).toMatchObject({ 'content-type': 'application/json', 'idempotency-key': req.headers['idempotency-key'] });

    expect(obs.key).toBe(call.event.id);
    expect(obs.event).toMatchObject({ type: ObservationTypes.direct, correlationid: call.event.id, cutoverflow: 'inventory.reserve', traceparent: call.event.traceparent });
    expect(obs.event.data).toMatchObject({ status: 201, headers: { 'content-type': 'application/json; charset=utf-8', location: expect.stringMatching(/^\/reservations\/res_/) }, body: JSON.parse(direct.body.toString()) });
    expect((obs.event.data as { latencyMs: number }).latencyMs).toBeGreaterThan(0);
    // Nothing on the shared topic or on another flow's topic.
    expect(bus.messages(OBSERVATIONS_TOPIC)).toHaveLength(0);
    expect(bus.messages(STOCK_OBS)).toHaveLength(0);

    const everything = JSON.stringify(bus.all());
    expect(everything).not.toContain('caller-secret-token');
    expect(everything).not.toContain('sid=abc');
    expect(everything).not.toContain('query-secret');
  });

  it('stamps the direct agent\'s version on its observation: the flow\'s version header, else the fixed value', async () => {
    let version: string | undefined = '7.1.0';
    const upstream = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', ...(version ? { 'x-agent-version': version } : {}) }).end('{"ok":true}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => upstream.close(() => r())));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const { sc, bus } = await sidecar({
      upstream: url,
      flows: [{ name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: STOCK_TOPIC, key: 'path.sku', mode: 'shadow', versions: { header: 'X-Agent-Version', direct: 'configured-7' } }],
    });
    expect((await request(sc.data.url, { method: 'GET', path: '/stock/a' })).status).toBe(200);
    version = undefined;
    expect((await request(sc.data.url, { method: 'GET', path: '/stock/b' })).status).toBe(200);
    await waitFor(() => bus.messages(STOCK_OBS).length === 2, { what: 'two observations' });
    expect(bus.messages(STOCK_OBS).map((m) => (m.event.data as { version?: string }).version)).toEqual(['7.1.0', 'configured-7']);
  });

  it('takes path params as the key, creates a traceparent when the request has none', async () => {
    const { sc, bus } = await sidecar();
    const res = await request(sc.data.url, { path: '/stock/SKU-TEAPOT', headers: { traceparent: 'garbage' } });
    expect(res.status).toBe(200);
    await waitFor(() => bus.messages(STOCK_TOPIC).length === 1 && bus.messages(STOCK_OBS).length === 1);
    const call = bus.messages(STOCK_TOPIC)[0]!;
    expect(call.key).toBe('SKU-TEAPOT');
    expect(call.event.data).toEqual({ params: { sku: 'SKU-TEAPOT' }, query: {} });
    expect(call.event.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('publishes nothing for direct-mode flows and unmatched requests, but counts them', async () => {
    const { sc, bus } = await sidecar();
    expect((await request(sc.data.url, { method: 'DELETE', path: '/reservations/res_nope' })).status).toBe(404);
    expect((await request(sc.data.url, { path: '/healthz' })).status).toBe(200);
    const flows = (await (await fetch(`${sc.admin.url}/flows`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { flows: Array<{ name: string }> };
    expect(flows.flows.find((f: { name: string }) => f.name === 'inventory.release')).toMatchObject({ mode: 'direct', counters: { requests: 1, events: 0 } });
    const metrics = await (await fetch(`${sc.admin.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toMatch(/cutover_sidecar_unmatched_requests_total 1/);
    expect(metrics).toMatch(/cutover_sidecar_request_duration_seconds_count\{flow="inventory.release",mode="direct"\} 1/);
    expect(bus.all()).toHaveLength(0);
  });

  it('forwards malformed JSON as is and publishes it raw with its content type', async () => {
    const { sc, bus } = await sidecar();
    const res = await request(sc.data.url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body: '{"sku": "SKU-RED-MUG", qty' });
    expect(res.status).toBe(400);
    await waitFor(() => bus.messages(RESERVE_OBS).length === 1);
    const call = bus.messages(RESERVE_TOPIC)[0]!;
    expect(call.key).toBeNull();
    expect(call.event.partitionkey).toBeUndefined();
    expect(call.event.data).toMatchObject({ body: '{"sku": "SKU-RED-MUG", qty', bodyEncoding: 'utf8', contentType: 'application/json' });
    expect(bus.messages(RESERVE_OBS)[0]!.event.data).toMatchObject({ status: 400, body: { error: { code: 'BAD_JSON' } } });
  });

  it('forwards bodies over the capture limit without dual-writing them, counted with the reason', async () => {
    const { sc, bus } = await sidecar({ capture: { maxBodyBytes: 64 } });
    const big = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: 'x'.repeat(200) });
    const res = await request(sc.data.url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body: big });
    expect(res.status).toBe(201);
    // Chunked (no content-length): the limit is found while streaming.
    const chunked = await new Promise<number>((resolve, reject) => {
      const r = http.request(`${sc.data.url}/reservations`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res2) => {
        res2.resume();
        res2.on('end', () => resolve(res2.statusCode!));
      });
      r.on('error', reject);
      r.write(big.slice(0, 50));
      r.end(big.slice(50));
    });
    expect(chunked).toBe(201);
    const metrics = await (await fetch(`${sc.admin.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toMatch(/cutover_sidecar_capture_skipped_total\{flow="inventory.reserve",reason="body_too_large"\} 2/);
    expect(bus.all()).toHaveLength(0);
  });

  it('answers 502 with a JSON error when the upstream refuses, and records it in the observation', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { sc, bus } = await sidecar({ upstream: `http://127.0.0.1:${port}` });
    const res = await request(sc.data.url, reserve('SKU-RED-MUG'));
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: { code: ErrorCodes.UPSTREAM_UNREACHABLE } });
    await waitFor(() => bus.messages(RESERVE_OBS).length === 1);
    expect(bus.messages(RESERVE_OBS)[0]!.event.data).toMatchObject({ status: 502, error: { code: ErrorCodes.UPSTREAM_UNREACHABLE } });
  });

  it('answers 504 when the upstream is too slow', async () => {
    const slow = http.createServer(() => undefined); // never answers
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { slow.close(() => r()); slow.closeAllConnections(); }));
    const { sc, bus } = await sidecar({ upstream: `http://127.0.0.1:${(slow.address() as AddressInfo).port}`, upstreamTimeout: '200ms' });
    const res = await request(sc.data.url, reserve('SKU-RED-MUG'));
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: { code: ErrorCodes.UPSTREAM_TIMEOUT } });
    await waitFor(() => bus.messages(RESERVE_OBS).length === 1);
    expect(bus.messages(RESERVE_OBS)[0]!.event.data).toMatchObject({ status: 504, error: { code: ErrorCodes.UPSTREAM_TIMEOUT } });
  });

  it('encrypts configured fields, names the key id, and never publishes an encrypted key in clear', async () => {
    const key = randomBytes(32);
    const { sc, bus } = await sidecar(
      {
        flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: RESERVE_TOPIC, key: 'body.customerId', mode: 'shadow' }],
        encryption: { keyEnv: 'TEST_PII_KEY', keyId: 'pii-1', fields: ['/customerId'] },
      },
      { TEST_PII_KEY: key.toString('hex') },
    );
    await request(sc.data.url, { ...reserve('SKU-RED-MUG'), body: JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: 'alice@example.com' }) });
    await waitFor(() => bus.messages(RESERVE_OBS).length === 1);
    const call = bus.messages(RESERVE_TOPIC)[0]!;
    expect(JSON.stringify(bus.all())).not.toContain('alice@example.com');
    expect(call.event.cutoverkid).toBe('pii-1');
    expect(bus.messages(RESERVE_OBS)[0]!.event.cutoverkid).toBe('pii-1');
    const cipher = new FieldCipher(key, 'pii-1', ['/customerId']);
    expect(cipher.decryptValue((call.event.data as { body: { customerId: never } }).body.customerId, { eventId: call.event.id, part: 'request' }, '/customerId')).toBe('alice@example.com');
    expect(call.key).toBe(cipher.digest('alice@example.com'));
  });

  it('refuses to start without the encryption key, naming the variable', async () => {
    await expect(
      startSidecar(config({ encryption: { keyEnv: 'NOT_SET_ANYWHERE', keyId: 'k', fields: ['/x'] } }), { bus: new MemoryBus(), env: {} }),
    ).rejects.toMatchObject({ code: ErrorCodes.CONFIG_INVALID, issues: [expect.stringContaining('NOT_SET_ANYWHERE')] });
  });

  it('keeps forwarding while the bus is down and sends the spooled events once it is back', async () => {
    const { sc, bus } = await sidecar({ publisher: { backoff: '20ms', maxBackoff: '50ms' } });
    bus.down();
    for (let i = 0; i < 20; i++) expect((await request(sc.data.url, reserve('SKU-RED-MUG'))).status).toBe(201);
    await waitFor(() => sc.publisher.spoolDepth === 40);
    const ready = await fetch(`${sc.admin.url}/readyz`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ready.status).toBe(503);
    bus.up();
    await waitFor(() => bus.messages(RESERVE_TOPIC).length === 20 && bus.messages(RESERVE_OBS).length === 20);
    expect((await fetch(`${sc.admin.url}/readyz`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });
});

describe('routes and response capture', () => {
  async function tinyServer(name: string, handler?: http.RequestListener): Promise<string> {
    const server = http.createServer(
      handler ??
        ((req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ server: name, url: req.url, host: req.headers.host }));
        }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('routes by Host and path prefix, the rest to upstream, and 404s without any upstream', async () => {
    const pricing = await tinyServer('pricing');
    const orders = await tinyServer('orders');
    const fallback = await tinyServer('fallback');
    const { sc } = await sidecar({ upstream: fallback, routes: [{ host: 'pricing.internal', upstream: pricing }, { prefix: '/orders/', upstream: orders }], flows: [] });
    const who = async (p: string, host?: string) => JSON.parse((await request(sc.data.url, { path: p, headers: host ? { host } : {} })).body.toString()).server;
    expect(await who('/quote', 'pricing.internal')).toBe('pricing');
    expect(await who('/quote', 'pricing.internal:8080')).toBe('pricing');
    expect(await who('/orders/7')).toBe('orders');
    expect(await who('/other')).toBe('fallback');
    // The Host header travels unchanged, as the caller sent it.
    expect(JSON.parse((await request(sc.data.url, { path: '/x', headers: { host: 'pricing.internal' } })).body.toString()).host).toBe('pricing.internal');

    const { sc: noFallback } = await sidecar({ upstream: undefined, routes: [{ prefix: '/orders/', upstream: orders }], flows: [] });
    const res = await request(noFallback.data.url, { path: '/nowhere' });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: { code: ErrorCodes.NOT_FOUND } });
  });

  it('decodes gzip responses for the observation and flags responses over the limit', async () => {
    const { gzipSync } = await import('node:zlib');
    const big = 'y'.repeat(5_000);
    const upstream = await tinyServer('z', (req, res) => {
      if (req.url === '/gz') {
        const body = gzipSync(JSON.stringify({ ok: true }));
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
        return res.end(body);
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(big);
    });
    const { sc, bus } = await sidecar({
      upstream,
      capture: { maxResponseBytes: 1_000 },
      flows: [{ name: 'z.get', match: { method: 'GET', path: '/:what' }, topic: 'commands.agent.z.get', mode: 'shadow' }],
    });
    const gz = await request(sc.data.url, { path: '/gz' });
    expect(gz.headers['content-encoding']).toBe('gzip'); // forwarded as is
    const large = await request(sc.data.url, { path: '/big' });
    expect(large.body.toString()).toBe(big);
    await waitFor(() => bus.messages(observationsTopicOf('z.get')).length === 2);
    const [a, b] = bus.messages(observationsTopicOf('z.get')).map((d) => d.event.data as Record<string, unknown>);
    expect(a).toMatchObject({ status: 200, body: { ok: true } });
    expect(b).toMatchObject({ status: 200, bodySkipped: 'too_large', bodyBytes: 5_000 });
    expect(b!.body).toBeUndefined();
  });
});

describe('admin API', () => {
  it('requires the bearer token', async () => {
    const { sc } = await sidecar();
    for (const p of ['/healthz', '/readyz', '/flows', '/metrics', '/nope']) {
      const res = await fetch(`${sc.admin.url}${p}`);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: ErrorCodes.UNAUTHORIZED } });
      expect((await fetch(`${sc.admin.url}${p}`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    }
    const ok = await fetch(`${sc.admin.url}/healthz`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect((await fetch(`${sc.admin.url}/nope`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
  });

  it('serves without a token when auth is disabled on loopback', async () => {
    const { sc } = await sidecar({ admin: { listen: '127.0.0.1:0', auth: false } });
    const flows = await fetch(`${sc.admin.url}/flows`);
    expect(flows.status).toBe(200);
    expect(((await flows.json()) as { flows: Array<{ name: string; mode: string }> }).flows.map((f: { name: string; mode: string }) => `${f.name}:${f.mode}`)).toEqual(['inventory.reserve:shadow', 'inventory.stock:shadow', 'inventory.release:direct']);
    const metrics = await (await fetch(`${sc.admin.url}/metrics`)).text();
    for (const name of ['cutover_sidecar_publish_queue_depth', 'cutover_sidecar_spool_depth', 'cutover_sidecar_publish_duration_seconds', 'cutover_sidecar_upstream_duration_seconds']) expect(metrics).toContain(name);
  });
});
