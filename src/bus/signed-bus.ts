import { Counter, type Registry } from 'prom-client';
import { rejectionError, signEvent, verifyEvent, type Signer, type Trust } from '../events/signature.js';
import { silentLogger, type Logger } from '../logger.js';
import { nonRetriable } from './attempts.js';
import type { Bus, BusHealth, BusMessage, Delivery, ReadOptions, ReadStream, Subscription, SubscribeOptions } from './types.js';

export interface SignedBusOptions {
  /** Signs every event published that does not carry a signature yet. */
  signer?: Signer | undefined;
  /** Verifies every event delivered to a subscription before its handler sees it. */
  trust?: Trust | undefined;
  /** Where `cutover_events_rejected_total` is registered. */
  registry?: Registry | undefined;
  logger?: Logger | undefined;
}

const rejectedCounters = new WeakMap<Registry, Counter<'consumer' | 'reason'>>();

/** One counter per registry, shared by every bus wrapped with it (a second one would not register). */
function rejectedCounter(registry: Registry): Counter<'consumer' | 'reason'> {
  let counter = rejectedCounters.get(registry);
  if (!counter) {
    counter = new Counter({
      name: 'cutover_events_rejected_total',
      help: 'Events that failed signature verification, by consumer group and reason code (dead-lettered when trust.enforce is on)',
      labelNames: ['consumer', 'reason'],
      registers: [registry],
    });
    rejectedCounters.set(registry, counter);
  }
  return counter;
}

/**
 * A bus with agent identity: publishes signed events and hands subscribers only verified ones. It sits
 * at the Bus interface so that every part built on a bus (the sidecar's outbox, replay consumers, the
 * comparator, SDK agents, flips) signs and verifies the same way without knowing about keys. A rejected
 * delivery fails its handler with a non-retriable auth error, so the adapter dead-letters it with that
 * code; with `trust.enforce` off it is counted and logged and then handled as before.
 * Without a signer and a trust the bus is returned as it is (the metric is still registered).
 */
export function signedBus(bus: Bus, options: SignedBusOptions): Bus {
  const { signer, trust } = options;
  // Registered even without a trust, so dashboards and alert rules find the metric on every install.
  if (options.registry) rejectedCounter(options.registry);
  if (!signer && !trust) return bus;
  return new SignedBus(bus, options);
}

class SignedBus implements Bus {
  private readonly log: Logger;
  private readonly rejected: Counter<'consumer' | 'reason'> | undefined;

  constructor(
    private readonly inner: Bus,
    private readonly options: SignedBusOptions,
  ) {
    this.log = (options.logger ?? silentLogger()).child({ component: 'identity' });
    this.rejected = options.registry ? rejectedCounter(options.registry) : undefined;
  }

  get kind(): Bus['kind'] {
    return this.inner.kind;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    const signer = this.options.signer;
    if (!signer) return this.inner.publish(topic, messages);
    // An event that is signed already keeps its producer's signature (a re-publish proves nothing new).
    return this.inner.publish(
      topic,
      messages.map((m) => (m.event.signature === undefined ? { ...m, event: signEvent(m.event, topic, signer, m.headers) } : m)),
    );
  }

  subscribe(options: SubscribeOptions): Promise<Subscription> {
    const trust = this.options.trust;
    if (!trust) return this.inner.subscribe(options);
    return this.inner.subscribe({
      ...options,
      handler: async (d) => {
        const verdict = verifyEvent(d.event, d.topic, trust, d.headers);
        if (verdict !== 'ok') {
          this.rejected?.inc({ consumer: options.group, reason: verdict.code });
          const log = this.log.child({ eventId: d.event.id, topic: d.topic, group: options.group, source: d.event.source });
          if (trust.enforce) {
            log.warn({ code: verdict.code, reason: verdict.reason }, 'event failed verification; dead-lettered');
            throw nonRetriable(rejectionError(verdict));
          }
          log.warn({ code: verdict.code, reason: verdict.reason }, 'event failed verification; handled anyway (trust.enforce is off)');
        }
        await options.handler(d);
      },
    });
  }

  /**
   * Reads are verified too: the flip log every sidecar follows and the parity records reports count are
   * read, not subscribed. A record that fails has nowhere to be dead-lettered, so it is skipped (with
   * `trust.enforce`), counted under the consumer `read:<topic>` and logged.
   */
  read(topic: string, options: ReadOptions): ReadStream {
    const trust = this.options.trust;
    const inner = this.inner.read(topic, options);
    if (!trust) return inner;
    const consumer = `read:${topic}`;
    const verified = async function* (this: SignedBus): AsyncGenerator<Delivery> {
      for await (const d of inner) {
        const verdict = verifyEvent(d.event, d.topic, trust, d.headers);
        if (verdict !== 'ok') {
          this.rejected?.inc({ consumer, reason: verdict.code });
          const log = this.log.child({ eventId: d.event.id, topic: d.topic, source: d.event.source });
          if (trust.enforce) {
            log.warn({ code: verdict.code, reason: verdict.reason }, 'record failed verification; skipped');
            continue;
          }
          log.warn({ code: verdict.code, reason: verdict.reason }, 'record failed verification; read anyway (trust.enforce is off)');
        }
        yield d;
      }
    }.call(this);
    return { [Symbol.asyncIterator]: () => verified, close: () => inner.close() };
  }

  health(): Promise<BusHealth> {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
