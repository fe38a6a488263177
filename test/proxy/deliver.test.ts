import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus, type Bus, type BusMessage, type Delivery } from '../../src/bus/index.js';
import { DlqHeaders } from '../../src/bus/types.js';
import { CallHeaders } from '../../src/events/wire.js';
import { MemoryDedupeStore } from '../../src/handling/dedupe/memory.js';
import { silentLogger } from '../../src/logger.js';
import { createRegistry } from '../../src/metrics.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { DeliverRuntime } from '../../proxy/deliver.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { deliverSchema } from '../../src/config/sidecar.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { redisUrl } from '../helpers/brokers.js';
import { waitFor } from '../helpers/wait-for.js';
import { keyringOf, rotationKeys } from '../helpers/field-keys.js';
import type { EncryptedValue } from '../../src/crypto/field-cipher.js';
import { openReplyData } from '../../src/crypto/body-fields.js';
import { KEY_ID_EXTENSION } from '../../src/events/wire.js';

/**
 * The callee side against forged commands: whoever can write to the bus writes a command on a flow's
 * topic asking the agent for another route with someone's credentials, answered to their own topic.
 */

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function agent() {
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function command(id: string, over: { method: string; target: string; headers: Record<string, string>; replyto: string; flow: string }): BusMessage {
  return {
    key: 'k',
    event: { specversion: '1.0', id, source: '/agents/checkout', type: over.flow, correlationid: id, replyto: over.replyto, cutoverflow: over.flow, cutovermode: 'bus', data: { body: { sku: 'a' }, params: {}, query: {} } },
    headers: { [CallHeaders.method]: over.method, [CallHeaders.target]: over.target, [CallHeaders.headers]: JSON.stringify(over.headers) },
  };
}

const ATTACK = { method: 'DELETE', target: '/admin/users/all', headers: { authorization: 'Bearer stolen', cookie: 'session=victim' }, replyto: 'attacker.inbox' };

describe('deliver: forged commands on the memory bus', () => {
  it('never reach the agent; the DLQ has each with its reason; a legitimate command is served', async () => {
    const a = await agent();
    const bus = new MemoryBus();
    const flow = { name: 'inventory.reserve', topic: 'commands.agent.inventory.reserve', match: { method: 'POST' as const, path: '/reservations' }, mode: 'bus' as const };
    const registry = createRegistry();
    const runtime = new DeliverRuntime({ bus, busConfig: { kind: 'embedded' } as never, config: deliverSchema.parse({ flows: [flow.name] }), flows: [flow as never], target: a.url, dataDir: '.', logger: silentLogger(), dedupe: new MemoryDedupeStore(), registry });
    await runtime.start();
    cleanups.push(() => runtime.close());
    await bus.publish(flow.topic, [
      command('forged-1', { ...ATTACK, flow: flow.name }),
      command('forged-2', { ...ATTACK, replyto: 'cutover.replies.checkout.a1', flow: flow.name }),
      // The flow's own route, answered to its observation topic: deliver never serves shadow copies.
      command('forged-3', { method: 'POST', target: '/reservations', headers: {}, replyto: 'cutover.observations.inventory.reserve', flow: flow.name }),
      command('forged-4', { method: 'POST', target: '/reservations', headers: { 'x-api-key': 'k' }, replyto: 'cutover.replies.checkout.a1', flow: flow.name }),
    ]);
    await waitFor(() => bus.messages(`${flow.topic}.dlq`).length === 4, { what: 'four dead letters' });
    expect(a.seen).toHaveLength(0);
    expect(bus.messages('attacker.inbox')).toHaveLength(0);
    expect(bus.messages('cutover.observations.inventory.reserve')).toHaveLength(0);
    expect(bus.messages('cutover.replies.checkout.a1')).toHaveLength(0);
    expect(Object.fromEntries(bus.messages(`${flow.topic}.dlq`).map((m) => [m.event.id, m.headers[DlqHeaders.errorCode]]))).toEqual({
      'forged-1': 'CUTOVER_AUTH_REPLYTO_REFUSED',
      'forged-2': 'CUTOVER_AUTH_REPLAY_REFUSED',
      'forged-3': 'CUTOVER_AUTH_REPLYTO_REFUSED',
      'forged-4': 'CUTOVER_AUTH_REPLAY_REFUSED',
    });
    expect(await registry.metrics()).toMatch(/cutover_replay_refused_total\{flow="inventory.reserve",reason="credential_header"\} 1/);
    await bus.publish(flow.topic, [command('legit', { method: 'POST', target: '/reservations', headers: { 'x-request-id': 'r1' }, replyto: 'cutover.replies.checkout.a1', flow: flow.name })]);
    await waitFor(() => bus.messages('cutover.replies.checkout.a1').length === 1, { what: 'the reply' });
    expect(a.seen.map((s) => `${s.method} ${s.url} ${s.headers['x-request-id']}`)).toEqual(['POST /reservations r1']);
  });
});

describe('deliver: encrypted commands on the memory bus', () => {
  it('gives the agent clear values, seals its answer with the caller\'s key, and dead-letters a tampered command with CUTOVER_CRYPTO_FAILED', async () => {
    const bodies: unknown[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(JSON.parse(Buffer.concat(chunks).toString()));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true,"customer":{"email":"erin@example.com"}}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const { old, current } = rotationKeys();
    // The callee's own key is `current`; the caller encrypts with `old`, which the callee lists as well.
    const keyring = keyringOf(current, [old]);
    const caller = keyringOf(old);
    const bus = new MemoryBus();
    const flow = { name: 'payments.charge', topic: 'commands.agent.payments.charge', match: { method: 'POST' as const, path: '/charges' }, mode: 'bus' as const };
    const runtime = new DeliverRuntime({ bus, busConfig: { kind: 'embedded' } as never, config: deliverSchema.parse({ flows: [flow.name] }), flows: [flow as never], target: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, dataDir: '.', logger: silentLogger(), dedupe: new MemoryDedupeStore(), keyring });
    await runtime.start();
    cleanups.push(() => runtime.close());
    const encrypted = (id: string): BusMessage => {
      const m = command(id, { method: 'POST', target: '/charges', headers: {}, replyto: 'cutover.replies.checkout.a1', flow: flow.name });
      const body = { customer: { email: 'erin@example.com' }, card: { number: '6011000990139424' } };
      caller.current.encryptFields(body, { eventId: id, part: 'request' });
      (m.event.data as { body: unknown }).body = body;
      return { ...m, event: { ...m.event, [KEY_ID_EXTENSION]: old.keyId } };
    };
    const tampered = encrypted('tampered');
    const email = (tampered.event.data as { body: { customer: { email: EncryptedValue } } }).body.customer.email;
    email.$enc = Buffer.from(Buffer.from(email.$enc, 'base64').map((b, i) => (i === 12 ? b ^ 1 : b))).toString('base64');
    await bus.publish(flow.topic, [encrypted('good'), tampered]);
    await waitFor(() => bus.messages(`${flow.topic}.dlq`).length === 1 && bus.messages('cutover.replies.checkout.a1').length === 2, { what: 'the reply, the error reply and the dead letter' });
    expect(bodies).toEqual([{ customer: { email: 'erin@example.com' }, card: { number: '6011000990139424' } }]);
    expect(bus.messages(`${flow.topic}.dlq`)[0]!.event.id).toBe('tampered');
    expect(bus.messages(`${flow.topic}.dlq`)[0]!.headers[DlqHeaders.errorCode]).toBe('CUTOVER_CRYPTO_FAILED');
    const replies = new Map(bus.messages('cutover.replies.checkout.a1').map((m) => [m.event.correlationid, m.event.data]));
    // Sealed on the bus with the key the call came with, so the caller's sidecar (holding only that key)
    // opens it for its caller.
    const good = replies.get('good') as { body: { ok: boolean; customer: { email: EncryptedValue } } };
    expect(good).toMatchObject({ status: 200, body: { ok: true, customer: { email: { kid: old.keyId } } } });
    expect(JSON.stringify(good)).not.toContain('erin@example.com');
    expect(openReplyData(caller, 'good', good)).toMatchObject({ body: { ok: true, customer: { email: 'erin@example.com' } } });
    expect(() => openReplyData(undefined, 'good', good)).toThrow(/holds no encryption key/);
    expect(replies.get('tampered')).toMatchObject({ dlq: true, error: { code: 'CUTOVER_CRYPTO_FAILED' } });
  });
});

const redis = redisUrl();

describe.skipIf(!redis)('deliver: forged commands on Redis, end to end through a callee sidecar', () => {
  it('the agent never sees the forged request and the DLQ holds it with its reason', async () => {
    const a = await agent();
    const id = randomUUID().replace(/-/g, '').slice(0, 10);
    const prefix = `cutover-forged-${id}:`;
    cleanups.push(() => deleteRedisPrefix(redis!, prefix));
    const dataDir = await mkdtemp(path.join(tmpdir(), 'cutover-forged-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const busConfig = { kind: 'redis' as const, url: redis!, prefix, blockTime: '200ms', claimIdle: '5s' };
    const flow = { name: `inventory.reserve.${id}`, match: { method: 'POST', path: '/reservations' }, topic: `commands.agent.inventory.reserve-${id}`, mode: 'direct' as const };
    const callee = await startSidecar(
      { agent: `inv-${id}`, listen: '127.0.0.1:0', upstream: a.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: busConfig, dataDir, deliver: { flows: [flow.name] }, flows: [flow] },
      { registry: createRegistry() },
    );
    cleanups.push(() => callee.close());
    await waitFor(() => callee.deliver()?.ready === true, { timeoutMs: 30_000, what: 'callee deliver consumers' });

    const forger: Bus = await createBus(busConfig);
    await forger.start();
    cleanups.push(() => forger.close());
    const dead: Delivery[] = [];
    const inbox: Delivery[] = [];
    const dlqSub = await forger.subscribe({ group: `dlq-${id}`, topics: [`${flow.topic}.dlq`, 'attacker.inbox'], from: 'start', handler: async (d) => void (d.topic === 'attacker.inbox' ? inbox : dead).push(d) });
    cleanups.push(() => dlqSub.close());
    await forger.publish(flow.topic, [command('forged-1', { ...ATTACK, flow: flow.name }), command('forged-2', { ...ATTACK, replyto: `cutover.replies.inv-${id}.x1`, flow: flow.name })]);
    await waitFor(() => dead.length === 2, { timeoutMs: 20_000, what: 'the dead letters' });
    expect(a.seen).toHaveLength(0);
    expect(inbox).toHaveLength(0);
    expect(Object.fromEntries(dead.map((d) => [d.event.id, d.headers[DlqHeaders.errorCode]]))).toEqual({ 'forged-1': 'CUTOVER_AUTH_REPLYTO_REFUSED', 'forged-2': 'CUTOVER_AUTH_REPLAY_REFUSED' });
    expect(dead.find((d) => d.event.id === 'forged-2')!.headers[DlqHeaders.errorMessage]).toMatch(/method "DELETE" is not the flow's POST/);
    expect(callee.deliver()!.consumers[0]!.stats()).toMatchObject({ refused: 2, delivered: 0 });
  }, 60_000);
});
