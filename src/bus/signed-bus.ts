import { Counter, type Registry } from 'prom-client';
import type { TopicAcl } from '../acl/rules.js';
import { CutoverError, ErrorCodes } from '../errors.js';
import { producerOf, rejectionError, signEvent, SignatureAttributes, verifyEvent, type Rejection, type Signer, type Trust } from '../events/signature.js';
import type { CloudEvent } from '../events/types.js';
import { silentLogger, type Logger } from '../logger.js';
import { nonRetriable } from './attempts.js';
import type { Bus, BusHealth, BusMessage, Delivery, ReadOptions, ReadStream, Subscription, SubscribeOptions, Verification } from './types.js';

export interface SignedBusOptions {
  /** Signs every event published that does not carry a signature yet. */
  signer?: Signer | undefined;
  /** Verifies every event delivered to a subscription before its handler sees it. */
  trust?: Trust | undefined;
  /**
   * Topic authorization (`acl:`): publishes are checked against this process's identity, and deliveries
   * and reads against the producer a verified signature names (this needs a `trust`).
   */
  acl?: TopicAcl | undefined;
  /** The identity publishes are checked against when there is no signer (the config's `agent`). */
  agent?: string | undefined;
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
      help: 'Events that failed signature verification or topic authorization, by consumer group and reason code (dead-lettered when trust.enforce / acl.enforce is on)',
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
  if (!signer && !trust && !options.acl) return bus;
  return new SignedBus(bus, options);
}

/** The signer of an event that verified: its signature attributes are trustworthy only after that. */
function verifiedSigner(event: Delivery['event']): Verification {
  const agent = event[SignatureAttributes.agent];
  const keyId = event[SignatureAttributes.keyId];
  return typeof agent === 'string' && typeof keyId === 'string' && event[SignatureAttributes.signature] !== undefined ? { ok: true, agent, keyId } : { ok: true };
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
    const { signer, acl } = this.options;
    // The identity judged is the one consumers will see: an event signed already (a flip signed with an
    // operator key) speaks for its signer, any other for this process.
    const own = signer?.agent ?? this.options.agent;
    // Without an acl: nothing to judge: the common case pays nothing per message here.
    const producers = acl ? new Set(messages.map((m) => (m.event.signature !== undefined && typeof m.event[SignatureAttributes.agent] === 'string' ? (m.event[SignatureAttributes.agent] as string) : own))) : [];
    for (const identity of producers) {
      if (!acl || identity === undefined || acl.mayPublish(identity, topic)) continue;
      const reason = `topic ${topic}: agent ${JSON.stringify(identity)} may not publish here (acl.agents.${identity}.publish and the rules cutover implies do not cover it)`;
      if (acl.enforce) return Promise.reject(new CutoverError(ErrorCodes.AUTH_TOPIC_DENIED, reason, { retriable: false, details: { topic, agent: identity } }));
      this.log.warn({ topic, agent: identity, code: ErrorCodes.AUTH_TOPIC_DENIED }, `${reason}; published anyway (acl.enforce is off)`);
    }
    if (!signer) return this.inner.publish(topic, messages);
    // An event that is signed already keeps its producer's signature (a re-publish proves nothing new).
    return this.inner.publish(
      topic,
      messages.map((m) => (m.event.signature === undefined ? { ...m, event: signEvent(m.event, topic, signer, m.headers) } : m)),
    );
  }

  /**
   * Why an event delivered on `topic` must not be acted on, with whether that is enforced; undefined when
   * it may. A signature is checked first; the topic rule then judges the producer the signature names
   * (with `trust.enforce` off, the producer a failed signature claims).
   */
  private check(event: CloudEvent, topic: string, headers: Readonly<Record<string, string>>): { rejection: Rejection; enforce: boolean } | undefined {
    const { trust, acl } = this.options;
    if (!trust) return undefined;
    const verdict = verifyEvent(event, topic, trust, headers);
    if (verdict !== 'ok' && trust.enforce) return { rejection: verdict, enforce: true };
    const producer = producerOf(event);
    if (acl && !acl.mayPublish(producer, topic)) {
      return {
        rejection: { code: ErrorCodes.AUTH_TOPIC_DENIED, reason: `event ${event.id} on ${topic}: its producer ${JSON.stringify(producer)} may not publish on this topic (acl:)` },
        enforce: acl.enforce,
      };
    }
    return verdict === 'ok' ? undefined : { rejection: verdict, enforce: false };
  }

  subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (!this.options.trust) return this.inner.subscribe(options);
    return this.inner.subscribe({
      ...options,
      handler: async (d) => {
        const failed = this.check(d.event, d.topic, d.headers);
        if (failed) {
          const { rejection, enforce } = failed;
          this.rejected?.inc({ consumer: options.group, reason: rejection.code });
          const log = this.log.child({ eventId: d.event.id, topic: d.topic, group: options.group, source: d.event.source });
          if (enforce) {
            log.warn({ code: rejection.code, reason: rejection.reason }, 'event rejected; dead-lettered');
            throw nonRetriable(rejectionError(rejection));
          }
          log.warn({ code: rejection.code, reason: rejection.reason }, 'event rejected; handled anyway (enforce is off)');
        }
        await options.handler(d);
      },
    });
  }

  /**
   * Reads are verified too: the flip log every sidecar follows and the parity records reports count are
   * read, not subscribed. A record that fails verification or topic authorization has nowhere to be
   * dead-lettered, so it is skipped (when enforced, unless `options.rejected` asks for it), counted under the
   * consumer `read:<topic>` and logged. Every record yielded carries its `verification`: the verified signer, or why it failed.
   */
  read(topic: string, options: ReadOptions): ReadStream {
    const inner = this.inner.read(topic, options);
    if (!this.options.trust) return inner;
    const consumer = `read:${topic}`;
    const verified = async function* (this: SignedBus): AsyncGenerator<Delivery> {
      for await (const d of inner) {
        const failed = this.check(d.event, d.topic, d.headers);
        if (!failed) {
          yield { ...d, verification: verifiedSigner(d.event) };
          continue;
        }
        const { rejection, enforce } = failed;
        this.rejected?.inc({ consumer, reason: rejection.code });
        const log = this.log.child({ eventId: d.event.id, topic: d.topic, source: d.event.source });
        if (enforce && !options.rejected) {
          log.warn({ code: rejection.code, reason: rejection.reason }, 'record rejected; skipped');
          continue;
        }
        // A reader that asked for rejected records judges and reports each one itself.
        if (options.rejected) log.debug({ code: rejection.code, reason: rejection.reason }, 'record rejected; handed on marked as rejected');
        else log.warn({ code: rejection.code, reason: rejection.reason }, 'record rejected; read anyway (enforce is off)');
        yield { ...d, verification: { ok: false, code: rejection.code, reason: rejection.reason } };
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
