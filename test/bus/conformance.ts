import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createBus, DlqHeaders, dlqTopic, type Bus, type BusKind, type BusConfigInput, type CreateBusOptions, type Delivery, type Subscription } from '../../src/bus/index.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import type { CloudEvent } from '../../src/events/types.js';
import { ErrorCodes, isCutoverError } from '../../src/errors.js';
import { settled, waitFor } from '../helpers/wait-for.js';

/**
 * One suite, run unchanged against every adapter on a real server. A target says how to configure its bus
 * for tests (short session timeouts so takeovers happen in seconds) and how to cut its connection.
 */
export interface ConformanceTarget {
  kind: BusKind | 'memory';
  /** Names the variant in the suite's title when one kind runs more than once (`kafka, platformatic producer`). */
  label?: string;
  /** Serializable bus config; the crash test passes it to a child process. */
  config(): BusConfigInput;
  options?(): CreateBusOptions;
  /** Makes the (not started) bus for a config; default createBus. */
  create?(config: BusConfigInput, options: CreateBusOptions): Bus;
  /** A bus whose connection to its server the test can cut and restore. */
  faulty(): Promise<{ config: BusConfigInput; options?: CreateBusOptions; down(): Promise<void>; up(): Promise<void>; close(): Promise<void> }>;
  /** Takeover of a dead consumer's messages must happen within this (ms). */
  takeoverMs: number;
  /** Delivery from a topic created after a pattern subscription, within this (ms). */
  discoveryMs: number;
  /** Whether redelivery after a crash counts as a new attempt (Redis, embedded: yes; Kafka has no counter). */
  countsCrashRedelivery: boolean;
  /** Cases the target cannot run, each with the reason (a bus that lives in one process cannot crash apart from it). */
  unsupported?: Partial<Record<'crash' | 'serverDown', string>>;
}

const root = path.resolve(import.meta.dirname, '../..');

export function runConformance(target: ConformanceTarget): void {
  const name = target.label ? `${target.kind}, ${target.label}` : target.kind;
  describe(`bus conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    const topicOf = (label: string): string => `test.${label}.${randomUUID().slice(0, 8)}`;

    const make = (config: BusConfigInput, options: CreateBusOptions): Promise<Bus> => (target.create ? Promise.resolve(target.create(config, options)) : createBus(config, options));
    /** `it`, or a skip that names why the target cannot run the case. */
    const unless = (feature: keyof NonNullable<ConformanceTarget['unsupported']>, title: string, fn: () => Promise<void>): void => {
      const why = target.unsupported?.[feature];
      if (why) it.skip(`${title} (unsupported on ${name}: ${why})`, fn);
      else it(title, fn);
    };

    async function bus(config = target.config(), options = target.options?.() ?? {}): Promise<Bus> {
      const b = await make(config, options);
      cleanups.push(() => b.close());
      await b.start();
      return b;
    }

    function event(n: number, extra: Record<string, unknown> = {}) {
      return buildEvent({ source: '/agents/test', type: 'test.event', data: { n, pad: 'x'.repeat(64), ...extra } });
    }

    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    it('round trip: a published message arrives with its event, key, headers and metadata', async () => {
      const b = await bus();
      const topic = topicOf('roundtrip');
      const got: Delivery[] = [];
      await b.subscribe({ group: `g-${randomUUID()}`, topics: [topic], handler: async (d) => void got.push(d) });
      const ev = buildEvent({ source: '/agents/test', type: 'test.event', data: { hello: 'world', n: 1 }, correlationid: 'c-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      const before = Date.now();
      await b.publish(topic, [{ key: 'k-1', event: ev, headers: { 'x-test': 'yes' } }]);
      await waitFor(() => got.length === 1, { what: 'delivery' });
      const d = got[0]!;
      expect(d.event).toEqual(ev);
      expect(d.key).toBe('k-1');
      expect(d.topic).toBe(topic);
      expect(d.headers['x-test']).toBe('yes');
      expect(d.attempt).toBe(1);
      expect(typeof d.position).toBe('string');
      expect(d.publishedAt).toBeGreaterThanOrEqual(before - 1_000);
      expect(d.publishedAt).toBeLessThanOrEqual(Date.now() + 1_000);
    });

    it('keeps per-key order over 1,000 messages and handles each once', async () => {
      const b = await bus();
      const topic = topicOf('order');
      const seen = new Map<string, number[]>();
      let handled = 0;
      await b.subscribe({
        group: `g-${randomUUID()}`,
        topics: [topic],
        concurrency: 4,
        handler: async (d) => {
          const { n } = d.event.data as { n: number };
          seen.set(d.key!, [...(seen.get(d.key!) ?? []), n]);
          handled += 1;
          // Yield so that keys really interleave under concurrency.
          if (n % 7 === 0) await new Promise((r) => setImmediate(r));
        },
      });
      const messages = Array.from({ length: 1_000 }, (_, i) => ({ key: `key-${i % 10}`, event: event(i) }));
      for (let i = 0; i < messages.length; i += 100) await b.publish(topic, messages.slice(i, i + 100));
      await waitFor(() => handled >= 1_000, { timeoutMs: 30_000, what: '1,000 deliveries' });
      await new Promise((r) => setTimeout(r, 200)); // a short grace window to catch duplicates arriving late
      expect(handled).toBe(1_000);
      expect(seen.size).toBe(10);
      for (const [key, ns] of seen) {
        const k = Number(key.split('-')[1]);
        expect(ns).toEqual(Array.from({ length: 100 }, (_, j) => j * 10 + k));
      }
    });

    it('two consumers in one group share the work, each message once', async () => {
      const a = await bus();
      const c = await bus();
      const topic = topicOf('share');
      const group = `g-${randomUUID()}`;
      const byA = new Set<string>();
      const byC = new Set<string>();
      const all: string[] = [];
      await a.subscribe({ group, topics: [topic], concurrency: 2, handler: async (d) => void (byA.add(d.event.id), all.push(d.event.id)) });
      await c.subscribe({ group, topics: [topic], concurrency: 2, handler: async (d) => void (byC.add(d.event.id), all.push(d.event.id)) });
      const messages = Array.from({ length: 400 }, (_, i) => ({ key: `key-${i % 40}`, event: event(i) }));
      for (let i = 0; i < messages.length; i += 100) await a.publish(topic, messages.slice(i, i + 100));
      await waitFor(() => new Set(all).size >= 400, { timeoutMs: 30_000, what: '400 distinct deliveries' });
      await new Promise((r) => setTimeout(r, 300));
      expect(all.length).toBe(400);
      expect(byA.size).toBeGreaterThan(0);
      expect(byC.size).toBeGreaterThan(0);
      expect([...byA].filter((id) => byC.has(id))).toEqual([]);
    });

    unless('crash', 'redelivers to another consumer the messages a dead consumer never acknowledged', async () => {
      const topic = topicOf('crash');
      const group = `g-${randomUUID()}`;
      const p = await bus();
      const child = spawnCrashConsumer(target.config(), topic, group);
      cleanups.push(async () => void child.kill('SIGKILL'));
      await child.ready;
      await p.publish(topic, Array.from({ length: 20 }, (_, i) => ({ key: `key-${i % 4}`, event: event(i) })));
      await waitFor(() => child.received.size > 0, { timeoutMs: 20_000, what: 'the doomed consumer to receive messages' });
      child.process.kill('SIGKILL');
      await new Promise((r) => child.process.once('exit', r));

      const got = new Map<string, Delivery>();
      const survivor = await bus();
      await survivor.subscribe({ group, topics: [topic], concurrency: 4, handler: async (d) => void got.set(d.event.id, d) });
      await waitFor(() => got.size >= 20, { timeoutMs: target.takeoverMs + 20_000, what: 'all 20 messages after takeover' });
      const redelivered = [...child.received].map((id) => got.get(id));
      expect(redelivered.every(Boolean)).toBe(true);
      if (target.countsCrashRedelivery) {
        for (const d of redelivered) expect(d!.attempt).toBeGreaterThanOrEqual(2);
      }
    });

    it('retries a failing handler with backoff, then moves the message to <topic>.dlq with the error', async () => {
      const b = await bus();
      const topic = topicOf('dlq');
      const attempts: number[] = [];
      const group = `g-${randomUUID()}`;
      await b.subscribe({
        group,
        topics: [topic],
        maxAttempts: 3,
        backoff: { initialMs: 10, maxMs: 50 },
        handler: async (d) => {
          if (d.event.id === marker.id) return void (markerHandled = true);
          attempts.push(d.attempt);
          throw new Error(`boom on attempt ${d.attempt}`);
        },
      });
      const ev = event(1);
      const marker = event(2);
      let markerHandled = false;
      await b.publish(topic, [{ key: 'poison', event: ev }]);
      const dead = await waitFor(async () => {
        const out: Delivery[] = [];
        for await (const d of b.read(dlqTopic(topic), { from: 'start', follow: false })) out.push(d);
        return out.length > 0 ? out : undefined;
      }, { timeoutMs: 20_000, what: 'the dead letter' });
      expect(attempts).toEqual([1, 2, 3]);
      expect(dead).toHaveLength(1);
      expect(dead[0]!.event).toEqual(ev);
      expect(dead[0]!.key).toBe('poison');
      expect(dead[0]!.headers[DlqHeaders.attempts]).toBe('3');
      expect(dead[0]!.headers[DlqHeaders.errorMessage]).toContain('boom on attempt 3');
      expect(dead[0]!.headers[DlqHeaders.originalTopic]).toBe(topic);
      expect(dead[0]!.headers[DlqHeaders.group]).toBe(group);
      // Acknowledged once dead-lettered: a later message of the same key is handled (keys keep their order,
      // so it would wait behind a redelivery), and the poison message is not tried again.
      await b.publish(topic, [{ key: 'poison', event: marker }]);
      await waitFor(() => markerHandled, { timeoutMs: 20_000, what: 'the next message of the key' });
      expect(attempts).toEqual([1, 2, 3]);
    });

    it('a wildcard subscription picks up a topic created after it subscribed', async () => {
      const b = await bus();
      const base = topicOf('wild');
      const got: Delivery[] = [];
      await b.subscribe({ group: `g-${randomUUID()}`, topics: [`${base}.*`, `${base}.deep.#`], handler: async (d) => void got.push(d) });
      await b.publish(`${base}.later`, [{ key: null, event: event(1) }]);
      await b.publish(`${base}.deep.er.still`, [{ key: null, event: event(2) }]);
      await b.publish(`${base}.not.matched`, [{ key: null, event: event(3) }]);
      await waitFor(() => got.length >= 2, { timeoutMs: target.discoveryMs + 10_000, what: 'deliveries from new topics' });
      await new Promise((r) => setTimeout(r, 300));
      expect(got.map((d) => d.topic).sort()).toEqual([`${base}.deep.er.still`, `${base}.later`]);
    });

    it('reads a topic from the start without a group, and follows from the end', async () => {
      const b = await bus();
      const topic = topicOf('read');
      await b.publish(topic, Array.from({ length: 10 }, (_, i) => ({ key: 'log', event: event(i) })));
      const all: number[] = [];
      for await (const d of b.read(topic, { from: 'start', follow: false })) all.push((d.event.data as { n: number }).n);
      expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

      const tail = b.read(topic, { from: 'end', follow: true });
      const later: number[] = [];
      const reading = (async () => {
        for await (const d of tail) {
          later.push((d.event.data as { n: number }).n);
          if (later.length === 2) break;
        }
      })();
      // The reader must be positioned before we publish: wait until it has had a chance to start.
      await waitFor(async () => {
        await b.publish(topic, [{ key: 'log', event: event(100 + later.length) }]);
        return later.length >= 2;
      }, { timeoutMs: 20_000, intervalMs: 500, what: 'the follower to see a new message' });
      await reading;
      await tail.close();
      expect(later.every((n) => n >= 100)).toBe(true);
    });

    unless('serverDown', 'rejects a publish in bounded time with a typed error while the server is down, and recovers', async () => {
      const fault = await target.faulty();
      cleanups.push(() => fault.close());
      const b = await bus({ ...fault.config, publishTimeout: '2s' } as BusConfigInput, fault.options ?? {});
      const topic = topicOf('down');
      await b.publish(topic, [{ key: 'a', event: event(0) }]);
      await fault.down();
      // publishTimeout is 2 s: the wait bounds hangs, not speed.
      const err = await settled(b.publish(topic, [{ key: 'a', event: event(1) }]), { timeoutMs: 10_000, what: 'the publish to settle' });
      expect(isCutoverError(err)).toBe(true);
      expect([ErrorCodes.BUS_UNAVAILABLE, ErrorCodes.BUS_TIMEOUT]).toContain((err as { code: string }).code);
      expect((await b.health()).ok).toBe(false);
      await fault.up();
      await waitFor(async () => (await b.health()).ok, { timeoutMs: 30_000, what: 'health after recovery' });
      await waitFor(() => b.publish(topic, [{ key: 'a', event: event(2) }]).then(() => true, () => false), { timeoutMs: 30_000, intervalMs: 250, what: 'publish after recovery' });
    });

    it('validates topics and sizes before writing anything', async () => {
      const b = await bus({ ...target.config(), maxMessageBytes: 2_000 } as BusConfigInput);
      const topic = topicOf('valid');
      const bad = await b.publish('no spaces allowed', [{ key: null, event: event(1) }]).catch((e: unknown) => e);
      expect((bad as { code?: string }).code).toBe(ErrorCodes.TOPIC_INVALID);
      const big = await b.publish(topic, [{ key: 'a', event: event(1) }, { key: 'a', event: event(2, { big: 'y'.repeat(5_000) }) }]).catch((e: unknown) => e);
      expect((big as { code?: string }).code).toBe(ErrorCodes.MESSAGE_TOO_LARGE);
      // Not a CloudEvent a consumer would take (every bus's consumers check in full): refused before
      // anything of the batch is written, naming the message and the attribute.
      const forged = { ...event(4), correlationid: 5 } as unknown as CloudEvent;
      const invalid = await b.publish(topic, [{ key: 'a', event: event(4) }, { key: 'a', event: forged }]).catch((e: unknown) => e);
      expect((invalid as { code?: string }).code).toBe(ErrorCodes.EVENT_INVALID);
      expect((invalid as Error).message).toMatch(/messages\[1\]\.event.*correlationid/);
      await b.publish(topic, [{ key: 'a', event: event(3) }]);
      const all: number[] = [];
      for await (const d of b.read(topic, { from: 'start', follow: false })) all.push((d.event.data as { n: number }).n);
      expect(all).toEqual([3]); // the rejected batch left nothing behind
      const badPattern = await b.subscribe({ group: 'g', topics: ['a.#.b'], handler: async () => undefined }).catch((e: unknown) => e);
      expect((badPattern as { code?: string }).code).toBe(ErrorCodes.TOPIC_INVALID);
    });

    it('closes idempotently and refuses work afterwards', async () => {
      const b = await make(target.config(), target.options?.() ?? {});
      await b.start();
      const sub: Subscription = await b.subscribe({ group: `g-${randomUUID()}`, topics: [topicOf('close')], handler: async () => undefined });
      await sub.close();
      await sub.close();
      await b.close();
      await b.close();
      const err = await b.publish(topicOf('close'), [{ key: null, event: event(1) }]).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe(ErrorCodes.BUS_CLOSED);
      expect((await b.health()).ok).toBe(false);
    });

    afterAll(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });
  });
}

interface CrashConsumer {
  process: ChildProcess;
  ready: Promise<void>;
  received: Set<string>;
  kill(signal: NodeJS.Signals): void;
}

/** Runs a consumer in a child process whose handler never finishes, so that a SIGKILL is a real crash. */
function spawnCrashConsumer(config: BusConfigInput, topic: string, group: string): CrashConsumer {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/bus/fixtures/crash-consumer.ts'), JSON.stringify(config), topic, group], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const received = new Set<string>();
  let buffer = '';
  let onReady: () => void;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    child.once('exit', (code) => reject(new Error(`crash consumer exited early with ${code}`)));
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line === 'ready') onReady();
      else if (line.startsWith('got ')) received.add(line.slice(4));
    }
  });
  return { process: child, ready, received, kill: (s) => child.kill(s) };
}
