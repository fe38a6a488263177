import type { ConsumeMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../src/events/cloudevent.js';
import { ErrorCodes } from '../../../src/errors.js';
import { partitionOf } from '../../../src/bus/hash.js';
import { callerHeaders, decodeMessage, encodeMessages, Internal } from '../../../src/bus/rabbitmq/codec.js';
import { rabbitNames } from '../../../src/bus/rabbitmq/names.js';

const event = buildEvent({ source: '/agents/test', type: 'test.event', data: { n: 1 } });

/** A delivery as amqplib hands it over, from what the encoder produced. */
function delivered(content: Buffer, headers: Record<string, unknown>, routingKey = 'test.topic'): ConsumeMessage {
  return {
    content,
    fields: { deliveryTag: 1, redelivered: false, exchange: 'cutover.topics', routingKey, consumerTag: 'c' },
    properties: { headers, contentType: 'application/cloudevents+json' },
  } as unknown as ConsumeMessage;
}

describe('rabbitmq codec', () => {
  it('routes a key to the partition every adapter picks, spreads null keys, and round-trips key, event and headers', () => {
    let n = 0;
    const [keyed, unkeyed1, unkeyed2] = encodeMessages('test.topic', [{ key: 'k-7', event, headers: { 'x-test': 'yes' } }, { key: null, event }, { key: null, event }], 8, 1_000_000, () => n++);
    expect(keyed!.options.headers![Internal.partition]).toBe(String(partitionOf('k-7', 8)));
    expect([unkeyed1!.options.headers![Internal.partition], unkeyed2!.options.headers![Internal.partition]]).toEqual(['0', '1']);
    expect(keyed!.options.contentType).toBe('application/cloudevents+json');
    expect(keyed!.options.messageId).toBe(event.id);
    const decoded = decodeMessage(delivered(keyed!.content, keyed!.options.headers!), '3:1');
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.delivery).toMatchObject({ topic: 'test.topic', key: 'k-7', event, headers: { 'x-test': 'yes' }, position: '3:1', attempt: 1 });
    expect(decoded.delivery.publishedAt).toBe(Number(keyed!.options.headers![Internal.publishedAt]));
  });

  it('counts earlier deliveries from x-delivery-count or x-acquired-count, whichever is larger', () => {
    const [m] = encodeMessages('test.topic', [{ key: 'a', event }], 8, 1_000_000, () => 0);
    const attempt = (extra: Record<string, unknown>): number => {
      const d = decodeMessage(delivered(m!.content, { ...m!.options.headers, ...extra }), 'p');
      return d.ok ? d.delivery.attempt : -1;
    };
    expect(attempt({ 'x-delivery-count': 2 })).toBe(3);
    expect(attempt({ 'x-acquired-count': 1 })).toBe(2);
    expect(attempt({ 'x-delivery-count': 1, 'x-acquired-count': 4 })).toBe(5);
    // Broker bookkeeping is not caller data.
    expect(callerHeaders(delivered(m!.content, { ...m!.options.headers, 'x-delivery-count': 1, 'x-stream-offset': 9, 'x-mine': 'kept' }))).toEqual({ 'x-mine': 'kept' });
  });

  it('refuses the whole batch on an oversized message, a non-string header or a reserved header name, naming it', () => {
    const big = buildEvent({ source: '/agents/test', type: 'test.event', data: { pad: 'x'.repeat(3_000) } });
    const codeOf = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (err) {
        return [(err as { code: string }).code, (err as Error).message];
      }
      return undefined;
    };
    expect(codeOf(() => encodeMessages('t.x', [{ key: 'a', event }, { key: 'a', event: big }], 8, 2_000, () => 0))).toEqual([ErrorCodes.MESSAGE_TOO_LARGE, expect.stringContaining('messages[1] to t.x')]);
    expect(codeOf(() => encodeMessages('t.x', [{ key: 'a', event, headers: { n: 1 as unknown as string } }], 8, 1_000_000, () => 0))).toEqual([ErrorCodes.EVENT_INVALID, expect.stringContaining('headers.n')]);
    expect(codeOf(() => encodeMessages('t.x', [{ key: 'a', event, headers: { [Internal.key]: 'b' } }], 8, 1_000_000, () => 0))).toEqual([ErrorCodes.EVENT_INVALID, expect.stringContaining(`headers.${Internal.key}`)]);
    expect(codeOf(() => encodeMessages('t.x', [{ key: 'a', event: { id: 'x' } as never }], 8, 1_000_000, () => 0))).toEqual([ErrorCodes.EVENT_INVALID, expect.stringMatching(/^messages\[0\]\.event to t\.x: .*source/)]);
  });

  it('a body that is not a CloudEvent decodes as a failure to dead-letter, not a throw', () => {
    expect(decodeMessage(delivered(Buffer.from('not json'), {}), 'p').ok).toBe(false);
  });
});

describe('rabbitmq names', () => {
  it('keeps names that fit AMQP 255 bytes readable, and cuts longer ones to distinct names that fit', () => {
    const names = rabbitNames('cutover');
    expect(names.log('commands.agent.inventory.reserve')).toBe('cutover.log.commands.agent.inventory.reserve');
    const long = `t.${'a'.repeat(245)}`;
    const [a, b] = [names.log(long), names.log(`${long.slice(0, -1)}b`)];
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(255);
    expect(a).not.toBe(b);
    const group = 'g'.repeat(250);
    expect(new Set([0, 1, 2].map((p) => names.partition(group, p))).size).toBe(3);
    for (const p of [0, 1, 2]) expect(Buffer.byteLength(names.lock(group, p))).toBeLessThanOrEqual(255);
  });
});
