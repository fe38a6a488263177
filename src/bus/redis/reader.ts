import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { sleep } from '../../async.js';
import type { RedisBusConfig } from '../../config/bus.js';
import type { Delivery, ReadOptions, ReadStream } from '../types.js';
import { connect, disconnect, openConnection, toBusError, type RedisConnection } from './connection.js';
import { decodeEntry, streamsOf, type RawEntry } from './entries.js';
import { compareIds, type RedisKeys } from './keys.js';

const READ_COUNT = 256;

export interface ReaderContext {
  config: RedisBusConfig;
  keys: RedisKeys;
  main: RedisConnection;
  logger: Logger;
  onClosed(reader: RedisReadStream): void;
}

interface Positioned {
  partition: number;
  id: string;
  fields: string[];
}

/**
 * Reads one topic without a consumer group, in publish order across its partition streams.
 *
 * Entry ids are topic-wide and increasing, and the PUBLISH script writes a batch atomically (scripts.ts), so
 * what Redis holds at any instant is a prefix of the topic in id order. One non-blocking XREAD over all
 * partitions is a consistent snapshot; sorting its entries by id gives publish order, as long as we stop at
 * the smallest "last id" of the partitions whose reply COUNT cut short (beyond it, another partition may
 * still hold earlier entries we have not fetched). Entries past that bound are fetched again next round.
 *
 * A blocking XREAD is NOT such a snapshot: before Redis 7.2, a client blocked on several streams is
 * answered with only the stream that received data, though the same batch also wrote to other partitions.
 * So `follow: true` uses XREAD BLOCK (COUNT 1, on a connection of its own) only to wait, and then reads
 * the entries with a non-blocking XREAD. `follow: false` reads on the shared connection and ends at the
 * topic's last id as it was when read() was called.
 */
export class RedisReadStream implements ReadStream {
  private readonly abort = new AbortController();
  private conn: RedisConnection | undefined;
  private closing: Promise<void> | undefined;
  private iterating = false;
  /**
   * Where reading starts, asked for when read() is called (not at the first next()): the commands go out
   * on the shared connection ahead of any publish made after read() returned, so `from: 'end'` means
   * "after the call", and `follow: false` ends at what the topic held at the call.
   */
  private readonly position: Promise<{ partitions: string | null; last: string | null }>;

  constructor(
    private readonly ctx: ReaderContext,
    private readonly topic: string,
    private readonly options: ReadOptions,
  ) {
    const { main, keys } = ctx;
    this.position = Promise.all([main.hget(keys.registry, topic), main.get(keys.lastId(topic))]).then(([partitions, last]) => ({ partitions, last }));
    this.position.catch(() => undefined); // surfaced by the first next()
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    if (this.iterating) throw new BusError(ErrorCodes.INTERNAL, 'a ReadStream can be iterated once');
    this.iterating = true;
    return this.run();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort();
      // Ends a blocking XREAD at once instead of after blockTime.
      if (this.conn) await disconnect(this.conn, 0);
      this.ctx.onClosed(this);
    })();
    return this.closing;
  }

  private get closed(): boolean {
    return this.abort.signal.aborted;
  }

  private async *run(): AsyncGenerator<Delivery, void, undefined> {
    try {
      const follow = this.options.follow ?? true;
      const { main, keys } = this.ctx;
      let position = await this.position.catch((err: unknown) => err as Error);
      for (let failures = 1; position instanceof Error; failures++) {
        if (!follow) throw toBusError(position, `read ${this.topic}`);
        // A follower started during an outage waits for the server; "end" then means when it came back.
        if (failures === 1) this.ctx.logger.warn({ err: position, topic: this.topic }, 'cannot start following a topic; retrying');
        await sleep(Math.min(1_000, 50 * 2 ** Math.min(failures, 5)), this.abort.signal);
        if (this.closed) return;
        position = await Promise.all([main.hget(keys.registry, this.topic), main.get(keys.lastId(this.topic))]).then(
          ([partitions, last]) => ({ partitions, last }),
          (err: unknown) => err as Error,
        );
      }
      let n = position.partitions === null ? undefined : Number(position.partitions);
      let start: string;
      let end: string | undefined;
      if (n === undefined) {
        if (!follow) return;
        // The topic does not exist yet: everything it will ever hold comes after we started.
        start = '0-0';
        while (n === undefined && !this.closed) {
          await sleep(this.ctx.config.blockTime, this.abort.signal);
          n = await this.partitions().catch(() => undefined);
        }
        if (n === undefined) return;
      } else {
        const { last } = position;
        start = this.options.from === 'end' ? (last ?? '0-0') : '0-0';
        if (!follow) {
          if (last === null) return;
          end = last;
        }
      }
      const streams = Array.from({ length: n }, (_, p) => keys.stream(this.topic, p));
      const cursors = streams.map(() => start);
      if (follow) {
        // Only gives up when the reader is closed meanwhile.
        const conn = await this.openFollowConnection().catch(() => undefined);
        if (!conn) return;
      }
      let failures = 0;
      let wait = false;
      while (!this.closed) {
        let reply: unknown;
        try {
          const conn = follow ? this.conn! : main;
          if (wait) {
            // Returns as soon as any partition has an entry past its cursor; the reply itself is dropped.
            await conn.call('XREAD', 'COUNT', 1, 'BLOCK', this.ctx.config.blockTime, 'STREAMS', ...streams, ...cursors);
            if (this.closed) return;
          }
          reply = await conn.call('XREAD', 'COUNT', READ_COUNT, 'STREAMS', ...streams, ...cursors);
          failures = 0;
        } catch (err) {
          if (this.closed) return;
          if (!follow) throw toBusError(err, `read ${this.topic}`);
          // A follower outlives outages: retry until the server is back or the reader is closed.
          failures += 1;
          if (failures === 1) this.ctx.logger.warn({ err, topic: this.topic }, 'following a topic failed; retrying');
          await sleep(Math.min(1_000, 50 * 2 ** Math.min(failures, 5)), this.abort.signal);
          continue;
        }
        let batch = merge(reply, streams, cursors);
        wait = follow && batch.length === 0;
        if (end !== undefined) {
          const cut = batch.findIndex((e) => compareIds(e.id, end!) > 0);
          if (cut >= 0) batch = batch.slice(0, cut);
          if (batch.length === 0) return;
        }
        for (const entry of batch) {
          if (this.closed) return;
          let delivery: Delivery;
          try {
            delivery = decodeEntry(this.topic, entry.id, entry.fields, 1);
          } catch (err) {
            this.ctx.logger.warn({ err, topic: this.topic, id: entry.id }, 'skipping an undecodable stream entry');
            continue;
          }
          yield delivery;
        }
      }
    } finally {
      await this.close();
    }
  }

  private async partitions(): Promise<number | undefined> {
    try {
      const n = await this.ctx.main.hget(this.ctx.keys.registry, this.topic);
      return n === null ? undefined : Number(n);
    } catch (err) {
      throw toBusError(err, `read ${this.topic}`);
    }
  }

  private async openFollowConnection(): Promise<RedisConnection> {
    for (let attempt = 1; ; attempt++) {
      const conn = openConnection(this.ctx.config, { role: `reader:${this.topic}`, socketTimeout: this.ctx.config.blockTime + 10_000 }, this.ctx.logger);
      this.conn = conn;
      try {
        await connect(conn, this.ctx.config, this.ctx.config.publishTimeout);
        return conn;
      } catch (err) {
        if (this.closed) throw err;
        if (attempt === 1) this.ctx.logger.warn({ err, topic: this.topic }, 'cannot open a connection to follow a topic; retrying');
        await sleep(1_000, this.abort.signal);
        if (this.closed) throw err;
      }
    }
  }
}

/** Merges one XREAD reply into id order (see the class comment) and advances the per-partition cursors. */
function merge(reply: unknown, streams: readonly string[], cursors: string[]): Positioned[] {
  const byStream = new Map<string, RawEntry[]>(streamsOf(reply));
  let bound: string | undefined;
  for (const entries of byStream.values()) {
    if (entries.length >= READ_COUNT) {
      const last = entries[entries.length - 1]![0];
      if (bound === undefined || compareIds(last, bound) < 0) bound = last;
    }
  }
  const out: Positioned[] = [];
  streams.forEach((stream, partition) => {
    for (const [id, fields] of byStream.get(stream) ?? []) {
      if (bound !== undefined && compareIds(id, bound) > 0) break;
      if (fields) out.push({ partition, id, fields });
    }
  });
  out.sort((a, b) => compareIds(a.id, b.id));
  for (const e of out) cursors[e.partition] = e.id;
  return out;
}
