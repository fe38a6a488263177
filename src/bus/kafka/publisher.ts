import type { CutoverError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import { ClientHandle } from './client-handle.js';
import type { OutgoingMessage, OutgoingRecord } from './codec.js';
import { timeoutError, toBusError } from './errors.js';
import type { ProducerClient, ProducerFactory, TopicRecords } from './producer-client.js';

/**
 * Cap on one produce request. Kafka limits a record batch per partition to `message.max.bytes` (1 MiB by
 * default) and every message of a request may hash to one partition, so the cap stays under that whatever
 * the keys are.
 */
export const MAX_REQUEST_BYTES = 900 * 1024;

interface PublishCall {
  topic: string;
  /** Chunks not yet acknowledged. */
  remaining: number;
  settled: boolean;
  resolve: () => void;
  reject: (err: CutoverError) => void;
  timer: NodeJS.Timeout;
}

interface Chunk {
  call: PublishCall;
  messages: OutgoingRecord[];
  bytes: number;
}

export interface PublisherOptions {
  config: KafkaBusConfig;
  logger: Logger;
  /** Resolves once `topic` exists (topics are created on demand). */
  ensureTopic: (topic: string, timeoutMs: number) => Promise<void>;
}

/**
 * Micro-batching producer. publish() calls arriving within `linger` (and while a request is in flight)
 * are sent as one produce call of the producer client (kafkajs or @platformatic/kafka), any topics mixed;
 * each call resolves when all its messages are acked by all in-sync replicas (acks -1), or rejects by its
 * own deadline (`publishTimeout`); a retriable failure is retried until then. With `linger` 0 (the default)
 * the window is the rest of the current event-loop turn: calls made together still share a request, and a
 * lone call (a bus-mode command, a reply) is not held.
 *
 * One request is in flight at a time; meanwhile the next batch gathers. Keeping one request in flight
 * keeps per-key order across calls, and under load it batches by itself: whatever arrives during a
 * round trip goes in the next request. A request over MAX_REQUEST_BYTES is split into consecutive chunks.
 *
 * The producer is not idempotent: kafkajs refuses idempotence without its own retries, and those can
 * acknowledge messages that were never written (see `produceRetry` in client.ts); the other client is set
 * up the same way so that both behave alike. Without client-side resends of a request there is nothing for
 * broker-side deduplication to catch; a batch sent again after a failure (this class, or the caller) may
 * duplicate what part of it had landed: at-least-once, as everywhere.
 */
export class Publisher {
  private readonly producers: ClientHandle<ProducerClient>;
  private readonly queue: Chunk[] = [];
  private queuedBytes = 0;
  private sending = false;
  private lingerTimer: { cancel(): void } | undefined;
  private readonly active = new Set<Promise<void>>();
  private closing = false;

  constructor(
    createProducer: ProducerFactory,
    private readonly options: PublisherOptions,
  ) {
    const { config, logger } = options;
    this.producers = new ClientHandle<ProducerClient>({
      create: createProducer,
      connectTimeout: config.connectionTimeout * 2,
      retireTimeout: config.publishTimeout + 1_000,
      what: 'producer',
      brokers: config.brokers,
      logger,
      // Any failed send retires the producer: its connections may be wedged, and the next attempt starts
      // from fresh metadata.
      discardOn: () => true,
    });
  }

  /** Connects the producer now (bounded), for start()'s fail-fast check. */
  connect(): Promise<void> {
    return this.producers.connect();
  }

  publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    const { publishTimeout, brokers } = this.options.config;
    const done = new Promise<void>((resolve, reject) => {
      const call: PublishCall = {
        topic,
        remaining: 0,
        settled: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          const unreachable = this.producers.recentlyUnreachable(publishTimeout);
          this.fail(call, timeoutError(`publish to ${topic}`, publishTimeout, unreachable, brokers));
        }, publishTimeout),
      };
      const chunks = this.split(call, messages);
      call.remaining = chunks.length;
      this.options.ensureTopic(topic, publishTimeout).then(
        () => {
          if (call.settled) return;
          for (const chunk of chunks) {
            this.queue.push(chunk);
            this.queuedBytes += chunk.bytes;
          }
          this.schedule();
        },
        (err: unknown) => this.fail(call, toBusError(err, `publish to ${topic}`, brokers)),
      );
    });
    this.active.add(done);
    const forget = (): void => {
      this.active.delete(done);
    };
    done.then(forget, forget);
    return done;
  }

  private split(call: PublishCall, messages: readonly OutgoingMessage[]): Chunk[] {
    const chunks: Chunk[] = [];
    let current: Chunk = { call, messages: [], bytes: 0 };
    for (const m of messages) {
      if (current.messages.length > 0 && current.bytes + m.bytes > MAX_REQUEST_BYTES) {
        chunks.push(current);
        current = { call, messages: [], bytes: 0 };
      }
      current.messages.push(m.message);
      current.bytes += m.bytes;
    }
    if (current.messages.length > 0) chunks.push(current);
    return chunks;
  }

  private fail(call: PublishCall, err: CutoverError): void {
    if (call.settled) return;
    call.settled = true;
    clearTimeout(call.timer);
    // Chunks still waiting are dropped: the caller was told this publish failed and will retry it.
    for (let i = this.queue.length - 1; i >= 0; i -= 1) {
      const chunk = this.queue[i]!;
      if (chunk.call === call) {
        this.queue.splice(i, 1);
        this.queuedBytes -= chunk.bytes;
      }
    }
    call.reject(err);
  }

  private ack(call: PublishCall): void {
    if (call.settled) return;
    call.remaining -= 1;
    if (call.remaining > 0) return;
    call.settled = true;
    clearTimeout(call.timer);
    call.resolve();
  }

  private schedule(): void {
    if (this.sending || this.queue.length === 0) return;
    if (this.queuedBytes >= MAX_REQUEST_BYTES) {
      this.flush();
      return;
    }
    if (this.lingerTimer) return;
    const linger = this.options.config.linger;
    if (linger > 0) {
      const timer = setTimeout(() => this.flush(), linger);
      this.lingerTimer = { cancel: () => clearTimeout(timer) };
    } else {
      // setTimeout(0) would wait for the next timer phase, a millisecond or more; setImmediate runs after
      // the I/O of this turn, so publishes made in one turn still go out together.
      const immediate = setImmediate(() => this.flush());
      this.lingerTimer = { cancel: () => clearImmediate(immediate) };
    }
  }

  private flush(): void {
    if (this.lingerTimer) {
      this.lingerTimer.cancel();
      this.lingerTimer = undefined;
    }
    if (this.sending || this.queue.length === 0) return;
    const batch: Chunk[] = [];
    let bytes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (batch.length > 0 && bytes + next.bytes > MAX_REQUEST_BYTES) break;
      this.queue.shift();
      this.queuedBytes -= next.bytes;
      batch.push(next);
      bytes += next.bytes;
    }
    this.sending = true;
    void this.send(batch).finally(() => {
      this.sending = false;
      // Whatever queued during the request has lingered long enough: send it right away.
      if (this.queue.length > 0) this.flush();
    });
  }

  /**
   * Sends the batch, and again (the whole of it, with a fresh producer) after a retriable failure, until it
   * is acknowledged or every call in it has reached its deadline. The clients' own retries are off (see
   * `produceRetry` in client.ts): kafkajs's, after a leader change, can skip the messages of a partition that
   * moved to a broker that had already answered, and resolve as if they were written.
   */
  private async send(batch: Chunk[]): Promise<void> {
    const { publishTimeout, brokers } = this.options.config;
    for (let attempt = 0; ; attempt++) {
      const live = batch.filter((chunk) => !chunk.call.settled);
      if (live.length === 0) return;
      const byTopic = new Map<string, OutgoingRecord[]>();
      for (const chunk of live) {
        const list = byTopic.get(chunk.call.topic);
        if (list) list.push(...chunk.messages);
        else byTopic.set(chunk.call.topic, [...chunk.messages]);
      }
      const topicRecords: TopicRecords[] = [...byTopic].map(([topic, records]) => ({ topic, records }));
      const what = topicRecords.length === 1 ? `publish to ${topicRecords[0]!.topic}` : `publish to ${topicRecords.length} topics`;
      try {
        await this.producers.run(what, publishTimeout, (producer) => producer.send(topicRecords, publishTimeout));
        for (const chunk of live) this.ack(chunk.call);
        return;
      } catch (err) {
        const error = toBusError(err, what, brokers);
        this.options.logger.debug({ err: error, attempt, messages: live.reduce((n, c) => n + c.messages.length, 0) }, 'kafka produce request failed');
        if (!error.retriable || this.closing) {
          for (const chunk of live) this.fail(chunk.call, error);
          return;
        }
        // A leader election takes seconds; each call's own deadline ends the loop for it.
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 1_000)));
      }
    }
  }

  /** Waits (bounded by each call's deadline) for publishes in flight, then disconnects. Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.active]);
    this.lingerTimer?.cancel();
    this.lingerTimer = undefined;
    await this.producers.close();
  }
}
