import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { isUnreachable, timeoutError, toBusError } from './errors.js';

/** What kafkajs producers and admins have in common. */
export interface Connectable {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}

interface Handle<C> {
  client: C;
  /** Ends whatever the client still holds (its sockets), once it is disconnected or given up on. */
  release: () => void;
  /** Never connected: nothing to say goodbye to, only sockets to end. */
  failed: boolean;
  /** Connected (the connect promise resolved). */
  ready: boolean;
  connected: Promise<C>;
  inflight: Set<Promise<unknown>>;
}

export interface ClientHandleOptions<C> {
  /** Makes a fresh, unconnected client, and what ends every socket it will open. */
  create: () => { client: C; release: () => void };
  /** Upper bound on connecting. */
  connectTimeout: number;
  /** Upper bound on waiting for abandoned calls before disconnecting a retired client. */
  retireTimeout: number;
  /** Names the client in errors and logs (`producer`, `admin`). */
  what: string;
  brokers: readonly string[];
  logger: Logger;
  /** Whether a failed call leaves the client unusable (default: when Kafka was unreachable or slow). */
  discardOn?: (err: unknown) => boolean;
}

/**
 * One kafkajs client that is replaced instead of repaired. After a broker outage a kafkajs producer can
 * stay wedged, so a call that fails because Kafka was unreachable or slow retires the client and the next
 * call connects a new one.
 * A retired client is disconnected once its abandoned calls settle: kafkajs reconnects on its own inside
 * retries, so disconnecting earlier could leave a socket open behind our back.
 */
export class ClientHandle<C extends Connectable> {
  private current: Handle<C> | undefined;
  private readonly retiring = new Set<Promise<void>>();
  private closed = false;
  private lastUnreachableAt = 0;

  constructor(private readonly options: ClientHandleOptions<C>) {}

  /** Whether Kafka looked unreachable within the last `windowMs`. */
  recentlyUnreachable(windowMs: number): boolean {
    return Date.now() - this.lastUnreachableAt <= windowMs;
  }

  /** Connects now (bounded); used by `start()` to fail fast. */
  async connect(): Promise<void> {
    await this.handle().connected;
  }

  /**
   * Runs `fn` against a connected client, rejecting with a BusError after `timeoutMs` at most (connecting
   * included). `what` describes the operation for error messages.
   */
  async run<T>(what: string, timeoutMs: number, fn: (client: C) => Promise<T>): Promise<T> {
    if (this.closed) throw new BusError(ErrorCodes.BUS_CLOSED, `${what}: the Kafka ${this.options.what} is closed`);
    const handle = this.handle();
    const work = handle.connected.then(fn);
    handle.inflight.add(work);
    const forget = (): void => {
      handle.inflight.delete(work);
    };
    work.then(forget, forget);
    try {
      return await withTimeout(work, timeoutMs, () => timeoutError(what, timeoutMs, this.recentlyUnreachable(timeoutMs), this.options.brokers));
    } catch (err) {
      if (isUnreachable(err)) this.lastUnreachableAt = Date.now();
      const discard = this.options.discardOn ?? ((e: unknown) => isUnreachable(e) || isTimeout(e));
      if (discard(err)) this.retire(handle, err);
      throw toBusError(err, what, this.options.brokers);
    }
  }

  /** Drops the current client (if it is still `handle`) so the next call connects a fresh one. */
  private retire(handle: Handle<C>, reason: unknown): void {
    if (this.current !== handle) return;
    this.current = undefined;
    this.options.logger.debug({ err: reason, client: this.options.what }, 'retiring kafka client after a failure; the next call connects a new one');
    const done = this.disconnect(handle).finally(() => this.retiring.delete(done));
    this.retiring.add(done);
  }

  private async disconnect(handle: Handle<C>): Promise<void> {
    if (handle.failed) handle.release();
    const settle = Promise.allSettled([handle.connected, ...handle.inflight]);
    await withTimeout(settle, this.options.retireTimeout, () => new Error('retire timeout')).catch(() => undefined);
    await withTimeout(handle.client.disconnect(), this.options.retireTimeout, () => new Error('disconnect timeout')).catch((err: unknown) => {
      this.options.logger.debug({ err, client: this.options.what }, 'kafka client did not disconnect cleanly');
    });
    // disconnect() does not stop a connect still retrying inside kafkajs: its sockets end here.
    handle.release();
  }

  private handle(): Handle<C> {
    if (this.current) return this.current;
    const { client, release } = this.options.create();
    const handle: Handle<C> = { client, release, failed: false, ready: false, connected: Promise.resolve(client), inflight: new Set() };
    handle.connected = withTimeout(client.connect(), this.options.connectTimeout, () =>
      timeoutError(`${this.options.what} connect`, this.options.connectTimeout, true, this.options.brokers),
    ).then(
      () => {
        handle.ready = true;
        return client;
      },
      (err: unknown) => {
        this.lastUnreachableAt = Date.now();
        handle.failed = true;
        this.retire(handle, err);
        throw toBusError(err, `${this.options.what} connect`, this.options.brokers);
      },
    );
    // Callers await `connected` through run(); this keeps an unawaited failure from being reported as unhandled.
    handle.connected.catch(() => undefined);
    this.current = handle;
    return handle;
  }

  /** Disconnects the current client and waits (bounded) for retired ones. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const handle = this.current;
    this.current = undefined;
    if (handle) {
      // Still connecting: nothing to say goodbye to, and a silent broker would hold close() for the whole
      // connect timeout. Ending its sockets makes the connect fail now.
      if (!handle.ready) handle.release();
      const done = this.disconnect(handle);
      this.retiring.add(done);
    }
    await Promise.allSettled([...this.retiring]);
  }
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === ErrorCodes.BUS_TIMEOUT;
}
