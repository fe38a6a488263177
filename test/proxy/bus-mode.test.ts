import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start as startInventory, type InventoryAgent } from '../../examples/agents/inventory.js';
import { canaryBucket, replyToResponse, takesBusPath } from '../../proxy/bus-mode.js';
import { observationsTopicOf } from '../../src/events/wire.js';
import type { SidecarConfigInput } from '../../src/config/schema.js';
import { parseSidecarConfig, startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import type { BusMessage, Delivery, SubscribeOptions, Subscription } from '../../src/bus/types.js';
import { ErrorCodes } from '../../src/errors.js';
import { topicsMatcher } from '../../src/bus/topics.js';
import { createRegistry } from '../../src/metrics.js';
import { buildBusReply } from '../../src/events/reply.js';
import { request } from '../helpers/http.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';
import { sealResult } from '../../src/crypto/body-fields.js';
import type { Keyring } from '../../src/crypto/keyring.js';
import { keyringOf } from '../helpers/field-keys.js';

/** The shared MemoryBus only replays what it holds at subscribe time; bus mode needs live subscribers. */
class LiveMemoryBus extends MemoryBus {
  private readonly subs: Array<{ matches: (t: string) => boolean; options: SubscribeOptions; open: boolean }> = [];

  override async publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    const before = this.messages(topic).length;
    await super.publish(topic, messages);
    const added = this.messages(topic).slice(before);
    for (const s of this.subs) {
      if (!s.open || !s.matches(topic)) continue;
      for (const d of added) setImmediate(() => void s.options.handler(d).catch(() => undefined));
    }
  }

  override async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const entry = { matches: topicsMatcher(options.topics), options, open: true };
    this.subs.push(entry);
    return { group: options.group, close: async () => void (entry.open = false) };
  }
}

const FLOW_TOPIC = 'commands.agent.inventory.reserve';
const STOCK_TOPIC = 'commands.agent.inventory.stock';
let agent: InventoryAgent;
let dataDir: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  agent = await startInventory();
  dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-busmode-'));
  cleanups.push(() => agent.close(), () => rm(dataDir, { recursive: true, force: true }));
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type FlowOverrides = Record<string, unknown>;

function config(reserve: FlowOverrides = {}, stock: FlowOverrides = {}, extra: Partial<SidecarConfigInput> = {}): SidecarConfigInput {
  return {
    agent: 'inventory',
    listen: '127.0.0.1:0',
    upstream: agent.url,
    admin: { listen: '127.0.0.1:0', auth: false },
    dataDir: path.join(dataDir, randomUUID()),
    publisher: { publishTimeout: '300ms', backoff: '50ms', maxBackoff: '200ms' },
    flows: [
      { name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: FLOW_TOPIC, key: 'body.customerId', mode: 'bus', timeout: '1s', ...reserve },
      { name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: STOCK_TOPIC, key: 'path.sku', mode: 'direct', ...stock },
    ] as SidecarConfigInput['flows'],
    ...extra,
  };
}

async function sidecar(cfg: SidecarConfigInput, env?: NodeJS.ProcessEnv): Promise<{ sc: SidecarHandle; bus: LiveMemoryBus }> {
  const bus = new LiveMemoryBus();
  const sc = await startSidecar(cfg, { bus, registry: createRegistry(), ...(env ? { env } : {}) });
  cleanups.push(() => sc.close());
  return { sc, bus };
}

/** A bus-side agent that answers every command on `topic` (optionally after `hold` resolves). */
async function fakeReplier(bus: LiveMemoryBus, topic: string, options: { hold?: () => Promise<void>; status?: number; answer?: unknown; seal?: Keyring } = {}): Promise<Delivery[]> {
  const seen: Delivery[] = [];
  await bus.subscribe({
    group: 'fake-replier',
    topics: [topic],
    handler: async (d) => {
      seen.push(d);
      if (!d.event.replyto) return;
      await options.hold?.();
      const body = options.answer ?? { via: 'bus', echo: d.event.data, mode: d.event.cutovermode };
      const result = { status: options.status ?? 201, headers: { 'content-type': 'application/json; charset=utf-8', location: '/reservations/bus-1', 'x-internal': 'no' }, body };
      const reply = buildBusReply({
        call: d.event,
        eventPublishedAt: d.publishedAt,
        consumedAt: Date.now(),
        attempt: 1,
        source: '/agents/fake',
        result: sealResult(options.seal, result, d.event.id),
      });
      await bus.publish(d.event.replyto, [reply]);
    },
  });
  return seen;
}

const reserve = (customerId: string) => ({
  method: 'POST',
  path: '/reservations',
  headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
  body: JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId }),
});

describe('canary hash', () => {
  it('is stable for a key and splits keys close to N%', () => {
    expect(canaryBucket('cust-42')).toBe(canaryBucket('cust-42'));
    for (const percent of [1, 10, 50, 90]) {
      let bus = 0;
      const n = 20_000;
      for (let i = 0; i < n; i++) if (takesBusPath(`cust-${i}`, percent)) bus++;
      expect(Math.abs(bus / n - percent / 100), `canary:${percent}`).toBeLessThan(0.015);
    }
  });
});

describe('replyToResponse', () => {
  it('rebuilds status, allow-listed headers and body; errors become 502 with the code', () => {
    const r = replyToResponse({ status: 201, headers: { 'content-type': 'application/json', location: '/a', 'set-cookie': 'x' }, body: { a: 1 } });
    expect(r).toEqual({ status: 201, headers: { 'content-type': 'application/json', location: '/a' }, body: Buffer.from('{"a":1}') });
    expect(replyToResponse({ status: 200, body: 'aGk=', bodyEncoding: 'base64', contentType: 'application/octet-stream' }).body.toString()).toBe('hi');
    const failed = replyToResponse({ error: { code: 'CUTOVER_HANDLER_FAILED', message: 'boom' }, dlq: true });
    expect(failed.status).toBe(502);
    expect(JSON.parse(failed.body.toString())).toMatchObject({ error: { code: 'CUTOVER_HANDLER_FAILED' } });
    expect(replyToResponse({ status: 200, bodySkipped: 'too_large' }).status).toBe(502);
  });
});

describe('bus mode (memory bus, fake replier)', () => {
  it('publishes the command with this replica\'s reply channel and answers with the reply', async () => {
    const { sc, bus } = await sidecar(config());
    const seen = await fakeReplier(bus, FLOW_TOPIC);
    const res = await request(sc.data.url, reserve('cust-1'));
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers.location).toBe('/reservations/bus-1');
    expect(res.headers['x-internal']).toBeUndefined();
    expect(JSON.parse(res.body.toString())).toMatchObject({ via: 'bus', mode: 'bus', echo: { body: { customerId: 'cust-1' } } });
    expect(seen).toHaveLength(1);
    const cmd = seen[0]!.event;
    expect(cmd.replyto).toBe(sc.replies.topic);
    expect(sc.replies.topic).toMatch(/^cutover\.replies\.inventory\.[0-9a-f]{12}$/);
    expect(cmd.cutovermode).toBe('bus');
    expect(cmd.correlationid).toBe(cmd.id);
    expect(agent.served.get('POST /reservations') ?? 0).toBeGreaterThanOrEqual(0);
    expect(sc.flows.get('inventory.reserve')!.counters).toMatchObject({ busServed: 1, fallbacks: 0 });
  });

  it('encrypted reply fields: the caller gets clear values, the bus and the observation keep them sealed; without the key 502 CUTOVER_CRYPTO_FAILED', async () => {
    const key = Buffer.alloc(32, 7);
    const encryption = { keyEnv: 'BUSMODE_PII_KEY', keyId: 'pii-1', fields: ['/customer/email'] };
    const answer = { id: 'r-1', customer: { email: 'erin@example.com' } };
    const { sc, bus } = await sidecar(config({}, {}, { encryption }), { BUSMODE_PII_KEY: key.toString('hex') });
    await fakeReplier(bus, FLOW_TOPIC, { answer, seal: keyringOf({ keyId: 'pii-1', key }) });
    const res = await request(sc.data.url, reserve('cust-enc'));
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body.toString())).toEqual(answer);
    const replies = bus.messages(sc.replies.topic);
    expect(replies).toHaveLength(1);
    expect(JSON.stringify(replies[0]!.event.data)).not.toContain('erin@example.com');

    // The same sealed answer to a sidecar that holds no key: never `{ "$enc" }` objects as the answer.
    const plain = await sidecar(config());
    await fakeReplier(plain.bus, FLOW_TOPIC, { answer, seal: keyringOf({ keyId: 'pii-1', key }) });
    const refused = await request(plain.sc.data.url, reserve('cust-enc'));
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body.toString()).error).toMatchObject({ code: ErrorCodes.CRYPTO_FAILED, message: expect.stringMatching(/holds no encryption key/) });
  });

  it('canary:N sends a key always down one path, the bus share as commands and the rest as shadow', async () => {
    // A slow machine must not turn a late reply into a 504 and the key into a wrong-path failure.
    // The fake replier's answers differ from the agent's: the comparator would soon roll the flow back.
    const { sc, bus } = await sidecar(config({ mode: 'canary:50', timeout: '10s', rollback: 'off' }));
    const seen = await fakeReplier(bus, FLOW_TOPIC);
    const keys = Array.from({ length: 40 }, (_, i) => `cust-${i}`);
    for (const round of [0, 1]) {
      for (const k of keys) {
        const res = await request(sc.data.url, reserve(k));
        const viaBus = JSON.parse(res.body.toString()).via === 'bus';
        expect(viaBus, `${k} round ${round}`).toBe(takesBusPath(k, 50));
      }
    }
    const busKeys = keys.filter((k) => takesBusPath(k, 50));
    expect(busKeys.length).toBeGreaterThan(5);
    expect(busKeys.length).toBeLessThan(35);
    // The direct share is dual-written as shadow: its copies say so, so `deliver:` skips them.
    await waitFor(() => seen.length === keys.length * 2, { what: 'every call on the flow topic' });
    expect(seen.filter((d) => d.event.cutovermode === 'canary:50')).toHaveLength(busKeys.length * 2);
    expect(seen.filter((d) => d.event.cutovermode === 'shadow' && d.event.replyto === observationsTopicOf('inventory.reserve'))).toHaveLength((keys.length - busKeys.length) * 2);
  });

  it('no reply in time: 504 CUTOVER_REPLY_TIMEOUT, or the direct answer with fallback: direct', async () => {
    const { sc } = await sidecar(config({ timeout: '200ms' }));
    const res = await request(sc.data.url, reserve('cust-1'));
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body.toString()).error.code).toBe(ErrorCodes.REPLY_TIMEOUT);
    expect(sc.flows.get('inventory.reserve')!.counters.replyTimeouts).toBe(1);

    const withFallback = await sidecar(config({ timeout: '200ms', fallback: 'direct' }));
    const res2 = await request(withFallback.sc.data.url, reserve('cust-1'));
    expect(res2.status).toBe(201);
    expect(JSON.parse(res2.body.toString())).toMatchObject({ status: 'held', customerId: 'cust-1' });
    expect(withFallback.sc.flows.get('inventory.reserve')!.counters).toMatchObject({ fallbacks: 1, replyTimeouts: 1 });
    const metrics = await withFallback.sc.registry.metrics();
    expect(metrics).toMatch(/cutover_sidecar_bus_path_total\{flow="inventory.reserve",outcome="fallback_timeout"\} 1/);
  });

  it('bus down: 503 CUTOVER_BUS_UNAVAILABLE and nothing on the bus, or the direct answer with fallback', async () => {
    const { sc, bus } = await sidecar(config());
    await fakeReplier(bus, FLOW_TOPIC);
    bus.down();
    const res = await request(sc.data.url, reserve('cust-1'));
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body.toString()).error.code).toBe(ErrorCodes.BUS_UNAVAILABLE);
    expect(sc.publisher.spoolDepth).toBe(0); // a request/reply command is never spooled
    bus.up();
    expect((await request(sc.data.url, reserve('cust-1'))).status).toBe(201);

    const fb = await sidecar(config({ fallback: 'direct' }));
    fb.bus.down();
    const res2 = await request(fb.sc.data.url, reserve('cust-2'));
    expect(res2.status).toBe(201);
    expect(JSON.parse(res2.body.toString())).toMatchObject({ status: 'held' });
    expect(fb.sc.flows.get('inventory.reserve')!.counters).toMatchObject({ fallbacks: 1, busUnavailable: 1 });
  });

  it('kind: event is answered only once the bus holds the event, or the spool when the bus is down', async () => {
    const { sc, bus } = await sidecar(config({ kind: 'event', status: 202 }));
    bus.slow(150);
    const res = await request(sc.data.url, reserve('cust-1'));
    // The response came after the publish resolved: the event is on the bus already.
    expect(res.status).toBe(202);
    const { id } = JSON.parse(res.body.toString()) as { id: string };
    expect(bus.messages(FLOW_TOPIC).map((d) => d.event.id)).toContain(id);
    expect(bus.messages(FLOW_TOPIC).find((d) => d.event.id === id)!.event.replyto).toBeUndefined();

    bus.slow(0);
    bus.down();
    const res2 = await request(sc.data.url, reserve('cust-2'));
    expect(res2.status).toBe(202);
    expect(sc.publisher.spoolDepth).toBe(1);
    const id2 = (JSON.parse(res2.body.toString()) as { id: string }).id;
    bus.up();
    await waitFor(() => bus.messages(FLOW_TOPIC).some((d) => d.event.id === id2), { what: 'the spooled event sent' });
  });

  it('verify: true keeps a direct observation and a copy of the bus reply for the comparator', async () => {
    const { sc, bus } = await sidecar(config({}, { mode: 'bus', verify: true }));
    await fakeReplier(bus, STOCK_TOPIC, { status: 200 });
    const res = await request(sc.data.url, { path: '/stock/SKU-RED-MUG' });
    expect(res.status).toBe(200);
    await waitFor(() => bus.messages(observationsTopicOf('inventory.stock')).length === 2, { what: 'direct + bus observations' });
    const obs = bus.messages(observationsTopicOf('inventory.stock'));
    const types = obs.map((d) => d.event.type).sort();
    expect(types).toEqual(['cutover.observation.bus', 'cutover.observation.direct']);
    expect(new Set(obs.map((d) => d.event.correlationid)).size).toBe(1);
    const direct = obs.find((d) => d.event.type === 'cutover.observation.direct')!;
    expect(direct.event.data).toMatchObject({ status: 200, body: { sku: 'SKU-RED-MUG' } });
  });

  it('a flip back to direct applies to the next request; the call in flight finishes on the bus', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const { sc, bus } = await sidecar(config({ timeout: '5s' }));
    const seen = await fakeReplier(bus, FLOW_TOPIC, { hold: () => held });
    const inFlight = request(sc.data.url, reserve('cust-1'));
    await waitFor(() => seen.length === 1, { what: 'command published' });
    sc.flows.setMode('inventory.reserve', 'direct');
    const next = await request(sc.data.url, reserve('cust-2'));
    expect(next.status).toBe(201);
    expect(JSON.parse(next.body.toString())).toMatchObject({ status: 'held', customerId: 'cust-2' });
    release();
    const first = await inFlight;
    expect(first.status).toBe(201);
    expect(JSON.parse(first.body.toString()).via).toBe('bus');
  });
});

describe('config', () => {
  it('validates deliver flows, verify on unsafe calls and status without kind: event, with paths', () => {
    const bad = config({ verify: true, status: 201 }, {}, { deliver: { flows: ['inventory.nope'] } });
    expect(() => parseSidecarConfig(bad)).toThrow(/flows\[0\]\.verify: .*POST is not safe/);
    expect(() => parseSidecarConfig(bad)).toThrow(/flows\[0\]\.status: status applies to kind: event only/);
    expect(() => parseSidecarConfig(bad)).toThrow(/deliver\.flows\[0\]: no flow named "inventory\.nope"/);
    const ok = parseSidecarConfig(config({ verify: true, safe: true, fallback: 'direct' }, {}, { deliver: { flows: ['inventory.reserve'] } }));
    expect(ok.deliver).toMatchObject({ flows: ['inventory.reserve'], concurrency: 8, timeout: 5000, maxAttempts: 3 });
    expect(ok.flows[0]!.timeout).toBe(1000);
  });
});

describe('reply channel start', () => {
  it('is retried in the background when it fails, so bus mode recovers without a call to trigger it', async () => {
    class FlakyReplies extends LiveMemoryBus {
      failures = 0;
      override async subscribe(options: SubscribeOptions): Promise<Subscription> {
        if (options.topics.some((t) => t.startsWith('cutover.replies.')) && this.failures++ === 0) {
          throw Object.assign(new Error('join group timed out'), { code: ErrorCodes.BUS_TIMEOUT });
        }
        return super.subscribe(options);
      }
    }
    const bus = new FlakyReplies();
    const sc = await startSidecar(config(), { bus, registry: createRegistry() });
    cleanups.push(() => sc.close());
    await waitFor(() => sc.replies.ready, { timeoutMs: 10_000, what: 'the reply channel after one failed start' });
    expect(bus.failures).toBe(2);
    await fakeReplier(bus, FLOW_TOPIC);
    expect((await request(sc.data.url, reserve('cust-retry'))).status).toBe(201);
  });
});

describe('flip log at boot', () => {
  it('serves with the config modes when the flip log cannot be read in time', async () => {
    // A bus whose reads never yield: the follower can never finish reading cutover.control.
    class StuckReads extends LiveMemoryBus {
      override read(): ReturnType<MemoryBus['read']> {
        // Like a real read stream: next() waits until close() ends it.
        let end: (() => void) | undefined;
        const ended = new Promise<IteratorResult<Delivery>>((r) => (end = () => r({ done: true, value: undefined })));
        const it = { next: () => ended, return: async () => (end!(), { done: true as const, value: undefined }) };
        return { [Symbol.asyncIterator]: () => it, close: async () => void end!() } as ReturnType<MemoryBus['read']>;
      }
    }
    // Start returns although the log never answers: the boot wait bounds it, not the log.
    const sc = await startSidecar(config({ mode: 'direct' }), { bus: new StuckReads(), registry: createRegistry(), flipLogBootWaitMs: 300 });
    cleanups.push(() => sc.close());
    expect(sc.flows.get('inventory.reserve')?.mode).toBe('direct');
    expect((await request(sc.data.url, reserve('cust-boot'))).status).toBe(201);
  });
});

describe('deliver consumers start', () => {
  it('is retried in the background when it fails, and /readyz says when they consume', async () => {
    class FlakyDeliver extends LiveMemoryBus {
      failures = 0;
      override async subscribe(options: SubscribeOptions): Promise<Subscription> {
        if (options.group.startsWith('cutover.deliver.') && this.failures++ === 0) {
          throw Object.assign(new Error('join group timed out'), { code: ErrorCodes.BUS_TIMEOUT });
        }
        return super.subscribe(options);
      }
    }
    const bus = new FlakyDeliver();
    // One sidecar on both sides: its bus-mode calls are served by its own deliver consumer.
    const sc = await startSidecar(config({}, {}, { deliver: { flows: ['inventory.reserve'] } }), { bus, registry: createRegistry() });
    cleanups.push(() => sc.close());
    await waitFor(() => sc.deliver()?.ready === true, { timeoutMs: 10_000, what: 'the deliver consumers after one failed start' });
    expect(bus.failures).toBe(2);
    const ready = await request(sc.admin.url, { path: '/readyz' });
    expect(JSON.parse(ready.body.toString()).consumers).toEqual({ replies: true, deliver: true });
    const res = await request(sc.data.url, reserve('cust-deliver-retry'));
    expect(res.status).toBe(201);
    expect(sc.deliver()!.consumers[0]!.stats().delivered).toBe(1);
  });
});
