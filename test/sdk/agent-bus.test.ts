import { afterEach, describe, expect, it } from 'vitest';
import { deliverWithRetry, isNonRetriable, nonRetriable } from '../../src/bus/attempts.js';
import { DlqHeaders, type BusMessage, type Delivery } from '../../src/bus/types.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { BusError, ErrorCodes, ValidationError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { AgentBus, type HandlerContext } from '../../src/sdk/index.js';
import { waitFor } from '../helpers/wait-for.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { FieldCipher } from '../../src/crypto/field-cipher.js';
import type { Keyring } from '../../src/sdk/index.js';
import { SECRET_FIELDS, keyringOf, rotationKeys } from '../helpers/field-keys.js';

describe('deliverWithRetry: nonRetriable shortcut', () => {
  it('moves a message marked nonRetriable to the DLQ on the first failure; unmarked errors still retry', async () => {
    const dead: BusMessage[] = [];
    const d: Delivery = { topic: 't.x', key: 'k', event: buildEvent({ source: '/s', type: 't' }), headers: {}, position: '1', publishedAt: 0, attempt: 1 };
    const policy = (handler: (d: Delivery) => Promise<void>) => ({
      handler,
      maxAttempts: 5,
      backoff: { initialMs: 1, maxMs: 1, multiplier: 1 },
      group: 'g',
      logger: silentLogger(),
      deadLetter: async (_t: string, m: BusMessage) => void dead.push(m),
      signal: new AbortController().signal,
    });
    let calls = 0;
    const outcome = await deliverWithRetry(d, policy(async () => {
      calls += 1;
      throw nonRetriable(new ValidationError(ErrorCodes.SCHEMA_UNSUPPORTED, 'v9'));
    }));
    expect(outcome).toBe('dead-lettered');
    expect(calls).toBe(1);
    expect(dead[0]!.headers![DlqHeaders.errorCode]).toBe('CUTOVER_SCHEMA_UNSUPPORTED');
    expect(dead[0]!.headers![DlqHeaders.attempts]).toBe('1');
    calls = 0;
    await deliverWithRetry(d, policy(async () => {
      calls += 1;
      throw new ValidationError(ErrorCodes.EVENT_INVALID, 'plain');
    }));
    expect(calls).toBe(5);
    expect(isNonRetriable(new Error('x'))).toBe(false);
  });
});

describe('AgentBus (memory bus)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup() {
    const bus = new MemoryBus();
    const agents = new AgentBus({ bus, agent: 'inventory' });
    cleanups.push(() => agents.close());
    return { bus, agents };
  }

  it('publishes CloudEvents with source, type, schema version and partition key', async () => {
    const { bus, agents } = await setup();
    const ev = await agents.publish('events.inventory.reserved', { sku: 'a' }, { key: 'a', schemaVersion: '2.1' });
    const [m] = bus.messages('events.inventory.reserved');
    expect(m!.key).toBe('a');
    expect(m!.event).toEqual(ev);
    expect(ev).toMatchObject({ specversion: '1.0', source: '/agents/inventory', type: 'events.inventory.reserved', schemaversion: '2.1', partitionkey: 'a', data: { sku: 'a' } });
    await expect(agents.publish('not a topic', {})).rejects.toMatchObject({ code: 'CUTOVER_TOPIC_INVALID' });
  });

  it('hands events matching a pattern to the handler and publishes its reply on replyto', async () => {
    const { bus, agents } = await setup();
    const seen: HandlerContext[] = [];
    await agents.subscribe(['commands.agent.inventory.*'], async (ctx) => {
      seen.push(ctx);
      ctx.reply({ ok: true, sku: (ctx.data as { body: { sku: string } }).body.sku }, { status: 201 });
    });
    const call = await agents.publish('commands.agent.inventory.reserve', { body: { sku: 'a' }, params: {}, query: {} }, { key: 'a', replyTo: 'test.replies', correlationId: 'corr-1' });
    await waitFor(() => bus.messages('test.replies').length === 1, { what: 'the reply' });
    expect(seen[0]).toMatchObject({ topic: 'commands.agent.inventory.reserve', key: 'a', attempt: 1, shadow: false });
    const reply = bus.messages('test.replies')[0]!;
    expect(reply.key).toBe('corr-1');
    expect(reply.event).toMatchObject({ type: 'cutover.observation.bus', correlationid: 'corr-1', source: '/agents/inventory' });
    expect(reply.event.data).toMatchObject({ status: 201, body: { ok: true, sku: 'a' }, attempt: 1 });
    const data = reply.event.data as { eventPublishedAt: number; consumedAt: number; repliedAt: number; eventBytes: number };
    expect(data.eventPublishedAt).toBe(bus.messages('commands.agent.inventory.reserve')[0]!.publishedAt);
    expect(data.repliedAt).toBeGreaterThanOrEqual(data.consumedAt);
    expect(data.eventBytes).toBeGreaterThan(100);
    expect(call.replyto).toBe('test.replies');
  });

  it('stamps its version on every reply, so reports judge each version on its own', async () => {
    const bus = new MemoryBus();
    const agents = new AgentBus({ bus, agent: 'inventory', version: '2.3.0-model-b' });
    cleanups.push(() => agents.close());
    await agents.subscribe('commands.agent.inventory.reserve', (ctx) => ctx.reply({ ok: true }));
    await agents.subscribe('commands.agent.inventory.cancel', () => {
      throw nonRetriable(new Error('no such reservation'));
    }, { maxAttempts: 1, group: 'inventory.cancel' });
    await agents.publish('commands.agent.inventory.reserve', { body: {} }, { replyTo: 'test.replies', correlationId: 'ok-1' });
    await agents.publish('commands.agent.inventory.cancel', { body: {} }, { replyTo: 'test.replies', correlationId: 'err-1' });
    await waitFor(() => bus.messages('test.replies').length === 2, { what: 'both replies' });
    expect(bus.messages('test.replies').map((m) => (m.event.data as { version?: string }).version)).toEqual(['2.3.0-model-b', '2.3.0-model-b']);
  });

  it('sets ctx.shadow for shadow-mode events', async () => {
    const { bus, agents } = await setup();
    const flags: boolean[] = [];
    await agents.subscribe('commands.agent.inventory.reserve', (ctx) => void flags.push(ctx.shadow));
    await bus.publish('commands.agent.inventory.reserve', [{ key: null, event: { ...buildEvent({ source: '/agents/x', type: 'inventory.reserve' }), cutovermode: 'shadow' } }]);
    await waitFor(() => flags.length === 1);
    expect(flags).toEqual([true]);
  });

  it('retries a failing handler and replies once it succeeds', async () => {
    const { bus, agents } = await setup();
    const attempts: number[] = [];
    await agents.subscribe(
      'commands.agent.inventory.reserve',
      (ctx) => {
        attempts.push(ctx.attempt);
        ctx.reply({ attempt: ctx.attempt });
        if (ctx.attempt < 3) throw new Error('flaky');
      },
      { backoff: { initialMs: 1, maxMs: 2 } },
    );
    await agents.publish('commands.agent.inventory.reserve', {}, { replyTo: 'test.replies' });
    await waitFor(() => bus.messages('test.replies').length === 1);
    expect(attempts).toEqual([1, 2, 3]);
    expect(bus.messages('test.replies')[0]!.event.data).toMatchObject({ body: { attempt: 3 }, status: 200 });
  });

  it('after maxAttempts sends the event to the DLQ and an error reply', async () => {
    const { bus, agents } = await setup();
    await agents.subscribe('commands.agent.inventory.reserve', () => {
      throw new Error('always');
    }, { maxAttempts: 2, backoff: { initialMs: 1, maxMs: 1 } });
    await agents.publish('commands.agent.inventory.reserve', {}, { replyTo: 'test.replies' });
    await waitFor(() => bus.messages('commands.agent.inventory.reserve.dlq').length === 1);
    expect(bus.messages('commands.agent.inventory.reserve.dlq')[0]!.headers[DlqHeaders.attempts]).toBe('2');
    expect(bus.messages('test.replies')[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'Error', message: 'always' } });
  });

  it('sends an unknown schema major straight to the DLQ with the reason, without running the handler', async () => {
    const { bus, agents } = await setup();
    let runs = 0;
    await agents.subscribe('commands.agent.inventory.reserve', () => void (runs += 1), { schemaMajors: [1, 2] });
    await agents.publish('commands.agent.inventory.reserve', {}, { schemaVersion: '2.3' });
    await agents.publish('commands.agent.inventory.reserve', {}, { schemaVersion: '3.0', replyTo: 'test.replies' });
    await waitFor(() => bus.messages('commands.agent.inventory.reserve.dlq').length === 1);
    const dead = bus.messages('commands.agent.inventory.reserve.dlq')[0]!;
    expect(dead.event.schemaversion).toBe('3.0');
    expect(dead.headers[DlqHeaders.errorCode]).toBe('CUTOVER_SCHEMA_UNSUPPORTED');
    expect(dead.headers[DlqHeaders.errorMessage]).toMatch(/schemaversion 3\.0.*accepts major 1, 2/);
    expect(dead.headers[DlqHeaders.attempts]).toBe('1');
    expect(bus.messages('test.replies')[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'CUTOVER_SCHEMA_UNSUPPORTED' } });
    await waitFor(() => runs === 1);
  });

  it('is idempotent by event id: a redelivered event does not run the handler again', async () => {
    const { bus, agents } = await setup();
    let runs = 0;
    await agents.subscribe('commands.agent.inventory.reserve', (ctx) => {
      runs += 1;
      ctx.reply({ n: runs });
    });
    const ev = await agents.publish('commands.agent.inventory.reserve', {}, { replyTo: 'test.replies' });
    await waitFor(() => bus.messages('test.replies').length === 1);
    bus.redeliver(bus.messages('commands.agent.inventory.reserve')[0]!);
    await agents.publish('commands.agent.inventory.reserve', {}, { replyTo: 'test.replies', id: ev.id });
    const marker = await agents.publish('commands.agent.inventory.reserve', {}, { replyTo: 'test.replies' });
    await waitFor(() => bus.messages('test.replies').some((m) => m.event.correlationid === marker.id), { what: 'a later event to pass' });
    expect(runs).toBe(2);
    expect(bus.messages('test.replies').filter((m) => m.event.correlationid === ev.id)).toHaveLength(1);
  });

  it('retries a reply that failed to publish without running the handler again', async () => {
    const { bus, agents } = await setup();
    let runs = 0;
    await agents.subscribe('commands.agent.inventory.reserve', (ctx) => {
      runs += 1;
      ctx.reply({ ok: true });
      if (runs === 1) bus.failPublish = new BusError(ErrorCodes.BUS_UNAVAILABLE, 'down', { retriable: true });
    }, { backoff: { initialMs: 20, maxMs: 20 } });
    await agents.publish('commands.agent.inventory.reserve', {}, { replyTo: 'test.replies' });
    await waitFor(() => bus.failPublish !== undefined);
    bus.failPublish = undefined;
    await waitFor(() => bus.messages('test.replies').length === 1);
    expect(runs).toBe(1);
    expect(bus.messages('test.replies')[0]!.event.data).toMatchObject({ attempt: 2 });
  });
});

describe('AgentBus with a keyring', () => {
  const EMAIL = 'dave@example.com';
  const CARD = '378282246310005';
  const TOPIC = 'commands.agent.payments.charge';
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  /** A call as the sidecar publishes it: request fields encrypted and bound to the event id. */
  function call(cipher: FieldCipher, id: string): BusMessage {
    const body = { customer: { email: EMAIL }, card: { number: CARD }, amount: 3 };
    cipher.encryptFields(body, { eventId: id, part: 'request' });
    const event = buildEvent({ id, source: '/agents/checkout', type: TOPIC, data: { body, params: {}, query: {} } });
    return { key: null, event: { ...event, correlationid: id, replyto: 'test.replies', cutovermode: 'shadow' } };
  }

  async function setup(keyring: Keyring) {
    const bus = new MemoryBus();
    const agents = new AgentBus({ bus, agent: 'payments', keyring });
    cleanups.push(() => agents.close());
    const seen: unknown[] = [];
    await agents.subscribe(TOPIC, (ctx: HandlerContext<{ body: unknown }>) => {
      seen.push(ctx.data.body);
      ctx.reply({ charged: true, customer: { email: EMAIL }, card: { number: CARD } }, { status: 201 });
    }, { maxAttempts: 3, backoff: { initialMs: 1, maxMs: 2 } });
    return { bus, seen };
  }

  it('hands the handler decrypted fields and encrypts the configured fields of its reply for the call', async () => {
    const { old, current } = rotationKeys();
    const ring = keyringOf(current, [old]);
    const { bus, seen } = await setup(ring);
    await bus.publish(TOPIC, [call(new FieldCipher(old.key, old.keyId, SECRET_FIELDS), 'e-old'), call(ring.current, 'e-new')]);
    await waitFor(() => bus.messages('test.replies').length === 2, { what: 'two replies' });
    expect(seen).toEqual([0, 1].map(() => ({ customer: { email: EMAIL }, card: { number: CARD }, amount: 3 })));
    for (const reply of bus.messages('test.replies')) {
      const body = structuredClone((reply.event.data as { body: unknown }).body);
      ring.decryptAll(body, { eventId: reply.event.correlationid!, part: 'response' });
      expect(body).toEqual({ charged: true, customer: { email: EMAIL }, card: { number: CARD } });
    }
    const everything = JSON.stringify([...bus.topics.values()].flat().map((d) => d.event));
    expect(everything).not.toContain(EMAIL);
    expect(everything).not.toContain(CARD);
  });

  it('moves an event whose fields do not decrypt to the DLQ with CUTOVER_CRYPTO_FAILED, without running the handler', async () => {
    const { old, current } = rotationKeys();
    const { bus, seen } = await setup(keyringOf(current));
    await bus.publish(TOPIC, [call(new FieldCipher(old.key, old.keyId, SECRET_FIELDS), 'e-1')]);
    await waitFor(() => bus.messages(`${TOPIC}.dlq`).length === 1, { what: 'the dead letter' });
    expect(bus.messages(`${TOPIC}.dlq`)[0]!.headers[DlqHeaders.errorCode]).toBe('CUTOVER_CRYPTO_FAILED');
    expect(bus.messages(`${TOPIC}.dlq`)[0]!.headers[DlqHeaders.attempts]).toBe('1');
    expect(bus.messages('test.replies')[0]!.event.data).toMatchObject({ dlq: true, error: { code: 'CUTOVER_CRYPTO_FAILED' } });
    expect(seen).toEqual([]);
  });
});
