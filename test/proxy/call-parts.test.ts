import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSidecarConfig, startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { bodyBytes, type EncodedBody } from '../../src/events/body.js';
import { CallHeaders, observationsTopicOf } from '../../src/events/wire.js';
import { FieldCipher } from '../../src/crypto/field-cipher.js';

import { createRegistry } from '../../src/metrics.js';
import { buildCurl } from '../../reports/curl.js';
import { callSampleOf } from '../../shadow/observations.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const TOPIC = 'commands.agent.names.create';
const SECRETS = ['s3cret-1', 's3cret-2', 's3cret-3', 's3cret-4', 's3cret-5', 's3cret-6', 's3cret-7'];
// Every spelling a server reads as api_key or access_token, each carrying one secret.
const QUERY = `sku=A&API_KEY=${SECRETS[0]}&api-key=${SECRETS[1]}&Api_Key=${SECRETS[2]}&access_token[]=${SECRETS[3]}&access_token[]=${SECRETS[4]}&access%5Ftoken=${SECRETS[5]}&%41PI%5FKEY=${SECRETS[6]}`;

let upstream: http.Server;
let upstreamUrl: string;
let dataDir: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-call-parts-'));
  cleanups.push(() => new Promise((resolve) => upstream.close(resolve)), () => rm(dataDir, { recursive: true, force: true }));
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sidecar(overrides: Partial<SidecarConfigInput>, logger = pino({ level: 'silent' })): Promise<{ sc: SidecarHandle; bus: MemoryBus }> {
  const bus = new MemoryBus();
  const config: SidecarConfigInput = {
    agent: 'names',
    listen: '127.0.0.1:0',
    upstream: upstreamUrl,
    admin: { listen: '127.0.0.1:0', auth: false },
    dataDir: path.join(dataDir, randomUUID()),
    capture: { requestHeaders: ['*'] },
    flows: [{ name: 'names.create', match: { method: 'POST', path: '/names' }, topic: TOPIC, mode: 'shadow' }],
    ...overrides,
  };
  const sc = await startSidecar(config, { bus, registry: createRegistry(), logger });
  cleanups.push(() => sc.close());
  return { sc, bus };
}

/** A POST with raw header lines (two Authorization lines), as a client could send it. */
function post(baseUrl: string, target: string, body: Buffer): Promise<number> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: target }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.setHeader('Content-Type', 'application/json');
    req.setHeader('Authorization', ['Bearer first-credential', 'Bearer second-credential']);
    req.setHeader('X-Api-Key', 'header-credential');
    req.on('error', reject);
    req.end(body);
  });
}

describe('call events: what reaches the bus', () => {
  it('masks every shape of a secret query name in the event, its replay target and the report curl line', async () => {
    const { sc, bus } = await sidecar({});
    expect(await post(sc.data.url, `/names?${QUERY}`, Buffer.from('{"name":"x"}'))).toBe(201);
    await waitFor(() => bus.messages(TOPIC).length === 1);
    const delivery = bus.messages(TOPIC)[0]!;
    const published = JSON.stringify({ event: delivery.event, headers: delivery.headers });
    for (const secret of [...SECRETS, 'first-credential', 'second-credential', 'header-credential']) expect(published).not.toContain(secret);
    expect(delivery.headers[CallHeaders.target]).toContain('sku=A&');
    expect((delivery.event.data as { query: Record<string, unknown> }).query.sku).toBe('A');
    const curl = buildCurl(callSampleOf(delivery, { method: 'POST', target: '/names' }), sc.data.url);
    expect(JSON.stringify(curl)).toContain('sku=A');
    for (const secret of SECRETS) expect(JSON.stringify(curl)).not.toContain(secret);
  });

  it('publishes a declared-JSON body that is not valid UTF-8 as base64, byte for byte', async () => {
    const { sc, bus } = await sidecar({});
    const raw = Buffer.from('7b226e616d65223a22fffe227d', 'hex');
    expect(await post(sc.data.url, '/names', raw)).toBe(201);
    await waitFor(() => bus.messages(TOPIC).length === 1);
    const data = JSON.parse(JSON.stringify(bus.messages(TOPIC)[0]!.event.data)) as EncodedBody;
    expect(data.bodyEncoding).toBe('base64');
    expect(bodyBytes(data).equals(raw)).toBe(true);
  });

  it('keeps the query secrets out of the 502 log line', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const { sc } = await sidecar({ upstream: `http://127.0.0.1:${deadPort}` }, logger);
    expect(await post(sc.data.url, `/names?${QUERY}`, Buffer.from('{}'))).toBe(502);
    const line = lines.find((l) => l.includes('answered 502'));
    expect(line).toBeDefined();
    expect(line).toContain('sku=A');
    for (const secret of SECRETS) expect(line).not.toContain(secret);
  });
});

describe('call events with encrypted fields: fail closed', () => {
  const key = randomBytes(32);
  const encryption = { keyEnv: 'TEST_PII_KEY', keyId: 'pii-1', fields: ['/email'] };
  const env = { TEST_PII_KEY: key.toString('hex') };

  async function encrypting() {
    const bus = new MemoryBus();
    const registry = createRegistry();
    const sc = await startSidecar(
      { agent: 'names', listen: '127.0.0.1:0', upstream: upstreamUrl, admin: { listen: '127.0.0.1:0', auth: false }, dataDir: path.join(dataDir, randomUUID()), encryption, flows: [{ name: 'names.create', match: { method: 'POST', path: '/names' }, topic: TOPIC, mode: 'shadow' }] },
      { bus, registry, env },
    );
    cleanups.push(() => sc.close());
    return { sc, bus, registry };
  }

  it('publishes no body it cannot encrypt (malformed JSON), marks and counts it; a BOM-prefixed and a differently cased field are encrypted', async () => {
    const { sc, bus, registry } = await encrypting();
    expect(await post(sc.data.url, '/names', Buffer.from('{"email": "alice@example.com",'))).toBe(201);
    expect(await post(sc.data.url, '/names', Buffer.from('\uFEFF{"EMAIL": "bob@example.com"}'))).toBe(201);
    await waitFor(() => bus.messages(TOPIC).length === 2 && bus.messages(observationsTopicOf('names.create')).length === 2);
    expect(JSON.stringify(bus.all())).not.toMatch(/alice@example\.com|bob@example\.com/);
    const [malformed, bom] = bus.messages(TOPIC).map((d) => d.event);
    expect(malformed!.data).toMatchObject({ bodySkipped: 'unencryptable' });
    expect((malformed!.data as { body?: unknown }).body).toBeUndefined();
    const cipher = new FieldCipher(key, 'pii-1', ['/email']);
    expect(cipher.decryptValue((bom!.data as { body: { EMAIL: never } }).body.EMAIL, { eventId: bom!.id, part: 'request' }, '/EMAIL')).toBe('bob@example.com');
    expect(await registry.metrics()).toMatch(/cutover_sidecar_capture_skipped_total\{flow="names.create",reason="unencryptable"\} 1/);
    expect(sc.flows.get('names.create')!.counters.skipped).toMatchObject({ unencryptable: 1 });
  });

  it('a partition key from a credential header without an encryption key is refused at config validation', () => {
    const config = { agent: 'names', upstream: upstreamUrl, admin: { auth: false }, flows: [{ name: 'names.create', match: { method: 'POST', path: '/names' }, topic: TOPIC, key: 'header.Authorization', mode: 'shadow' }] };
    expect(() => parseSidecarConfig(config)).toThrow(/flows\[0\]\.key: header\.Authorization is a credential header/);
    expect(() => parseSidecarConfig({ ...config, encryption })).not.toThrow();
  });
});
