import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { Redis } from 'ioredis';
import { BusError, ErrorCodes } from '../../errors.js';
import type { ClaimResult, DedupeStore } from './types.js';

/** Deletes the lease only while it is still ours: a lease that expired may belong to someone else now. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Dedupe records as Redis keys: `SET key lease NX PX` takes a lease, `SET key done PX ttl` marks the
 * event handled. Shared by every consumer that reaches the same Redis.
 */
export class RedisDedupeStore implements DedupeStore {
  readonly kind = 'redis';
  private client: Redis | undefined;
  private readonly owner = 'lease:' + randomUUID();

  constructor(
    private readonly url: string,
    private readonly prefix = 'cutover:dedupe:',
    /** TLS options (the bus's `tls`), or undefined for what the URL says (`rediss://` is TLS with Node's CAs). */
    private readonly tls?: ConnectionOptions,
  ) {}

  async start(): Promise<void> {
    if (this.client) return;
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true, connectTimeout: 3_000, ...(this.tls ? { tls: this.tls } : {}) });
    // Connection errors surface through commands; the client's own event would otherwise crash the process.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
    } catch (err) {
      client.disconnect();
      throw unavailable(this.url, err);
    }
    this.client = client;
  }

  async claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult> {
    const c = this.redis();
    const key = this.key(scope, id);
    try {
      for (let i = 0; i < 2; i++) {
        const set = await c.set(key, this.owner, 'PX', Math.max(1, Math.round(leaseMs)), 'NX');
        if (set === 'OK') return 'acquired';
        const value = await c.get(key);
        if (value === 'done') return 'done';
        // null: it expired between the two calls, try once more.
        if (value !== null) return 'busy';
      }
      return 'busy';
    } catch (err) {
      throw unavailable(this.url, err);
    }
  }

  async complete(scope: string, id: string, ttlMs: number): Promise<void> {
    try {
      await this.redis().set(this.key(scope, id), 'done', 'PX', Math.max(1, Math.round(ttlMs)));
    } catch (err) {
      throw unavailable(this.url, err);
    }
  }

  async release(scope: string, id: string): Promise<void> {
    try {
      await this.redis().eval(RELEASE, 1, this.key(scope, id), this.owner);
    } catch (err) {
      throw unavailable(this.url, err);
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.quit().catch(() => c.disconnect());
  }

  private key(scope: string, id: string): string {
    return `${this.prefix}${scope}:${id}`;
  }

  private redis(): Redis {
    if (!this.client) throw new BusError(ErrorCodes.BUS_CLOSED, 'the Redis dedupe store is not started');
    return this.client;
  }
}

function unavailable(url: string, err: unknown): BusError {
  const where = url.replace(/\/\/[^@/]*@/, '//***@');
  return new BusError(ErrorCodes.BUS_UNAVAILABLE, `Redis dedupe store at ${where}: ${(err as Error).message}`, { cause: err, retriable: true });
}
