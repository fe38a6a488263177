import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, DlqHeaders, dlqTopic, type Bus, type BusConfigInput, type Delivery } from '../../../src/bus/index.js';
import { partitionOf, redisKeys } from '../../../src/bus/redis/keys.js';
import { HIGH_WATER } from '../../../src/bus/redis/read-loop.js';
import { buildEvent } from '../../../src/events/cloudevent.js';
import { ErrorCodes } from '../../../src/errors.js';
import { redisUrl } from '../../helpers/brokers.js';
import { redisFaultProxy } from '../../helpers/fault-proxy.js';
import { waitFor } from '../../helpers/wait-for.js';

const url = redisUrl();
const prefix = `test:${randomUUID().slice(0, 8)}:`;
const keys = redisKeys(prefix);

function event(n: number, extra: Record<string, unknown> = {}) {
  return buildEvent({ source: '/agents/test', type: 'test.event', data: { n, ...extra } });
}

if (!url) {
  describe.skip('redis bus (Redis unavailable, see the line printed at start)', () => it('skipped', () => undefined));
} else {
  describe('redis bus', () => {
    // RESP2: stream replies in their classic nested shape (RESP3 'legacy' mapping flattens XREAD maps).
    const raw = new Redis(url, { protocol: 2 });
    const cleanups: Array<() => Promise<unknown>> = [];
    const config = (extra: Record<string, unknown> = {}): BusConfigInput => ({ kind: 'redis', url, prefix, claimIdle: '1s', blockTime: '200ms', ...extra }) as BusConfigInput;
    const topicOf = (label: string): string => `test.${label}.${randomUUID().slice(0, 8)}`;

    async function bus(cfg = config()): Promise<Bus> {
      const b = await createBus(cfg);
      cleanups.push(() => b.close());
      await b.start();
      return b;
    }

    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    afterAll(async () => {
      let cursor = '0';
      do {
        const [next, found] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (found.length) await raw.del(...found);
        cursor = next;
      } while (cursor !== '0');
      await raw.quit();
    });

    it('refuses to start when maxmemory-policy can evict (CONFIG answer rewritten in transit)', async () => {
      // A relay to the real server that answers CONFIG GET maxmemory-policy itself, as an evicting Redis would.
      const u = new URL(url);
      const server = net.createServer((client) => {
        const upstream = net.connect(Number(u.port || 6379), u.hostname);
        client.on('data', (chunk) => {
          if (chunk.includes('maxmemory-policy')) client.write('*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n');
          else upstream.write(chunk);
        });
        upstream.pipe(client);
        client.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
        upstream.on('error', () => client.destroy()).on('close', () => client.destroy());
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise((r) => server.close(r)));
      const relay = new URL(url);
      relay.hostname = '127.0.0.1';
      relay.port = String((server.address() as net.AddressInfo).port);
      const relayUrl = relay.toString();

      const refused = await createBus(config({ url: relayUrl }));
      const err = await refused.start().catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe(ErrorCodes.BUS_MISCONFIGURED);
      expect((err as Error).message).toContain('allkeys-lru');
      await refused.close();

      const accepted = await createBus(config({ url: relayUrl, requireNoEviction: false }));
      await accepted.start();
      expect((await accepted.health()).ok).toBe(true);
      await accepted.close();
    });

    it('waitReplicas: a publish the replicas did not confirm in waitTimeout fails with CUTOVER_BUS_TIMEOUT, though the primary has it', async () => {
      // The test server has no replica, so WAIT can never be satisfied: the loss window a failover would hit.
      const b = await bus(config({ waitReplicas: 1, waitTimeout: '200ms' }));
      const topic = topicOf('wait');
      const err = await b.publish(topic, [{ key: 'k', event: event(1) }]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCodes.BUS_TIMEOUT, retriable: true, details: { replicas: 0, waitReplicas: 1 } });
      expect((err as Error).message).toContain('bus.waitReplicas');
      expect(await raw.xlen(keys.stream(topic, partitionOf('k', 8)))).toBe(1);
    });

    it('logs CUTOVER_BUS_DATA_LOST once when entries it acknowledged are gone (the tail or the whole topic), and keeps publishing', async () => {
      const lines: Array<Record<string, unknown>> = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const b = await createBus(config(), { logger });
      cleanups.push(() => b.close());
      await b.start();
      const lost = (): Array<Record<string, unknown>> => lines.filter((l) => l.code === ErrorCodes.BUS_DATA_LOST);
      const topic = topicOf('lost');
      const tail = async (): Promise<string> => (await raw.get(keys.lastId(topic)))!;
      await b.publish(topic, [{ key: 'k', event: event(1) }]);
      const first = await tail();
      await b.publish(topic, [{ key: 'k', event: event(2) }]);
      await b.publish(topic, [{ key: 'k', event: event(3) }]);
      const third = await tail();
      expect(lost()).toEqual([]);

      // What a promoted replica that lagged leaves: the topic as it was after the first publish.
      const partitions = Number(await raw.hget(keys.registry, topic));
      const stream = keys.stream(topic, partitionOf('k', partitions));
      const newer = ((await raw.xrange(stream, `(${first}`, '+')) as Array<[string, string[]]>).map(([id]) => id);
      expect(newer).toHaveLength(2);
      await raw.xdel(stream, ...newer);
      await raw.set(keys.lastId(topic), first);
      await b.publish(topic, [{ key: 'k', event: event(4) }]);
      expect(lost()).toHaveLength(1);
      expect(lost()[0]).toMatchObject({ level: 50, topic, foundUpTo: first, acknowledgedUpTo: third });
      expect(String(lost()[0]!.msg)).toContain(topic);
      // Reported once: the next publishes find what this process acknowledged since.
      await b.publish(topic, [{ key: 'k', event: event(5) }]);
      expect(lost()).toHaveLength(1);

      // The whole topic gone (a replica that restarted empty was promoted, or the keys were deleted).
      await raw.del(stream, keys.lastId(topic));
      await b.publish(topic, [{ key: 'k', event: event(6) }]);
      expect(lost()).toHaveLength(2);
      expect(lost()[1]).toMatchObject({ topic, foundUpTo: 'nothing' });
      // Publishing went on throughout: the entries published after each loss are there.
      const events = ((await raw.xrange(stream, '-', '+')) as Array<[string, string[]]>).map(([, f]) => JSON.parse(f[f.indexOf('event') + 1]!).data.n as number);
      expect(events).toEqual([6]);
    });

    it('rejects start with CUTOVER_BUS_UNAVAILABLE when Redis is unreachable', async () => {
      const { relay, url: relayUrl } = await redisFaultProxy(url);
      cleanups.push(() => relay.close());
      relay.down();
      const b = await createBus(config({ url: relayUrl, publishTimeout: '2s' }));
      const err = await b.start().catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe(ErrorCodes.BUS_UNAVAILABLE);
      await b.close();
    });

    it('takes over a dead consumer\'s pending messages with attempt = delivery count, and dead-letters one delivered too often', async () => {
      const b = await bus();
      const topic = topicOf('claim');
      const group = `g-${randomUUID()}`;
      await b.publish(topic, Array.from({ length: 6 }, (_, i) => ({ key: 'k', event: event(i) })));
      const stream = keys.stream(topic, partitionOf('k', 8));
      // A consumer that read everything, never acknowledged and died: it held no lease, like a crashed one.
      await raw.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
      const read = (await raw.call('XREADGROUP', 'GROUP', group, 'ghost', 'COUNT', 10, 'STREAMS', stream, '>')) as Array<[string, Array<[string, string[]]>]>;
      const ids = read[0]![1].map(([id]) => id);
      expect(ids).toHaveLength(6);
      // The first message was delivered 5 times already (say it crashed its consumers each time).
      for (let i = 0; i < 4; i++) await raw.call('XCLAIM', stream, group, 'ghost', 0, ids[0]!);

      const attempts = new Map<number, number>();
      await b.subscribe({
        group,
        topics: [topic],
        maxAttempts: 3,
        handler: async (d) => void attempts.set((d.event.data as { n: number }).n, d.attempt),
      });
      await waitFor(() => attempts.size === 5, { what: 'the 5 redeliverable messages' });
      expect([...attempts.entries()].sort((x, y) => x[0] - y[0])).toEqual([1, 2, 3, 4, 5].map((n) => [n, 2]));
      const dead = await waitFor(async () => {
        const out: Delivery[] = [];
        for await (const d of b.read(dlqTopic(topic), { from: 'start', follow: false })) out.push(d);
        return out.length > 0 ? out : undefined;
      }, { what: 'the over-delivered message in the DLQ' });
      expect((dead[0]!.event.data as { n: number }).n).toBe(0);
      expect(dead[0]!.headers[DlqHeaders.attempts]).toBe('6');
      expect(dead[0]!.headers[DlqHeaders.errorCode]).toBe(ErrorCodes.HANDLER_FAILED);
      expect(attempts.has(0)).toBe(false);
      await waitFor(async () => ((await raw.call('XPENDING', stream, group)) as [number])[0] === 0, { what: 'everything acknowledged' });
    });

    it('sweeps entries idle with another consumer of a partition it owns (a zombie\'s read) and redoes them in order', async () => {
      const b = await bus();
      const topic = topicOf('sweep');
      const group = `g-${randomUUID()}`;
      const stream = keys.stream(topic, partitionOf('slow', 8));
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const seen: Array<[number, number]> = [];
      await b.subscribe({
        group,
        topics: [topic],
        handler: async (d) => {
          await gate;
          seen.push([(d.event.data as { n: number }).n, d.attempt]);
        },
      });
      // Enough for the consumer to stop reading (backpressure) with the first handler held at the gate.
      const total = HIGH_WATER + 300;
      for (let i = 0; i < total; i += 250) {
        await b.publish(topic, Array.from({ length: Math.min(250, total - i) }, (_, j) => ({ key: 'slow', event: event(i + j) })));
      }
      const pendingWithUs = async (): Promise<number> => ((await raw.call('XPENDING', stream, group)) as [number])[0];
      // Past HIGH_WATER queued it stops reading; what it has not read is a suffix of the stream.
      await waitFor(async () => (await pendingWithUs()) >= HIGH_WATER, { what: 'the consumer to fill up' });
      // Another member of the group (one that then hung) reads what the paused consumer has not.
      const zombie = (await raw.call('XREADGROUP', 'GROUP', group, 'zombie', 'COUNT', total, 'STREAMS', stream, '>')) as Array<[string, unknown[]]>;
      const stolen = zombie[0]![1].length;
      expect(stolen).toBeGreaterThan(0);
      open();
      await waitFor(() => seen.length >= total, { timeoutMs: 30_000, what: 'every message, the swept ones included' });
      expect(seen.map(([n]) => n)).toEqual(Array.from({ length: total }, (_, i) => i));
      expect(seen.slice(total - stolen).every(([, attempt]) => attempt === 2)).toBe(true);
      expect(seen.slice(0, total - stolen).every(([, attempt]) => attempt === 1)).toBe(true);
      await waitFor(async () => (await pendingWithUs()) === 0, { what: 'everything acknowledged' });
    });

    it('caps each topic with XADD MAXLEN ~ and keeps the newest messages in order', async () => {
      const b = await bus(config({ maxLen: 100, partitions: 2 }));
      const topic = topicOf('maxlen');
      for (let i = 0; i < 3_000; i += 100) {
        await b.publish(topic, Array.from({ length: 100 }, (_, j) => ({ key: null, event: event(i + j) })));
      }
      const lengths = await Promise.all([0, 1].map((p) => raw.xlen(keys.stream(topic, p))));
      const total = lengths[0]! + lengths[1]!;
      expect(total).toBeGreaterThanOrEqual(100);
      expect(total).toBeLessThan(1_000);
      const ns: number[] = [];
      for await (const d of b.read(topic, { from: 'start', follow: false })) ns.push((d.event.data as { n: number }).n);
      expect(ns).toHaveLength(total);
      expect(ns.at(-1)).toBe(2_999);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
    });

    it('keeps per-key order across two consumers while they rebalance, join and leave', async () => {
      const a = await bus();
      const c = await bus();
      const topic = topicOf('twokeys');
      const group = `g-${randomUUID()}`;
      const seen = new Map<string, number[]>();
      const active = new Set<string>();
      const violations: string[] = [];
      const by = { a: 0, c: 0 };
      const handler = (who: 'a' | 'c') => async (d: Delivery): Promise<void> => {
        const key = d.key!;
        if (active.has(key)) violations.push(`${key} handled concurrently`);
        active.add(key);
        if ((d.event.data as { n: number }).n % 3 === 0) await new Promise((r) => setTimeout(r, 1));
        seen.set(key, [...(seen.get(key) ?? []), (d.event.data as { n: number }).n]);
        active.delete(key);
        by[who] += 1;
      };
      const subA = await a.subscribe({ group, topics: [topic], concurrency: 4, handler: handler('a') });
      const total = 1_200;
      const messages = Array.from({ length: total }, (_, i) => ({ key: `key-${i % 24}`, event: event(i) }));
      let published = 0;
      const publishUpTo = async (n: number): Promise<void> => {
        for (; published < n; published += 50) await a.publish(topic, messages.slice(published, published + 50));
      };
      await publishUpTo(400);
      // c joins while a is busy: a hands over part of the partitions after finishing what it has in flight.
      await c.subscribe({ group, topics: [topic], concurrency: 4, handler: handler('c') });
      await publishUpTo(800);
      const handled = (): number => [...seen.values()].reduce((s, l) => s + l.length, 0);
      await waitFor(() => handled() >= 800, { timeoutMs: 30_000, what: '800 deliveries' });
      expect(by.c).toBeGreaterThan(0); // c got partitions while a was still a member
      await publishUpTo(1_000);
      // a leaves with work in flight: c takes everything over, including what a had fetched but not handled.
      await subA.close();
      await publishUpTo(total);
      await waitFor(() => handled() >= total, { timeoutMs: 30_000, what: `${total} deliveries` });
      await waitFor(async () => ((await Promise.all(Array.from({ length: 8 }, (_, p) => raw.call('XPENDING', keys.stream(topic, p), group)))) as Array<[number]>).every((r) => r[0] === 0), { what: 'all acknowledged' });
      expect(violations).toEqual([]);
      expect(handled()).toBe(total);
      expect(by.a).toBeGreaterThan(0);
      expect(by.c).toBeGreaterThan(0);
      for (const [key, ns] of seen) {
        const k = Number(key.split('-')[1]);
        expect(ns).toEqual(Array.from({ length: total / 24 }, (_, j) => j * 24 + k));
      }
    });

    it('reads a topic back in publish order across its partitions, with and without follow', async () => {
      const b = await bus();
      const topic = topicOf('readorder');
      const total = 3_000;
      for (let i = 0; i < total; i += 250) {
        await b.publish(topic, Array.from({ length: 250 }, (_, j) => ({ key: `k-${i + j}`, event: event(i + j) })));
      }
      const once: number[] = [];
      for await (const d of b.read(topic, { from: 'start', follow: false })) once.push((d.event.data as { n: number }).n);
      expect(once).toEqual(Array.from({ length: total }, (_, i) => i));
      const followed: number[] = [];
      for await (const d of b.read(topic, { from: 'start', follow: true })) {
        followed.push((d.event.data as { n: number }).n);
        if (followed.length === total) break;
      }
      expect(followed).toEqual(once);
    });

    it('follows a topic from the end in publish order across partitions while batches keep arriving', async () => {
      const b = await bus();
      const topic = topicOf('followorder');
      await b.publish(topic, [{ key: 'before', event: event(-1) }]);
      const total = 2_000;
      const tail = b.read(topic, { from: 'end', follow: true });
      const followed: number[] = [];
      const reading = (async () => {
        for await (const d of tail) {
          followed.push((d.event.data as { n: number }).n);
          if (followed.length === total) break;
        }
      })();
      for (let i = 0; i < total; i += 40) {
        await b.publish(topic, Array.from({ length: 40 }, (_, j) => ({ key: `k-${i + j}`, event: event(i + j) })));
      }
      await reading;
      expect(followed).toEqual(Array.from({ length: total }, (_, i) => i));
    });

    it('hashes with the partition count a topic was created with, whatever the publisher is configured with', async () => {
      const eight = await bus();
      const three = await bus(config({ partitions: 3 }));
      const topic = topicOf('mismatch');
      await eight.publish(topic, [{ key: 'x', event: event(0) }]);
      await three.publish(topic, [{ key: 'x', event: event(1) }, { key: 'x', event: event(2) }]);
      expect(await raw.hget(keys.registry, topic)).toBe('8');
      expect(await raw.xlen(keys.stream(topic, partitionOf('x', 8)))).toBe(3);
      const got: number[] = [];
      await three.subscribe({ group: `g-${randomUUID()}`, topics: [topic], handler: async (d) => void got.push((d.event.data as { n: number }).n) });
      await waitFor(() => got.length === 3, { what: 'all three' });
      expect(got).toEqual([0, 1, 2]);
    });

    it('a subscription recovers after the connection to Redis was cut', async () => {
      const { relay, url: relayUrl } = await redisFaultProxy(url);
      cleanups.push(() => relay.close());
      const consumer = await bus(config({ url: relayUrl, publishTimeout: '2s' }));
      const producer = await bus();
      const topic = topicOf('outage');
      const got: number[] = [];
      const group = `g-${randomUUID()}`;
      await consumer.subscribe({ group, topics: [topic], handler: async (d) => void got.push((d.event.data as { n: number }).n) });
      await producer.publish(topic, [{ key: 'k', event: event(0) }]);
      await waitFor(() => got.length === 1, { what: 'delivery before the outage' });
      relay.down();
      await waitFor(async () => !(await consumer.health()).ok, { what: 'the consumer to notice the outage' });
      await producer.publish(topic, [{ key: 'k', event: event(1) }, { key: 'k', event: event(2) }]);
      // Longer than claimIdle: the consumer's leases expire, so it must take its partitions again.
      await waitFor(async () => (await raw.exists(keys.lease(group, topic, partitionOf('k', 8)))) === 0, { what: 'the lease to expire' });
      relay.up();
      await waitFor(() => got.length >= 3, { timeoutMs: 30_000, what: 'delivery after the outage' });
      expect(got).toEqual([0, 1, 2]);
    });

    /** The fields of the first raw dead letter of `topic`, once there is one (every partition of its DLQ). */
    async function firstDeadLetter(topic: string): Promise<string[]> {
      const dead = await waitFor(async () => {
        const entries = (await Promise.all(Array.from({ length: 8 }, (_, p) => raw.xrange(keys.stream(dlqTopic(topic), p), '-', '+')))).flat();
        return entries.length > 0 ? entries : undefined;
      }, { what: 'the raw dead letter' });
      return dead[0]![1];
    }

    it('moves an entry that is not a cutover message to the DLQ raw, and goes on', async () => {
      const b = await bus();
      const topic = topicOf('garbage');
      const got: number[] = [];
      await b.subscribe({ group: `g-${randomUUID()}`, topics: [topic], handler: async (d) => void got.push((d.event.data as { n: number }).n) });
      await raw.xadd(keys.stream(topic, 0), '*', 'key', 'bad', 'event', 'not json');
      await b.publish(topic, [{ key: 'good', event: event(7) }]);
      await waitFor(() => got.length === 1, { what: 'the good message' });
      const fields = await firstDeadLetter(topic);
      expect(fields[fields.indexOf('event') + 1]).toBe('not json');
      const headers = JSON.parse(fields[fields.indexOf('headers') + 1]!) as Record<string, string>;
      expect(headers[DlqHeaders.errorCode]).toBe(ErrorCodes.EVENT_INVALID);
      expect(headers[DlqHeaders.originalTopic]).toBe(topic);
    });

    it('moves an event with a bad attribute to the DLQ raw, naming the attribute, and never hands it to the handler', async () => {
      const b = await bus();
      const topic = topicOf('bad-attribute');
      const got: string[] = [];
      await b.subscribe({ group: `g-${randomUUID()}`, topics: [topic], handler: async (d) => void got.push(d.event.id) });
      // JSON and the four required attributes, as the old structural check wanted; a writer of the stream
      // can still put values there that no cutover code would (a number where a string goes, a bad traceparent).
      const bad = JSON.stringify({ ...event(1), id: 'forged', correlationid: 5, traceparent: 'nope' });
      await raw.xadd(keys.stream(topic, 0), '*', 'key', 'k', 'event', bad);
      await b.publish(topic, [{ key: 'good', event: { ...event(7), id: 'good' } }]);
      await waitFor(() => got.length === 1, { what: 'the good message' });
      const fields = await firstDeadLetter(topic);
      expect(fields[fields.indexOf('event') + 1]).toBe(bad);
      const headers = JSON.parse(fields[fields.indexOf('headers') + 1]!) as Record<string, string>;
      expect(headers[DlqHeaders.errorCode]).toBe(ErrorCodes.EVENT_INVALID);
      expect(headers[DlqHeaders.errorMessage]).toContain('correlationid');
      expect(headers[DlqHeaders.errorMessage]).toContain('traceparent');
      expect(got).toEqual(['good']);
    });
  });
}
