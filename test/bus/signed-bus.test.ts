import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { signedBus } from '../../src/bus/signed-bus.js';
import { DlqHeaders, type BusMessage } from '../../src/bus/types.js';
import { flowShadowSchema } from '../../src/config/shadow.js';
import { signEvent, verifyEvent, type Signer, type Trust } from '../../src/events/signature.js';
import { MemoryDedupeStore } from '../../src/handling/dedupe/memory.js';
import { AgentBus } from '../../src/sdk/index.js';
import { ReplayConsumer } from '../../shadow/replay-consumer.js';
import { buildCallMessage } from '../../proxy/call-event.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { appendFlip, currentModes, readFlips } from '../../src/flips/log.js';
import type { FlipRecord } from '../../src/flips/types.js';
import { waitFor } from '../helpers/wait-for.js';

const inventory = generateKeyPairSync('ed25519');
const shadowKey = generateKeyPairSync('ed25519');
const mallory = generateKeyPairSync('ed25519');

const FLOW = { name: 'inventory.reserve', topic: 'commands.agent.inventory.reserve', match: { method: 'POST', path: '/reservations' } };
const REPLIES = 'cutover.replies.test.r1';

function trust(enforce = true): Trust {
  return {
    keys: new Map([
      ['inventory', new Map([['k1', inventory.publicKey]])],
      ['shadow', new Map([['s1', shadowKey.publicKey]])],
    ]),
    allowUnsigned: new Set(),
    enforce,
  };
}

const signer = (agent: string, keyId: string, key: KeyObject): Signer => ({ agent, keyId, key });

function callMessage(id: string): BusMessage {
  return buildCallMessage({
    agent: 'inventory',
    flow: { name: FLOW.name, schemaVersion: '1', mode: 'shadow' },
    topic: FLOW.topic,
    id,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    partitionKey: 'sku-1',
    data: { body: { sku: 'sku-1', qty: 2 }, params: {}, query: {} },
    method: 'POST',
    target: '/reservations',
    headers: { 'content-type': 'application/json' },
    replyTo: REPLIES,
  });
}

/** The three forgeries an attacker with plain bus access can make, published without any identity. */
function forgeries(): BusMessage[] {
  const unsigned = callMessage('forged-unsigned');
  const unknown = callMessage('forged-unknown');
  unknown.event = signEvent({ ...unknown.event, source: '/agents/mallory' }, FLOW.topic, signer('mallory', 'm1', mallory.privateKey), unknown.headers);
  const bad = callMessage('forged-bad-signature');
  bad.event = signEvent(bad.event, FLOW.topic, signer('inventory', 'k1', mallory.privateKey), bad.headers);
  return [unsigned, unknown, bad];
}

const EXPECTED_CODES = { 'forged-unsigned': 'CUTOVER_AUTH_UNSIGNED', 'forged-unknown': 'CUTOVER_AUTH_UNKNOWN_AGENT', 'forged-bad-signature': 'CUTOVER_AUTH_BAD_SIGNATURE' };

async function target() {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push(req.url!);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function rejected(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('cutover_events_rejected_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [`${v.labels.consumer}:${v.labels.reason}`, v.value]));
}

describe('signed bus (memory bus)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function replaySetup(enforce: boolean) {
    const t = await target();
    cleanups.push(t.close);
    const raw = new MemoryBus();
    const registry = new Registry();
    const sidecar = signedBus(raw, { signer: signer('inventory', 'k1', inventory.privateKey) });
    const shadowBus = signedBus(raw, { signer: signer('shadow', 's1', shadowKey.privateKey), trust: trust(enforce), registry });
    const consumer = new ReplayConsumer({ bus: shadowBus, dedupe: new MemoryDedupeStore(), flow: { ...FLOW, shadow: { ...flowShadowSchema.parse({ target: t.url }), target: t.url } } });
    await consumer.start();
    cleanups.push(() => consumer.close());
    return { t, raw, sidecar, registry, consumer };
  }

  it('a forged call event never reaches the shadow target: dead-lettered with its reason; a signed one goes through with a signed reply', async () => {
    const { t, raw, sidecar, registry, consumer } = await replaySetup(true);
    await raw.publish(FLOW.topic, forgeries());
    await sidecar.publish(FLOW.topic, [callMessage('signed-1')]);
    await waitFor(() => raw.messages(REPLIES).length === 1 && raw.messages(`${FLOW.topic}.dlq`).length === 3, { what: 'one reply and three dead letters' });
    expect(t.seen).toEqual(['/reservations']);
    const dead = raw.messages(`${FLOW.topic}.dlq`);
    expect(Object.fromEntries(dead.map((m) => [m.event.id, m.headers[DlqHeaders.errorCode]]))).toEqual(EXPECTED_CODES);
    expect(dead.every((m) => m.headers[DlqHeaders.attempts] === '1')).toBe(true);
    expect(await rejected(registry)).toEqual({
      [`${consumer.group}:CUTOVER_AUTH_UNSIGNED`]: 1,
      [`${consumer.group}:CUTOVER_AUTH_UNKNOWN_AGENT`]: 1,
      [`${consumer.group}:CUTOVER_AUTH_BAD_SIGNATURE`]: 1,
    });
    const reply = raw.messages(REPLIES)[0]!;
    expect(reply.event).toMatchObject({ correlationid: 'signed-1', signatureagent: 'shadow', signaturekeyid: 's1' });
    expect(verifyEvent(reply.event, REPLIES, trust(), reply.headers)).toBe('ok');
  });

  it('with enforce off, forged events are counted but still handled (watch before enforcing)', async () => {
    const { t, raw, registry, consumer } = await replaySetup(false);
    await raw.publish(FLOW.topic, forgeries());
    await waitFor(() => raw.messages(REPLIES).length === 3, { what: 'three replies' });
    expect(t.seen).toHaveLength(3);
    expect(raw.messages(`${FLOW.topic}.dlq`)).toHaveLength(0);
    expect(Object.values(await rejected(registry)).reduce((a, b) => a + b, 0)).toBe(3);
    expect(Object.keys(await rejected(registry)).every((k) => k.startsWith(`${consumer.group}:`))).toBe(true);
  });

  it('a forged event never reaches an SDK handler; a signed one does', async () => {
    const raw = new MemoryBus();
    const registry = new Registry();
    const agents = new AgentBus({ bus: raw, agent: 'inventory', signer: signer('inventory', 'k1', inventory.privateKey), trust: trust(), registry });
    cleanups.push(() => agents.close());
    const seen: string[] = [];
    await agents.subscribe(FLOW.topic, async (ctx) => {
      seen.push(ctx.event.id);
      ctx.reply({ ok: true });
    }, { group: 'inventory.reserve' });
    await raw.publish(FLOW.topic, forgeries());
    const published = await agents.publish(FLOW.topic, { body: { sku: 'a' }, params: {}, query: {} }, { replyTo: REPLIES, correlationId: 'sdk-1' });
    await waitFor(() => raw.messages(REPLIES).length === 1 && raw.messages(`${FLOW.topic}.dlq`).length === 3, { what: 'one reply and three dead letters' });
    expect(seen).toEqual([published.id]);
    expect(Object.fromEntries(raw.messages(`${FLOW.topic}.dlq`).map((m) => [m.event.id, m.headers[DlqHeaders.errorCode]]))).toEqual(EXPECTED_CODES);
    expect(await rejected(registry)).toMatchObject({ 'inventory.reserve:CUTOVER_AUTH_UNSIGNED': 1 });
    expect(verifyEvent(raw.messages(REPLIES)[0]!.event, REPLIES, trust())).toBe('ok');
  });

  it('a forged flip record never moves a flow: followers and reports read only verified records', async () => {
    const raw = new MemoryBus();
    const registry = new Registry();
    const operator = signedBus(raw, { signer: signer('shadow', 's1', shadowKey.privateKey), trust: trust(), registry });
    const record = { flow: 'inventory.reserve', from: 'shadow', to: 'canary:10', reason: 'owner approved', who: 'carol', at: new Date().toISOString(), forced: false, report: null };
    await appendFlip(operator, record as FlipRecord);
    // The attacker copies the record, changes it to the bus, and appends it with plain bus access.
    await appendFlip(raw, { ...record, to: 'bus', who: 'carol' } as FlipRecord);
    const follower = signedBus(raw, { trust: trust(), registry });
    const seen = await readFlips(follower);
    expect(seen.map((f) => f.to)).toEqual(['canary:10']);
    expect(currentModes(seen, new Map([['inventory.reserve', 'shadow' as const]])).get('inventory.reserve')).toBe('canary:10');
    expect(await registry.getSingleMetricAsString('cutover_events_rejected_total')).toContain('consumer="read:cutover.control",reason="CUTOVER_AUTH_UNSIGNED"} 1');
    // With enforce off the forged record is read (and counted): watch before enforcing.
    expect((await readFlips(signedBus(raw, { trust: trust(false) }))).map((f) => f.to)).toEqual(['canary:10', 'bus']);
  });

  it('without signer or trust the bus is returned unwrapped (no identity configured = unchanged behaviour)', () => {
    const raw = new MemoryBus();
    expect(signedBus(raw, {})).toBe(raw);
  });
});
