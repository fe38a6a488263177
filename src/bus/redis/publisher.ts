import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RedisBusConfig } from '../../config/bus.js';
import { toBusError, type RedisConnection } from './connection.js';
import type { EncodedMessage } from './entries.js';
import { compareIds, partitionOf, type RedisKeys } from './keys.js';

/** Upper bounds on one script call, so that a burst of coalesced calls does not stall Redis for long. */
const MAX_MESSAGES_PER_CALL = 1_000;
const MAX_BYTES_PER_CALL = 4 * 1024 * 1024;

interface PendingCall {
  topic: string;
  messages: EncodedMessage[];
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Appends messages to topics. Calls made in the same turn of the event loop are coalesced: per topic, one
 * PUBLISH script call carries the messages of many publish calls (in call order, so per-key order holds
 * across calls too). The script is atomic, so a batch is in Redis entirely or not at all.
 *
 * Each call is bounded by `publishTimeout`. A call that timed out may still be applied afterwards (its
 * script was already on the wire); its caller sees CUTOVER_BUS_TIMEOUT, and a retry then duplicates the
 * batch. That is the one duplicate this design allows (at-least-once). The converse cannot happen: a call
 * resolves only on the script's reply, so a resolved publish is in Redis. No command is ever re-sent by the
 * client (see connection.ts), so nothing runs twice behind the caller's back.
 */
export class Publisher {
  private queue: PendingCall[] = [];
  private scheduled = false;
  private closed = false;
  private readonly partitionCounts = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private nextUnkeyed = 0;
  /** Per topic, the highest entry id this process acknowledged to a caller. */
  private readonly lastAcknowledged = new Map<string, string>();

  constructor(
    private readonly conn: RedisConnection,
    private readonly config: RedisBusConfig,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
  ) {}

  /** The partition count of a topic as last seen in Redis, if known. */
  partitionsOf(topic: string): number | undefined {
    return this.partitionCounts.get(topic);
  }

  rememberPartitions(topic: string, partitions: number): void {
    this.partitionCounts.set(topic, partitions);
  }

  /** Queues already-validated messages for `topic`; resolves once Redis holds all of them. */
  send(topic: string, messages: EncodedMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new BusError(ErrorCodes.BUS_CLOSED, 'the bus is closed'));
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const m of messages) bytes += m.event.length + m.headers.length + (m.key?.length ?? 0);
      const call: PendingCall = { topic, messages, bytes, resolve, reject, settled: false, timer: undefined };
      call.timer = setTimeout(() => {
        this.settle(call, new BusError(ErrorCodes.BUS_TIMEOUT, `publish to ${topic} was not confirmed by Redis within ${this.config.publishTimeout} ms (it may still be applied)`, { retriable: true }));
      }, this.config.publishTimeout);
      this.queue.push(call);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Refuses new calls and fails the queued ones; waits (bounded) for script calls already sent. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    const queued = this.queue;
    this.queue = [];
    for (const call of queued) this.settle(call, new BusError(ErrorCodes.BUS_CLOSED, 'the bus closed before this publish was sent'));
    if (this.inFlight.size > 0) {
      await withTimeout(Promise.allSettled([...this.inFlight]), timeoutMs, () => new Error('in-flight publishes did not settle')).catch(() => undefined);
    }
  }

  private flush(): void {
    this.scheduled = false;
    const calls = this.queue.filter((c) => !c.settled);
    this.queue = [];
    const byTopic = new Map<string, PendingCall[]>();
    for (const call of calls) {
      const list = byTopic.get(call.topic);
      if (list) list.push(call);
      else byTopic.set(call.topic, [call]);
    }
    for (const [topic, list] of byTopic) {
      let chunk: PendingCall[] = [];
      let count = 0;
      let bytes = 0;
      for (const call of list) {
        if (chunk.length > 0 && (count + call.messages.length > MAX_MESSAGES_PER_CALL || bytes + call.bytes > MAX_BYTES_PER_CALL)) {
          this.track(this.sendChunk(topic, chunk));
          chunk = [];
          count = 0;
          bytes = 0;
        }
        chunk.push(call);
        count += call.messages.length;
        bytes += call.bytes;
      }
      if (chunk.length > 0) this.track(this.sendChunk(topic, chunk));
    }
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async sendChunk(topic: string, calls: PendingCall[]): Promise<void> {
    const messages = calls.length === 1 ? calls[0]!.messages : calls.flatMap((c) => c.messages);
    try {
      const id = await this.append(topic, messages, false);
      // Acknowledged to a caller only if one still waited (a call that timed out was told it failed).
      let told = false;
      for (const call of calls) told = this.settle(call) || told;
      if (told) this.acknowledged(topic, id);
    } catch (err) {
      const error = toBusError(err, `publish to ${topic}`);
      this.logger.debug({ err: error, topic, messages: messages.length }, 'publish failed');
      for (const call of calls) this.settle(call, error);
    }
  }

  /** Appends one batch (one script call); resolves with the batch's last id once Redis (and `waitReplicas` replicas) hold it. */
  private async append(topic: string, messages: EncodedMessage[], retried: boolean): Promise<string> {
    const n = this.partitionCounts.get(topic) ?? this.config.partitions;
    const keys: string[] = [this.keys.registry, this.keys.lastId(topic)];
    for (let p = 0; p < n; p++) keys.push(this.keys.stream(topic, p));
    const args: Array<string | number> = [topic, n, this.config.maxLen];
    for (const m of messages) {
      const partition = m.key === null ? this.nextUnkeyed++ % n : partitionOf(m.key, n);
      args.push(partition, m.key === null ? '0' : '1', m.key ?? '', m.event, m.headers);
    }
    try {
      const [id, before] = await this.conn.cutoverPublish(keys.length, ...keys, ...args);
      this.partitionCounts.set(topic, n);
      this.checkContinuity(topic, before);
      await this.waitForReplicas(topic);
      return id;
    } catch (err) {
      // The topic already exists with another partition count (made by an installation configured
      // differently): hash with the count Redis recorded, so one key still maps to one stream.
      const actual = /CUTOVER_PARTITIONS (\d+)/.exec((err as Error)?.message ?? '');
      if (actual && !retried) {
        this.partitionCounts.set(topic, Number(actual[1]));
        return this.append(topic, messages, true);
      }
      throw err;
    }
  }

  /**
   * Entries this process acknowledged are gone when the topic's last id, as the script found it before a
   * batch, is below the last id acknowledged here: ids only grow (every publisher takes them from one
   * counter per topic, and batches on this connection run in order), so a smaller one means Redis lost the
   * topic's newest entries. That is what a failover to a replica that had not received them does (without
   * `waitReplicas`, or a replica that restarted empty, see docs/production-topology.md), as does a topic
   * deleted by hand. Logged as an error once per loss, naming the topic and both ids; publishing goes on.
   */
  private checkContinuity(topic: string, before: string): void {
    const mine = this.lastAcknowledged.get(topic);
    // '': the topic held nothing at all.
    if (mine === undefined || (before !== '' && compareIds(before, mine) >= 0)) return;
    this.lastAcknowledged.delete(topic);
    this.logger.error(
      { code: ErrorCodes.BUS_DATA_LOST, topic, acknowledgedUpTo: mine, foundUpTo: before || 'nothing' },
      `topic ${topic} lost entries this process had acknowledged: its last id is ${before || 'gone (the topic is empty)'}, below ${mine} acknowledged earlier (a failover to a replica without them, or the topic deleted)`,
    );
  }

  private acknowledged(topic: string, id: string): void {
    const mine = this.lastAcknowledged.get(topic);
    if (mine === undefined || compareIds(id, mine) > 0) this.lastAcknowledged.set(topic, id);
  }

  /**
   * With `waitReplicas`, holds the publish until that many replicas have the batch (WAIT on the connection
   * that wrote it). Redis replicates asynchronously: a primary that dies before its replicas have a write
   * takes it along, and the replica promoted in its place never had it. A batch the replicas did not
   * confirm in `waitTimeout` fails the publish (it is on the primary, so a retry may duplicate it), which
   * shows that window instead of hiding it.
   */
  private async waitForReplicas(topic: string): Promise<void> {
    const { waitReplicas, waitTimeout } = this.config;
    if (waitReplicas === 0) return;
    const acked = await this.conn.wait(waitReplicas, waitTimeout);
    if (acked < waitReplicas) {
      throw new BusError(
        ErrorCodes.BUS_TIMEOUT,
        `publish to ${topic}: the primary has it, but ${acked} of the ${waitReplicas} replicas asked for (bus.waitReplicas) confirmed it within ${waitTimeout} ms; a failover now could lose it`,
        { retriable: true, details: { replicas: acked, waitReplicas } },
      );
    }
  }

  /** Settles a call once; true when this settled it (false when it had timed out already). */
  private settle(call: PendingCall, error?: Error): boolean {
    if (call.settled) return false;
    call.settled = true;
    clearTimeout(call.timer);
    if (error) call.reject(error);
    else call.resolve();
    return true;
  }
}

