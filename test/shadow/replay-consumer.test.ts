import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { BusMessage, Delivery } from '../../src/bus/types.js';
import { DlqHeaders } from '../../src/bus/types.js';
import { MemoryDedupeStore } from '../../src/handling/dedupe/memory.js';
import { ReplayConsumer, shadowGroup } from '../../shadow/replay-consumer.js';
import { CallHeaders, ObservationTypes, observationsTopicOf, type BusReplyData } from '../../src/events/wire.js';
import { flowShadowSchema } from '../../src/config/shadow.js';
import { checkReplyTo, isReplyChannel, rebuildRequest, replayPolicy, shadowReplyTopics } from '../../src/http/replay.js';
import { Registry } from 'prom-client';
import { waitFor } from '../helpers/wait-for.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { FieldCipher, type EncryptedValue } from '../../src/crypto/field-cipher.js';
import type { Keyring } from '../../src/crypto/keyring.js';
import { SECRET_FIELDS, keyringOf, rotationKeys } from '../helpers/field-keys.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function target(answer: (req: Seen, n: number) => { status: number; body: string; headers?: Record<string, string> }) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(s);
      const a = answer(s, seen.length);
      res.writeHead(a.status, { 'content-type': 'application/json', 'set-cookie': 'secret=1', ...(a.headers ?? {}) });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const FLOW = { name: 'inventory.reserve', topic: 'commands.agent.inventory.reserve', match: { method: 'POST', path: '/reservations' } };

function callEvent(id: string = randomUUID(), extra: { headers?: Record<string, string>; data?: unknown; flow?: string } = {}): BusMessage {
  return {
    key: 'sku-1',
    event: {
      specversion: '1.0',
      id,
      source: '/agents/inventory',
      type: extra.flow ?? FLOW.name,
      correlationid: id,
      replyto: 'cutover.replies.test.r1',
      cutoverflow: extra.flow ?? FLOW.name,
      cutovermode: 'shadow',
      schemaversion: '1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      data: extra.data ?? { body: { sku: 'sku-1', qty: 2 }, params: {}, query: { dryRun: '1' } },
    },
    headers: extra.headers ?? {
      [CallHeaders.method]: 'POST',
      [CallHeaders.target]: '/reservations?dryRun=1',
      [CallHeaders.headers]: JSON.stringify({ 'content-type': 'application/json', 'x-request-id': 'r-1', host: 'evil', 'content-length': '999' }),
    },
  };
}

describe('rebuildRequest', () => {
  const delivery = (m: BusMessage): Delivery => ({ topic: FLOW.topic, key: m.key, event: m.event, headers: m.headers ?? {}, position: '1', publishedAt: 0, attempt: 1 });

  it('takes method, target and allow-listed headers from the message headers and the body from data', () => {
    const r = rebuildRequest(delivery(callEvent()), FLOW);
    expect(r.method).toBe('POST');
    expect(r.target).toBe('/reservations?dryRun=1');
    expect(r.headers).toEqual({ 'content-type': 'application/json', 'x-request-id': 'r-1' });
    expect(JSON.parse(r.body!.toString())).toEqual({ sku: 'sku-1', qty: 2 });
  });

  it('falls back to the flow template filled from data.params and data.query', () => {
    const flow = { match: { method: 'GET', path: '/stock/:sku' } };
    const r = rebuildRequest(delivery(callEvent('x', { headers: {}, data: { params: { sku: 'a b' }, query: { w: ['1', '2'] } } })), flow);
    expect(r).toMatchObject({ method: 'GET', target: '/stock/a%20b?w=1&w=2', body: undefined });
  });

  it('replays raw bodies byte for byte with their content type', () => {
    const r = rebuildRequest(delivery(callEvent('x', { headers: {}, data: { body: Buffer.from([1, 2, 3]).toString('base64'), bodyEncoding: 'base64', contentType: 'application/octet-stream' } })), FLOW);
    expect([...r.body!]).toEqual([1, 2, 3]);
    expect(r.headers['content-type']).toBe('application/octet-stream');
  });

  it('rejects malformed replay headers as an invalid event', () => {
    expect(() => rebuildRequest(delivery(callEvent('x', { headers: { [CallHeaders.headers]: '[1]' } })), FLOW)).toThrow(expect.objectContaining({ code: 'CUTOVER_EVENT_INVALID' }));
  });
});

describe('ReplayConsumer (memory bus, real HTTP target)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup(answer: Parameters<typeof target>[0], shadow: Record<string, unknown> = {}) {
    const t = await target(answer);
    cleanups.push(t.close);
    const bus = new MemoryBus();
    const dedupe = new MemoryDedupeStore();
    const consumer = new ReplayConsumer({
      bus,
      dedupe,
      flow: { ...FLOW, shadow: { ...flowShadowSchema.parse({ target: t.url, backoff: { initialMs: 5, maxMs: 10 }, ...shadow }), target: (shadow.target as string) ?? t.url } },
    });
    await consumer.start();
    cleanups.push(() => consumer.close());
    const replies = () => bus.messages('cutover.replies.test.r1');
    return { t, bus, consumer, replies };
  }

  it('sends the rebuilt request to the shadow target and replies with the response and the bus timing', async () => {
    const { t, bus, replies } = await setup(() => ({ status: 201, body: '{"id":"r-9","ok":true}', headers: { etag: '"1"' } }));
    const call = callEvent();
    await bus.publish(FLOW.topic, [call]);
    await waitFor(() => replies().length === 1, { what: 'the reply' });
    expect(t.seen[0]).toMatchObject({ method: 'POST', url: '/reservations?dryRun=1', body: '{"sku":"sku-1","qty":2}' });
    expect(t.seen[0]!.headers['x-request-id']).toBe('r-1');
    expect(t.seen[0]!.headers.host).not.toBe('evil');
    const reply = replies()[0]!;
    expect(reply.key).toBe(call.event.id);
    expect(reply.event).toMatchObject({ type: ObservationTypes.bus, correlationid: call.event.id, cutoverflow: FLOW.name, cutovermode: 'shadow', traceparent: call.event.traceparent });
    const data = reply.event.data as BusReplyData;
    expect(data).toMatchObject({ status: 201, body: { id: 'r-9', ok: true }, headers: { 'content-type': 'application/json', etag: '"1"' }, attempt: 1, request: { method: 'POST', target: '/reservations?dryRun=1' } });
    expect(data.headers!['set-cookie']).toBeUndefined();
    const published = bus.messages(FLOW.topic)[0]!.publishedAt;
    expect(data.eventPublishedAt).toBe(published);
    expect(data.consumedAt).toBeGreaterThanOrEqual(published);
    expect(data.repliedAt).toBeGreaterThanOrEqual(data.consumedAt!);
  });

  it('replies to a sidecar call event on the flow\'s observation topic, where the comparator group of that flow reads', async () => {
    const { bus, replies } = await setup(() => ({ status: 200, body: '{"ok":true}' }));
    const call = callEvent();
    call.event.replyto = observationsTopicOf(FLOW.name);
    await bus.publish(FLOW.topic, [call]);
    await waitFor(() => bus.messages('cutover.observations.inventory.reserve').length === 1, { what: 'the reply on the flow observation topic' });
    expect(bus.messages('cutover.observations.inventory.reserve')[0]!.event).toMatchObject({ type: ObservationTypes.bus, correlationid: call.event.id, cutoverflow: FLOW.name });
    expect(bus.messages('cutover.observations')).toHaveLength(0);
    expect(replies()).toHaveLength(0);
  });

  it('stamps the shadow target\'s version from its response header, or the configured one, without comparing that header', async () => {
    const t = await target((_r, n) => ({ status: 200, body: '{"ok":true}', headers: n === 1 ? { 'x-agent-version': '1.4.2' } : ({} as Record<string, string>) }));
    cleanups.push(t.close);
    const bus = new MemoryBus();
    const consumer = new ReplayConsumer({
      bus,
      dedupe: new MemoryDedupeStore(),
      flow: { ...FLOW, shadow: { ...flowShadowSchema.parse({ target: t.url }), target: t.url }, versions: { header: 'X-Agent-Version', shadow: 'configured-1' } },
    });
    await consumer.start();
    cleanups.push(() => consumer.close());
    await bus.publish(FLOW.topic, [callEvent()]);
    await waitFor(() => bus.messages('cutover.replies.test.r1').length === 1, { what: 'the first reply' });
    await bus.publish(FLOW.topic, [callEvent()]);
    await waitFor(() => bus.messages('cutover.replies.test.r1').length === 2, { what: 'the second reply' });
    const data = bus.messages('cutover.replies.test.r1').map((m) => m.event.data as BusReplyData);
    expect(data.map((d) => d.version)).toEqual(['1.4.2', 'configured-1']);
    expect(data[0]!.headers!['x-agent-version']).toBeUndefined();
  });

  it('retries 5xx answers with backoff and replies with the first good answer', async () => {
    const { t, bus, replies, consumer } = await setup((_r, n) => (n < 3 ? { status: 503, body: '{"busy":true}' } : { status: 200, body: '{"ok":true}' }));
    await bus.publish(FLOW.topic, [callEvent()]);
    await waitFor(() => replies().length === 1);
    expect(t.seen).toHaveLength(3);
    expect((replies()[0]!.event.data as BusReplyData)).toMatchObject({ status: 200, attempt: 3 });
    expect(consumer.stats()).toMatchObject({ delivered: 1, retried: 2 });
  });

  it('after maxAttempts publishes an error reply (dlq) and moves the event to the DLQ', async () => {
    const { t, bus, replies } = await setup(() => ({ status: 500, body: 'boom' }), { maxAttempts: 3 });
    const call = callEvent();
    await bus.publish(FLOW.topic, [call]);
    await waitFor(() => bus.messages(`${FLOW.topic}.dlq`).length === 1, { what: 'the dead letter' });
    expect(t.seen).toHaveLength(3);
    expect(replies()).toHaveLength(1);
    expect(replies()[0]!.event.data).toMatchObject({ dlq: true, status: 500, error: { code: 'CUTOVER_HANDLER_FAILED' } });
    const dead = bus.messages(`${FLOW.topic}.dlq`)[0]!;
    expect(dead.event.id).toBe(call.event.id);
    expect(dead.headers[DlqHeaders.attempts]).toBe('3');
    expect(dead.headers[DlqHeaders.group]).toBe(shadowGroup(FLOW.name));
  });

  it('treats an unreachable target as retriable, then dead-letters with CUTOVER_UPSTREAM_UNREACHABLE', async () => {
    const { bus, replies } = await setup(() => ({ status: 200, body: '{}' }), { maxAttempts: 2, target: 'http://127.0.0.1:1' });
    await bus.publish(FLOW.topic, [callEvent()]);
    await waitFor(() => bus.messages(`${FLOW.topic}.dlq`).length === 1);
    expect(replies()[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'CUTOVER_UPSTREAM_UNREACHABLE' } });
  });

  it('dead-letters a malformed event at once, without retrying', async () => {
    const { t, bus, replies } = await setup(() => ({ status: 200, body: '{}' }));
    await bus.publish(FLOW.topic, [callEvent(randomUUID(), { headers: { [CallHeaders.headers]: 'not json' } })]);
    await waitFor(() => bus.messages(`${FLOW.topic}.dlq`).length === 1);
    expect(t.seen).toHaveLength(0);
    expect(bus.messages(`${FLOW.topic}.dlq`)[0]!.headers[DlqHeaders.attempts]).toBe('1');
    expect(replies()[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'CUTOVER_EVENT_INVALID' } });
  });

  it('delivers a redelivered event id to the target once', async () => {
    const { t, bus, replies, consumer } = await setup(() => ({ status: 200, body: '{"ok":1}' }));
    await bus.publish(FLOW.topic, [callEvent('same-id')]);
    await waitFor(() => replies().length === 1);
    bus.redeliver(bus.messages(FLOW.topic)[0]!);
    await bus.publish(FLOW.topic, [callEvent('same-id')]);
    await waitFor(() => consumer.stats().duplicates === 2, { what: 'two duplicates skipped' });
    expect(t.seen).toHaveLength(1);
    expect(replies()).toHaveLength(1);
  });

  it('skips events of another flow that shares the topic', async () => {
    const { t, bus, consumer } = await setup(() => ({ status: 200, body: '{}' }));
    await bus.publish(FLOW.topic, [callEvent(randomUUID(), { flow: 'inventory.other' })]);
    await waitFor(() => consumer.stats().skipped === 1);
    expect(t.seen).toHaveLength(0);
  });
});

/** A command forged by someone who can write to the bus: another route, someone's credentials, their own inbox. */
function forged(id: string = randomUUID(), over: { method?: string; target?: string; headers?: Record<string, string>; replyto?: string } = {}): BusMessage {
  const m = callEvent(id);
  m.event.replyto = over.replyto ?? 'attacker.inbox';
  m.event.cutovermode = 'bus';
  m.headers = {
    [CallHeaders.method]: over.method ?? 'DELETE',
    [CallHeaders.target]: over.target ?? '/admin/users/all',
    [CallHeaders.headers]: JSON.stringify(over.headers ?? { authorization: 'Bearer stolen', cookie: 'session=victim' }),
  };
  return m;
}

describe('replay policy: what a command may make the target do', () => {
  const delivery = (m: BusMessage): Delivery => ({ topic: FLOW.topic, key: m.key, event: m.event, headers: m.headers ?? {}, position: '1', publishedAt: 0, attempt: 1 });
  const code = (fn: () => unknown): { code?: string; reason?: unknown } => {
    try {
      fn();
      return {};
    } catch (err) {
      const e = err as { code?: string; details?: { reason?: unknown } };
      return { code: e.code, reason: e.details?.reason };
    }
  };
  const ok = { [CallHeaders.method]: 'POST', [CallHeaders.target]: '/reservations' };

  it('refuses another method, another path, dot segments and credential headers, with their reasons', () => {
    expect(code(() => rebuildRequest(delivery(forged()), FLOW))).toEqual({ code: 'CUTOVER_AUTH_REPLAY_REFUSED', reason: 'method' });
    const at = (target: string) => code(() => rebuildRequest(delivery({ ...callEvent(), headers: { ...ok, [CallHeaders.target]: target } }), FLOW));
    expect(at('/admin/users/all')).toEqual({ code: 'CUTOVER_AUTH_REPLAY_REFUSED', reason: 'path' });
    expect(at('/reservations/../admin')).toEqual({ code: 'CUTOVER_AUTH_REPLAY_REFUSED', reason: 'path' });
    const stock = { match: { method: 'GET', path: '/stock/:sku' } };
    const get = (target: string) => code(() => rebuildRequest(delivery({ ...callEvent(), headers: { [CallHeaders.method]: 'GET', [CallHeaders.target]: target } }), stock));
    expect(get('/stock/%2e%2e')).toEqual({ code: 'CUTOVER_AUTH_REPLAY_REFUSED', reason: 'path' });
    expect(get('/stock/a%2Fb')).toEqual({ code: 'CUTOVER_AUTH_REPLAY_REFUSED', reason: 'path' });
    expect(get('/stock/sku-1?x=1')).toEqual({});
    for (const header of ['authorization', 'Cookie', 'proxy-authorization', 'x-api-key', 'api-key', 'x-auth-token']) {
      const withCredential = { ...callEvent(), headers: { ...ok, [CallHeaders.headers]: JSON.stringify({ [header]: 'secret-value' }) } };
      const refused = code(() => rebuildRequest(delivery(withCredential), FLOW));
      expect(refused, header).toEqual({ code: 'CUTOVER_AUTH_REPLAY_REFUSED', reason: 'credential_header' });
    }
  });

  it('drops headers outside the allow-list and never quotes a credential in its message', () => {
    const m = { ...callEvent(), headers: { ...ok, [CallHeaders.headers]: JSON.stringify({ 'x-request-id': 'r', 'x-forwarded-for': '10.0.0.1', 'x-admin': 'yes' }) } };
    expect(rebuildRequest(delivery(m), FLOW).headers).toEqual({ 'x-request-id': 'r', 'content-type': 'application/json' });
    const custom = replayPolicy(FLOW, { headers: ['x-admin'], denied: ['x-internal'] });
    expect(rebuildRequest(delivery(m), FLOW, custom).headers).toEqual({ 'x-admin': 'yes', 'content-type': 'application/json' });
    const internal = { ...callEvent(), headers: { ...ok, [CallHeaders.headers]: JSON.stringify({ 'x-internal': 'very-secret-value' }) } };
    expect(() => rebuildRequest(delivery(internal), FLOW, custom)).toThrow(expect.objectContaining({ message: expect.not.stringContaining('very-secret-value') }));
    // A credential-looking name the operator allow-listed passes; a denied one never does, allow-listed or not.
    const session = { ...callEvent(), headers: { ...ok, [CallHeaders.headers]: JSON.stringify({ 'x-session-id': 's1' }) } };
    expect(() => rebuildRequest(delivery(session), FLOW)).toThrow(expect.objectContaining({ code: 'CUTOVER_AUTH_REPLAY_REFUSED' }));
    expect(rebuildRequest(delivery(session), FLOW, replayPolicy(FLOW, { headers: ['x-session-id'] })).headers['x-session-id']).toBe('s1');
    const cookie = { ...callEvent(), headers: { ...ok, [CallHeaders.headers]: JSON.stringify({ cookie: 'a=1' }) } };
    expect(() => rebuildRequest(delivery(cookie), FLOW, replayPolicy(FLOW, { headers: ['*', 'cookie'] }))).toThrow(expect.objectContaining({ code: 'CUTOVER_AUTH_REPLAY_REFUSED' }));
  });

  it('accepts as replyto only the observation topics and sidecars\' reply channels', () => {
    const policy = replayPolicy(FLOW);
    // A flow's observation topic (multi-level flow names too), and the shared topic older sidecars name.
    for (const topic of ['cutover.observations.inventory.reserve', 'cutover.observations.shop.checkout.v2', 'cutover.observations', 'cutover.replies.checkout.a1b2c3']) expect(code(() => checkReplyTo({ ...callEvent().event, replyto: topic }, policy)), topic).toEqual({});
    for (const topic of ['attacker.inbox', 'cutover.parity', 'cutover.control', 'cutover.replies.x', 'commands.agent.payments.refund', 'cutover.observations.inventory.reserve.dlq', 'cutover.observationsx', 'cutover.observations.']) {
      expect(code(() => checkReplyTo({ ...callEvent().event, replyto: topic }, policy)), topic).toEqual({ code: 'CUTOVER_AUTH_REPLYTO_REFUSED', reason: 'replyto' });
    }
    expect(code(() => checkReplyTo({ ...callEvent().event, replyto: 'cutover.observations' }, replayPolicy(FLOW, { replyTo: isReplyChannel })))).toMatchObject({ reason: 'replyto' });
    const staging = replayPolicy(FLOW, { replyTo: shadowReplyTopics('cutover.observations-staging') });
    expect(code(() => checkReplyTo({ ...callEvent().event, replyto: 'cutover.observations-staging' }, staging))).toEqual({});
    expect(code(() => checkReplyTo({ ...callEvent().event, replyto: 'cutover.observations' }, staging))).toMatchObject({ reason: 'replyto' });
    expect(code(() => checkReplyTo({ ...callEvent().event, replyto: 'cutover.observations-staging.inventory.reserve' }, staging))).toEqual({});
    expect(code(() => checkReplyTo({ ...callEvent().event, replyto: 'cutover.observations.inventory.reserve' }, staging))).toMatchObject({ reason: 'replyto' });
  });

  it('a forged DELETE /admin/users/all with stolen credentials never reaches the target, is dead-lettered with its reason and counted', async () => {
    const t = await target(() => ({ status: 200, body: '{"deleted":"everyone"}' }));
    const bus = new MemoryBus();
    const registry = new Registry();
    const consumer = new ReplayConsumer({ bus, dedupe: new MemoryDedupeStore(), registry, flow: { ...FLOW, shadow: { ...flowShadowSchema.parse({ target: t.url }), target: t.url } } });
    await consumer.start();
    try {
      // To a legitimate reply channel, to the forger's inbox, and a legitimate request answered to the forger.
      await bus.publish(FLOW.topic, [forged('f-1', { replyto: 'cutover.replies.checkout.a1' }), forged('f-2'), forged('f-3', { method: 'POST', target: '/reservations', headers: {} })]);
      await waitFor(() => bus.messages(`${FLOW.topic}.dlq`).length === 3, { what: 'three dead letters' });
      expect(t.seen).toHaveLength(0);
      expect(bus.messages('attacker.inbox')).toHaveLength(0);
      expect(bus.messages('cutover.replies.checkout.a1')).toHaveLength(0);
      const dead = new Map(bus.messages(`${FLOW.topic}.dlq`).map((m) => [m.event.id, m.headers[DlqHeaders.errorCode]]));
      expect(Object.fromEntries(dead)).toEqual({ 'f-1': 'CUTOVER_AUTH_REPLAY_REFUSED', 'f-2': 'CUTOVER_AUTH_REPLYTO_REFUSED', 'f-3': 'CUTOVER_AUTH_REPLYTO_REFUSED' });
      expect(bus.messages(`${FLOW.topic}.dlq`).every((m) => m.headers[DlqHeaders.attempts] === '1')).toBe(true);
      expect(consumer.stats()).toMatchObject({ refused: 3, delivered: 0 });
      const metric = await registry.getSingleMetric('cutover_replay_refused_total')!.get();
      expect(Object.fromEntries(metric.values.map((v) => [v.labels.reason, v.value]))).toEqual({ method: 1, replyto: 2 });
      // The legitimate command still goes through.
      await bus.publish(FLOW.topic, [callEvent('good')]);
      await waitFor(() => bus.messages('cutover.replies.test.r1').length === 1, { what: 'the legitimate reply' });
      expect(t.seen.map((s) => `${s.method} ${s.url}`)).toEqual(['POST /reservations?dryRun=1']);
    } finally {
      await consumer.close();
      await t.close();
    }
  });
});

describe('replay of a withheld body', () => {
  it('refuses an event whose body the sidecar could not encrypt, rather than replaying it without', () => {
    const m = callEvent('w', { data: { bodySkipped: 'unencryptable', params: {}, query: {} } });
    const d: Delivery = { topic: FLOW.topic, key: m.key, event: m.event, headers: m.headers ?? {}, position: '1', publishedAt: 0, attempt: 1 };
    expect(() => rebuildRequest(d, FLOW)).toThrow(expect.objectContaining({ code: 'CUTOVER_EVENT_INVALID', message: expect.stringContaining('unencryptable') }));
  });
});

describe('ReplayConsumer with encrypted fields', () => {
  const EMAIL = 'bob@example.com';
  const CARD = '5555444433331111';
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  /** A call event as the sidecar publishes it: the configured request fields encrypted, bound to its id. */
  function encryptedCall(cipher: FieldCipher, id: string = randomUUID()): BusMessage {
    const body = { customer: { email: EMAIL }, card: { number: CARD }, amount: 5 };
    cipher.encryptFields(body, { eventId: id, part: 'request' });
    return callEvent(id, { data: { body, params: {}, query: { dryRun: '1' } } });
  }

  /** A target that answers with what it received: the response then holds the same secrets. */
  async function setup(keyring: Keyring | undefined) {
    const t = await target((req) => ({ status: 200, body: req.body }));
    cleanups.push(t.close);
    const bus = new MemoryBus();
    const consumer = new ReplayConsumer({ bus, dedupe: new MemoryDedupeStore(), ...(keyring ? { keyring } : {}), flow: { ...FLOW, shadow: { ...flowShadowSchema.parse({ target: t.url, maxAttempts: 3, backoff: { initialMs: 5, maxMs: 10 } }), target: t.url } } });
    await consumer.start();
    cleanups.push(() => consumer.close());
    const everything = () => JSON.stringify([...bus.topics.values()].flat().map((d) => [d.key, d.event, d.headers]));
    return { t, bus, consumer, everything, replies: () => bus.messages('cutover.replies.test.r1') };
  }

  it('sends the target clear values, and publishes its answer with those fields encrypted again for the call', async () => {
    const { old, current } = rotationKeys();
    const ring = keyringOf(current, [old]);
    const { t, bus, replies, everything } = await setup(ring);
    // Both keys of a rotation: an event from before the switch and one from after.
    const calls = [encryptedCall(new FieldCipher(old.key, old.keyId, SECRET_FIELDS)), encryptedCall(ring.current)];
    await bus.publish(FLOW.topic, calls);
    await waitFor(() => replies().length === 2, { what: 'two replies' });
    expect(t.seen.map((s) => JSON.parse(s.body))).toEqual([0, 1].map(() => ({ customer: { email: EMAIL }, card: { number: CARD }, amount: 5 })));
    for (const reply of replies()) {
      const data = reply.event.data as BusReplyData;
      // A copy: the memory bus holds the published object itself.
      const body = structuredClone(data.body) as { customer: { email: EncryptedValue }; amount: number };
      expect(body.customer.email.kid).toBe(current.keyId);
      expect(body.amount).toBe(5);
      // Bound like the direct observation: the correlation id, `response`.
      ring.decryptAll(body, { eventId: reply.event.correlationid!, part: 'response' });
      expect(body).toEqual({ customer: { email: EMAIL }, card: { number: CARD }, amount: 5 });
    }
    expect(everything()).not.toContain(EMAIL);
    expect(everything()).not.toContain(CARD);
  });

  it('dead-letters a tampered value with CUTOVER_CRYPTO_FAILED at once, never calling the target with a half-decrypted body', async () => {
    const ring = keyringOf(rotationKeys().current);
    const { t, bus, replies, consumer } = await setup(ring);
    const call = encryptedCall(ring.current, 'tampered');
    const card = (call.event.data as { body: { card: { number: EncryptedValue } } }).body.card.number;
    const raw = Buffer.from(card.$enc, 'base64');
    raw[20]! ^= 0xff;
    card.$enc = raw.toString('base64');
    await bus.publish(FLOW.topic, [call]);
    await waitFor(() => bus.messages(`${FLOW.topic}.dlq`).length === 1, { what: 'the dead letter' });
    const dead = bus.messages(`${FLOW.topic}.dlq`)[0]!;
    expect(dead.headers[DlqHeaders.errorCode]).toBe('CUTOVER_CRYPTO_FAILED');
    expect(dead.headers[DlqHeaders.attempts]).toBe('1');
    expect(t.seen).toHaveLength(0);
    // The comparator records error_bus instead of waiting a window for a reply.
    expect(replies()[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'CUTOVER_CRYPTO_FAILED' } });
    expect(consumer.stats()).toMatchObject({ delivered: 0, deadLettered: 1 });
  });

  it('dead-letters a value encrypted with a key it does not hold (the old key of a rotation, once dropped)', async () => {
    const { old, current } = rotationKeys();
    const { t, bus } = await setup(keyringOf(current));
    await bus.publish(FLOW.topic, [encryptedCall(new FieldCipher(old.key, old.keyId, SECRET_FIELDS))]);
    await waitFor(() => bus.messages(`${FLOW.topic}.dlq`).length === 1, { what: 'the dead letter' });
    expect(bus.messages(`${FLOW.topic}.dlq`)[0]!.headers[DlqHeaders.errorMessage]).toContain(`encrypted with key "${old.keyId}"`);
    expect(t.seen).toHaveLength(0);
  });

  it('without a keyring passes the ciphertext to the target, as published', async () => {
    const cipher = new FieldCipher(rotationKeys().current.key, 'k', SECRET_FIELDS);
    const { t, bus, replies } = await setup(undefined);
    const call = encryptedCall(cipher);
    await bus.publish(FLOW.topic, [call]);
    await waitFor(() => replies().length === 1, { what: 'the reply' });
    expect(JSON.parse(t.seen[0]!.body)).toEqual((call.event.data as { body: unknown }).body);
  });
});
