import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes, ValidationError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { CreateBusOptions } from '../options.js';
import type { RedisBusConfig } from '../../config/bus.js';
import { assertTopicName, validateSubscribe } from '../topics.js';
import type { Bus, BusHealth, BusMessage, ReadOptions, ReadStream, SubscribeOptions, Subscription } from '../types.js';
import { connect, disconnect, evictionPolicyProblem, openConnection, redisTarget, redisTlsOptions, sentinelOptions, toBusError, type RedisConnection } from './connection.js';
import { encodeMessage, type EncodedMessage } from './entries.js';
import { redisKeys, type RedisKeys } from './keys.js';
import { Publisher } from './publisher.js';
import { RedisReadStream } from './reader.js';
import { RedisSubscription } from './subscription.js';

export { evictionPolicyProblem } from './connection.js';

const DLQ_HEADROOM = 8 * 1024;

/**
 * What start() does with the server's answer to `CONFIG GET maxmemory-policy` (or the error it got):
 * `refuse` (throw CUTOVER_BUS_MISCONFIGURED), `warn` and go on, or `ok`.
 */
export function evictionDecision(reply: unknown, requireNoEviction: boolean): { action: 'ok' | 'warn' | 'refuse'; message?: string } {
  if (reply instanceof Error) {
    // Managed Redis services often disable or rename CONFIG: we cannot check, so we say so and go on.
    return { action: 'warn', message: `cannot check maxmemory-policy (CONFIG GET failed: ${reply.message}); make sure it is noeviction` };
  }
  if (!Array.isArray(reply) || reply.length < 2) {
    return { action: 'warn', message: 'cannot check maxmemory-policy (CONFIG GET returned nothing); make sure it is noeviction' };
  }
  const problem = evictionPolicyProblem(reply);
  if (!problem) return { action: 'ok' };
  return { action: requireNoEviction ? 'refuse' : 'warn', message: problem };
}

/**
 * The Redis Streams bus. One connection for publishing and coordination, plus one per subscription and per
 * following reader for their blocking reads. See subscription.ts for how per-key order holds across the
 * consumers of a group, publisher.ts for batching and the publish guarantees, reader.ts for ordered reads.
 */
export class RedisBus implements Bus {
  readonly kind = 'redis' as const;
  private readonly keys: RedisKeys;
  private main: RedisConnection | undefined;
  private publisher: Publisher | undefined;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly subscriptions = new Set<RedisSubscription>();
  private readonly readers = new Set<RedisReadStream>();

  constructor(
    private readonly config: RedisBusConfig,
    private readonly logger: Logger,
    // Connection-level fault injection for Redis goes through `config.url` (a relay); nothing to take here.
    _options: CreateBusOptions = {},
  ) {
    this.keys = redisKeys(config.prefix);
    // Reads and checks bus.tls files now, so an unreadable certificate fails createBus(), not a connect.
    redisTlsOptions(config);
    sentinelOptions(config);
  }

  start(): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError());
    this.starting ??= this.open().catch((err: unknown) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    const { config } = this;
    const main = openConnection(config, { role: 'main', socketTimeout: Math.max(config.publishTimeout, 5_000) }, this.logger);
    await connect(main, config, config.publishTimeout);
    try {
      await withTimeout(main.ping(), config.publishTimeout, () => new BusError(ErrorCodes.BUS_TIMEOUT, 'PING timed out', { retriable: true }));
      const reply = await main.config('GET', 'maxmemory-policy').catch((err: Error) => err);
      const decision = evictionDecision(reply, config.requireNoEviction);
      if (decision.action === 'refuse') throw new BusError(ErrorCodes.BUS_MISCONFIGURED, decision.message!, { details: { url: redisTarget(config) } });
      if (decision.action === 'warn') this.logger.warn(decision.message);
    } catch (err) {
      await disconnect(main, 0);
      throw toBusError(err, `start (Redis at ${redisTarget(config)})`);
    }
    if (this.closing) {
      await disconnect(main, 0);
      throw this.closedError();
    }
    this.main = main;
    this.publisher = new Publisher(main, config, this.keys, this.logger);
    this.logger.info({ url: redisTarget(config), prefix: config.prefix }, 'redis bus started');
  }

  publish(topic: string, messages: readonly BusMessage[]): Promise<void> {
    return this.publishWithin(topic, messages, this.config.maxMessageBytes);
  }

  private async publishWithin(topic: string, messages: readonly BusMessage[], maxBytes: number): Promise<void> {
    const publisher = this.ready();
    assertTopicName(topic);
    if (!Array.isArray(messages)) throw new ValidationError(ErrorCodes.EVENT_INVALID, 'messages: expected an array');
    // Validate the whole batch before anything is written: a bad batch leaves nothing behind.
    const encoded = messages.map((m, i) => encodeMessage(m, maxBytes, i));
    if (encoded.length === 0) return;
    await publisher.send(topic, encoded);
  }

  /** Publishes entries already encoded (dead letters of undecodable entries keep their raw text). */
  private publishEncoded(topic: string, messages: EncodedMessage[]): Promise<void> {
    return this.ready().send(topic, messages);
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.ready();
    validateSubscribe(options);
    const sub = new RedisSubscription(
      {
        config: this.config,
        keys: this.keys,
        main: this.main!,
        logger: this.logger,
        // A message accepted once must fit on the DLQ with the DLQ headers added (error text up to 2,000 chars).
        publish: (topic, messages) => this.publishWithin(topic, messages, this.config.maxMessageBytes + DLQ_HEADROOM),
        publishEncoded: (topic, messages) => this.publishEncoded(topic, messages),
        rememberPartitions: (topic, n) => this.publisher?.rememberPartitions(topic, n),
        onClosed: (s) => this.subscriptions.delete(s),
      },
      options,
    );
    this.subscriptions.add(sub);
    await sub.start();
    return sub;
  }

  read(topic: string, options: ReadOptions): ReadStream {
    this.ready();
    assertTopicName(topic);
    const reader = new RedisReadStream(
      { config: this.config, keys: this.keys, main: this.main!, logger: this.logger, onClosed: (r) => this.readers.delete(r) },
      topic,
      options,
    );
    this.readers.add(reader);
    return reader;
  }

  async health(): Promise<BusHealth> {
    const main = this.main;
    if (this.closing || !main) return { ok: false, kind: this.kind, detail: this.closing ? 'closed' : 'not started' };
    if (main.status !== 'ready') return { ok: false, kind: this.kind, detail: `connection ${main.status}` };
    const started = performance.now();
    try {
      await withTimeout(main.ping(), Math.min(1_000, this.config.publishTimeout), () => new Error('PING timed out'));
      return { ok: true, kind: this.kind, latencyMs: Math.round((performance.now() - started) * 100) / 100 };
    } catch (err) {
      return { ok: false, kind: this.kind, detail: (err as Error)?.message ?? String(err) };
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.starting?.catch(() => undefined);
      await Promise.allSettled([...this.subscriptions].map((s) => s.close()));
      await Promise.allSettled([...this.readers].map((r) => r.close()));
      await this.publisher?.close(2_000);
      if (this.main) await disconnect(this.main);
      this.logger.debug('redis bus closed');
    })();
    return this.closing;
  }

  private ready(): Publisher {
    if (this.closing || !this.publisher) throw this.closedError();
    return this.publisher;
  }

  private closedError(): BusError {
    return new BusError(ErrorCodes.BUS_CLOSED, this.closing ? 'the bus is closed' : 'the bus is not started (call start() first)');
  }
}
