import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import { isPattern as hasWildcard, topicsMatcher } from '../topics.js';
import { headerString, Internal } from './codec.js';
import type { RabbitNames } from './names.js';
import { onChannel, type Topology } from './topology.js';

/** Stream deliveries held unacknowledged while copying (stream consumers over AMQP need a prefetch). */
const PREFETCH = 512;
/** Copies awaited together: enough to keep the confirm channel busy, few enough to bound memory. */
const CONFIRM_BATCH = 500;

/**
 * Sets up a NEW consumer group that subscribes `from: 'start'`: its partition queues get what is published
 * from now on, and its history queues (`…p<n>.history`, one per partition) get everything the topics' log
 * streams held before, in stream order, ending with a marker. A member consumes a partition's history queue
 * to its marker before the partition queue itself (subscription.ts), so each key sees its history first.
 *
 * The seam between history and live traffic is drawn with two markers appended to every log stream:
 * `before` is confirmed before the group is bound to the topic exchange, `after` once it is bound. A message
 * ahead of `before` in a stream was routed before the binding existed, so it is in the history only; one
 * behind `after` was routed with the binding, so it is live only; one in between may be in both. The ids of
 * those in between go into the history queue's end marker, and the member skips them once in the partition
 * queue: nothing is lost and no key is replayed out of order.
 *
 * One member does this while holding the exclusive queue `…setup.lock`; the group's members queue is declared
 * last, and no member consumes a partition before it exists. A setup cut short (crash, lost connection)
 * leaves no members queue, so the next subscriber does it again from a clean state: unbound, queues purged.
 */
export class HistorySetup {
  constructor(
    private readonly config: RabbitmqBusConfig,
    private readonly names: RabbitNames,
    private readonly topology: Topology,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}

  /**
   * Runs the setup on `model` (whose connection holds the setup lock). Resolves false when another member
   * holds the lock (it sets the group up; try again later), true once the group is set up.
   */
  async run(model: ChannelModel, group: string, patterns: readonly string[]): Promise<boolean> {
    const { names } = this;
    const lock = await model.createChannel();
    lock.on('error', () => undefined);
    try {
      await lock.assertQueue(names.setupLock(group), { exclusive: true, durable: false, arguments: { 'x-queue-type': 'classic' } });
    } catch (err) {
      // 405 RESOURCE_LOCKED: another member is setting the group up. The refusal closed the channel.
      if ((err as { code?: number }).code !== 405) throw err;
      return false;
    }
    try {
      if (await this.topology.groupExists(model, group)) return true;
      await this.setUp(model, group, patterns);
      return true;
    } finally {
      await lock.deleteQueue(names.setupLock(group)).catch(() => undefined);
      await lock.close().catch(() => undefined);
    }
  }

  private async setUp(model: ChannelModel, group: string, patterns: readonly string[]): Promise<void> {
    const { names, config } = this;
    // From a clean state: an earlier setup may have stopped half way, leaving bindings and copies.
    await onChannel(model, async (ch) => {
      await ch.assertExchange(names.groupExchange(group), 'headers', { durable: true });
      for (const pattern of patterns) await ch.unbindExchange(names.groupExchange(group), names.exchange, pattern);
    });
    await this.topology.partitionQueues(model, group, { history: true, purge: true });

    const topics = await this.topics(model, patterns);
    const writer = await model.createConfirmChannel();
    writer.on('error', (err: Error) => this.log.warn({ err }, 'history channel closed by the broker'));
    try {
      const before = randomUUID();
      const after = randomUUID();
      for (const topic of topics) await confirmed(writer, '', names.log(topic), Buffer.from('{}'), { persistent: true, headers: { [Internal.marker]: before } });
      await onChannel(model, async (ch) => {
        for (const pattern of patterns) await ch.bindExchange(names.groupExchange(group), names.exchange, pattern);
      });
      // A topic first published while the group was being bound registers before its first message: found
      // now, without a `before` marker, its whole log so far counts as seam.
      const late = (await this.topics(model, patterns)).filter((t) => !topics.includes(t));
      topics.push(...late);
      for (const topic of topics) await confirmed(writer, '', names.log(topic), Buffer.from('{}'), { persistent: true, headers: { [Internal.marker]: after } });

      const seam: string[][] = Array.from({ length: config.partitions }, () => []);
      let copied = 0;
      for (const topic of topics) copied += await this.copy(model, writer, group, topic, { before: late.includes(topic) ? undefined : before, after }, seam);
      for (let p = 0; p < config.partitions; p++) {
        await confirmed(writer, names.historyExchange(group), '', Buffer.from(JSON.stringify(seam[p])), {
          persistent: true,
          headers: { [Internal.partition]: String(p), [Internal.historyEnd]: '1' },
        });
      }
      for (const topic of topics) {
        // Registered, so a pattern subscribed later and a cleanup by prefix find it even if nothing published yet.
        await confirmed(writer, '', names.registry, Buffer.from('{}'), { persistent: true, headers: { [Internal.registered]: topic } });
      }
      this.log.info({ topics: topics.length, copied }, 'new consumer group: history copied from the log streams');
    } finally {
      await writer.close().catch(() => undefined);
    }
    // The history queues hold their copies now; their exchange has done its work.
    await onChannel(model, (ch) => ch.deleteExchange(names.historyExchange(group)));
    await this.topology.members(model, group);
  }

  /** The concrete topics subscribed, and the registered topics the wildcard patterns match. */
  private async topics(model: ChannelModel, patterns: readonly string[]): Promise<string[]> {
    const concrete = patterns.filter((p) => !hasWildcard(p));
    const wildcards = patterns.filter(hasWildcard);
    const found = new Set(concrete);
    if (wildcards.length > 0) {
      const matches = topicsMatcher(wildcards);
      for (const topic of await registeredTopics(model, this.names, this.signal)) if (matches(topic)) found.add(topic);
    }
    // A topic nobody published to has an empty stream: declaring it keeps the markers' queue there.
    for (const topic of found) await this.topology.logStream(model, topic);
    return [...found].sort();
  }

  /**
   * Copies one topic's stream up to the `after` marker into the group's history queues (through the group's
   * history exchange, keeping the topic as routing key), noting the ids between the markers (all of them
   * without a `before` marker). Returns the count.
   */
  private async copy(model: ChannelModel, writer: ConfirmChannel, group: string, topic: string, markers: { before: string | undefined; after: string }, seam: string[][]): Promise<number> {
    let between = markers.before === undefined;
    let copied = 0;
    let pending: Array<Promise<void>> = [];
    await scanStream(
      model,
      this.names.log(topic),
      markers.after,
      async (m) => {
        const partition = Number(headerString(m, Internal.partition));
        // Without a partition header no partition queue takes a message live either.
        if (!Number.isInteger(partition) || partition < 0 || partition >= this.config.partitions) return;
        const headers = { ...(m.properties.headers ?? {}) };
        delete headers['x-stream-offset'];
        pending.push(confirmed(writer, this.names.historyExchange(group), topic, m.content, { ...propertiesOf(m), headers }));
        if (between && m.properties.messageId) seam[partition]!.push(String(m.properties.messageId));
        copied += 1;
        if (pending.length >= CONFIRM_BATCH) {
          const batch = pending;
          pending = [];
          await Promise.all(batch);
        }
      },
      (marker) => {
        if (marker === markers.before) between = true;
      },
    );
    await Promise.all(pending);
    return copied;
  }
}

/** The publish properties of a delivery, for a copy that reads the same. */
function propertiesOf(m: ConsumeMessage): Options.Publish {
  const p = m.properties;
  return { persistent: true, contentType: p.contentType, messageId: p.messageId, type: p.type, timestamp: p.timestamp };
}

function confirmed(ch: ConfirmChannel, exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
  return new Promise((resolve, reject) => {
    ch.publish(exchange, routingKey, content, options, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error('message nacked by the broker')) : resolve()));
  });
}

/** Consumes a stream from its first offset until the marker `end`, handing other markers to `onMarker` and every other message to `each`. */
export async function scanStream(
model: ChannelModel,
queue: string,
end: string,
each: (m: ConsumeMessage) => void | Promise<void>,
onMarker: (id: string) => void = () => undefined,
signal: AbortSignal = new AbortController().signal,
): Promise<void> {
  const ch: Channel = await model.createChannel();
  // A broker-side close also rejects through the 'close' listener below.
  ch.on('error', () => undefined);
  try {
    await ch.prefetch(PREFETCH);
    await new Promise<void>((resolve, reject) => {
      let chain = Promise.resolve();
      let done = false;
      const stop = (): void => reject(new Error(`reading ${queue} stopped: closing`));
      if (signal.aborted) return stop();
      signal.addEventListener('abort', stop, { once: true });
      ch.on('close', () => {
        if (!done) reject(new Error(`reading ${queue}: the channel closed`));
      });
      void ch
        .consume(
          queue,
          (m) => {
            if (m === null) return reject(new Error(`reading ${queue}: the stream went away`));
            chain = chain
              .then(async () => {
                if (done) return;
                const marker = headerString(m, Internal.marker);
                if (marker === end) {
                  done = true;
                  signal.removeEventListener('abort', stop);
                  return resolve();
                }
                if (marker !== undefined) onMarker(marker);
                else await each(m);
                ch.ack(m);
              })
              .catch(reject);
          },
          { noAck: false, arguments: { 'x-stream-offset': 'first' } },
        )
        .catch(reject);
    });
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** Every topic in the registry stream (`<prefix>.registry`), read up to a marker appended now. */
export async function registeredTopics(model: ChannelModel, names: RabbitNames, signal?: AbortSignal): Promise<Set<string>> {
  const out = new Set<string>();
  const end = randomUUID();
  const writer = await model.createConfirmChannel();
  writer.on('error', () => undefined);
  try {
    await confirmed(writer, '', names.registry, Buffer.from('{}'), { persistent: true, headers: { [Internal.marker]: end } });
  } finally {
    await writer.close().catch(() => undefined);
  }
  await scanStream(
    model,
    names.registry,
    end,
    (m) => {
      const topic = headerString(m, Internal.registered);
      if (topic) out.add(topic);
    },
    undefined,
    signal,
  );
  return out;
}
