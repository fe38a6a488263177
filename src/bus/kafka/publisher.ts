import { Partitioners, type Message, type Producer, type TopicMessages } from 'kafkajs';
import type { CutoverError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import { ClientHandle } from './client-handle.js';
import type { OutgoingMessage } from './codec.js';
import { clientRetry, type KafkaFactory } from './client.js';
import { timeoutError, toBusError } from './errors.js';

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
  messages: Message[];
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
 * are sent as one `sendBatch`, any topics mixed; each call resolves when all its messages are acked by all
 * in-sync replicas (acks -1), or rejects by its own deadline (`publishTimeout`).
 *
 * One request is in flight at a time: the producer is idempotent, and kafkajs serializes idempotent
 * requests per broker anyway; meanwhile the next batch gathers. Keeping one request in flight also keeps
 * per-key order across calls. A request over MAX_REQUEST_BYTES is split into consecutive chunks.
 */
export class Publisher {
  private readonly producers: ClientHandle<Producer>;
  private readonly queue: Chunk[] = [];
  private queuedBytes = 0;
  private sending = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly active = new Set<Promise<void>>();

  constructor(
    kafka: KafkaFactory,
    private readonly options: PublisherOptions,
  ) {
    const { config, logger } = options;
    this.producers = new ClientHandle<Producer>({
      create: () => {
        const { client, sockets } = kafka();
        const producer = client.producer({
          idempotent: true,
          // kafkajs's default for idempotent producers is to retry forever; every publish has a deadline.
          retry: clientRetry(config),
          allowAutoTopicCreation: false,
          // Passing it explicitly also silences kafkajs's notice about its v2 partitioner change.
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        return { client: producer, release: () => sockets?.destroy() };
      },
      connectTimeout: config.connectionTimeout * 2,
      retireTimeout: config.publishTimeout + 1_000,
      what: 'producer',
      brokers: config.brokers,
      logger,
      // Any failed send retires the producer: an idempotent producer whose batch may or may not have
      // landed must not reuse its sequence numbers, or the broker could drop the next batch as a duplicate.
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
    this.lingerTimer ??= setTimeout(() => this.flush(), this.options.config.linger);
  }

  private flush(): void {
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
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

  private async send(batch: Chunk[]): Promise<void> {
    const byTopic = new Map<string, Message[]>();
    for (const chunk of batch) {
      const list = byTopic.get(chunk.call.topic);
      if (list) list.push(...chunk.messages);
      else byTopic.set(chunk.call.topic, [...chunk.messages]);
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    const { publishTimeout } = this.options.config;
    const what = topicMessages.length === 1 ? `publish to ${topicMessages[0]!.topic}` : `publish to ${topicMessages.length} topics`;
    try {
      await this.producers.run(what, publishTimeout, (producer) => producer.sendBatch({ topicMessages, acks: -1, timeout: publishTimeout }));
      for (const chunk of batch) this.ack(chunk.call);
    } catch (err) {
      const error = toBusError(err, what, this.options.config.brokers);
      this.options.logger.debug({ err: error, messages: batch.reduce((n, c) => n + c.messages.length, 0) }, 'kafka produce request failed');
      for (const chunk of batch) this.fail(chunk.call, error);
    }
  }

  /** Waits (bounded by each call's deadline) for publishes in flight, then disconnects. Idempotent. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.active]);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    await this.producers.close();
  }
}
