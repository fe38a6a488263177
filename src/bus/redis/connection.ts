import { withTimeout } from '../../async.js';
import { Redis, type RedisOptions } from 'ioredis';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RedisBusConfig } from '../../config/bus.js';
import { busTlsOptions, tlsFailure } from '../../tls.js';
import type { ConnectionOptions } from 'node:tls';
import { CLAIM_LUA, HEARTBEAT_LUA, PUBLISH_LUA, RELEASE_LUA } from './scripts.js';

/**
 * An ioredis connection with the adapter's scripts defined on it. ioredis types stay inside src/bus/redis.
 *
 * Every connection is configured so that no command can run later than the caller believes:
 * - `enableOfflineQueue: false`: a command issued while disconnected fails at once instead of waiting in a
 *   queue to run after the reconnect (possibly long after its publish call timed out and was retried);
 * - `autoResendUnfulfilledCommands: false` and `maxRetriesPerRequest: 0`: commands in flight when the
 *   socket drops are rejected, never re-sent on the new connection. A command Redis received before the
 *   drop may still have run: its caller sees an error and may retry, which duplicates (at-least-once), but
 *   nothing we reported as failed is silently applied twice by the client itself;
 * - `socketTimeout`: a half-open socket (no FIN, no data) is destroyed instead of stalling forever;
 * - RESP2 (`protocol: 2`), so stream replies have the well-known nested-array shapes parsed in entries.ts;
 * - reconnects forever with a capped delay, so one Bus instance recovers when the server is back.
 */
export type RedisConnection = Redis & {
  /** [the batch's last id, the topic's last id before it or ''] */
  cutoverPublish(numKeys: number, ...args: Array<string | number>): Promise<[string, string]>;
  cutoverHeartbeat(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  cutoverClaim(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
  cutoverRelease(numKeys: number, ...args: Array<string | number>): Promise<number>;
  /** The last error the connection emitted: ioredis rejects connect() with "Connection is closed" and reports why (a TLS alert, say) only there. */
  cutoverLastError?: Error;
};

export interface ConnectionSettings {
  role: string;
  /** Extra milliseconds of silence tolerated while a command is pending (blocking reads add their BLOCK). */
  socketTimeout: number;
}

/**
 * Upper bound on connecting (TCP, then the ready check). A server that accepts connections and never
 * answers must fail a start within seconds, whatever publishTimeout says.
 */
const MAX_CONNECT_MS = 10_000;

const tlsOptionsOf = new WeakMap<RedisBusConfig, ConnectionOptions | undefined>();

/**
 * The TLS options of `bus.tls` (files read and checked on the first call for a config, which the adapter
 * makes when it is created: CUTOVER_CONFIG_INVALID naming the field when one is unreadable), or undefined
 * when TLS is off. A `rediss://` URL turns TLS on with Node's CAs even when `tls` is false.
 */
export function redisTlsOptions(config: RedisBusConfig): ConnectionOptions | undefined {
  if (!tlsOptionsOf.has(config)) {
    const options = busTlsOptions(config.tls, 'bus.tls') ?? (config.url.startsWith('rediss:') ? {} : undefined);
    tlsOptionsOf.set(config, options);
  }
  return tlsOptionsOf.get(config);
}

/**
 * The Sentinel part of the ioredis options (empty without `bus.sentinels`). ioredis asks the sentinels for
 * the primary of `name`, checks that the server it reaches is a primary, and asks again on every reconnect.
 * A primary that dies closes its connections (or goes silent: `socketTimeout`); one demoted while alive
 * answers writes with READONLY, which reconnects (`reconnectOnError` below).
 *
 * ioredis's failover detector (`failoverDetector`) stays off: when the sentinels announce the new primary
 * while a reconnect is asking them where it is, the detector aborts that reconnect and ioredis ends the
 * connection for good ("Connection is closed." on every later command). Seen in the failover suite: a
 * sidecar that never published again after a Sentinel failover.
 */
export function sentinelOptions(config: RedisBusConfig): RedisOptions {
  if (!config.sentinels) return {};
  const sentinelTls = busTlsOptions(config.sentinelTls, 'bus.sentinelTls');
  return {
    sentinels: config.sentinels.map((s) => ({ host: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) })),
    name: config.name,
    role: 'master',
    sentinelRetryStrategy: (times) => Math.min(100 * times, 1_000),
    // TLS to the primary (bus.tls) needs this flag in Sentinel mode.
    ...(redisTlsOptions(config) ? { enableTLSForSentinelMode: true } : {}),
    ...(sentinelTls ? { sentinelTLS: sentinelTls } : {}),
    ...(config.sentinelPassword ? { sentinelPassword: config.sentinelPassword } : {}),
  };
}

/** Where the bus connects, for messages: the URL without its password, or the sentinels and the primary's name. */
export function redisTarget(config: RedisBusConfig): string {
  return config.sentinels ? `primary "${config.name}" of sentinels ${config.sentinels.join(',')}` : redactUrl(config.url);
}

export function openConnection(config: RedisBusConfig, settings: ConnectionSettings, logger: Logger): RedisConnection {
  const tls = redisTlsOptions(config);
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    enableReadyCheck: true,
    protocol: 2,
    disableClientInfo: true,
    connectionName: `cutover:${settings.role}`,
    connectTimeout: Math.max(1_000, Math.min(config.publishTimeout, MAX_CONNECT_MS)),
    socketTimeout: settings.socketTimeout,
    retryStrategy: (times) => Math.min(100 * times, 1_000),
    ...(tls ? { tls } : {}),
    ...sentinelOptions(config),
    // A primary demoted by a failover answers writes with READONLY: reconnect (through the sentinels, to
    // the new primary) without re-sending the command, which its caller sees fail and may retry.
    reconnectOnError: (err) => (/^READONLY/.test(err.message) ? 1 : false),
  };
  const conn = new Redis(config.url, options) as RedisConnection;
  conn.defineCommand('cutoverPublish', { lua: PUBLISH_LUA });
  conn.defineCommand('cutoverHeartbeat', { lua: HEARTBEAT_LUA });
  conn.defineCommand('cutoverClaim', { lua: CLAIM_LUA });
  conn.defineCommand('cutoverRelease', { lua: RELEASE_LUA });

  // One warn when a working connection drops and one info when it is back; the per-attempt errors of a
  // reconnect loop go to debug so that an outage does not flood the log.
  let wasReady = false;
  conn.on('error', (err: Error) => {
    conn.cutoverLastError = err;
    logger.debug({ err, role: settings.role }, 'redis connection error');
  });
  conn.on('ready', () => {
    if (wasReady) logger.info({ role: settings.role }, 'redis connection restored');
    wasReady = true;
  });
  conn.on('close', () => {
    if (wasReady && conn.status !== 'end') logger.warn({ role: settings.role }, 'redis connection lost; reconnecting');
  });
  return conn;
}

/** Connects within `timeoutMs` (at most 10 s); on failure stops the reconnect loop and throws CUTOVER_BUS_UNAVAILABLE. */
export async function connect(conn: RedisConnection, config: RedisBusConfig, requestedMs: number): Promise<void> {
  const timeoutMs = Math.min(requestedMs, MAX_CONNECT_MS);
  try {
    await withTimeout(conn.connect(), timeoutMs, () => new BusError(ErrorCodes.BUS_UNAVAILABLE, `Redis (${redisTarget(config)}) did not answer within ${timeoutMs} ms`, { retriable: true }));
  } catch (err) {
    conn.disconnect();
    if (err instanceof BusError) throw err;
    const tls = tlsFailure(err) ?? tlsFailure(conn.cutoverLastError);
    if (tls !== undefined) throw tlsError(config, tls, conn.cutoverLastError ?? err);
    throw new BusError(ErrorCodes.BUS_UNAVAILABLE, `cannot connect to Redis (${redisTarget(config)}): ${(err as Error).message}`, { cause: err, retriable: true });
  }
}

/** A failed TLS handshake: not retriable, the certificates or `bus.tls` must change. */
function tlsError(config: RedisBusConfig, reason: string, cause: unknown): BusError {
  return new BusError(
    ErrorCodes.BUS_MISCONFIGURED,
    `TLS handshake with Redis (${redisTarget(config)}) failed (${reason}); check bus.tls: caFile must hold the CA that signed the server's certificate, and certFile/keyFile a client certificate it accepts when it requires one`,
    { cause },
  );
}

/** Closes gracefully (QUIT) when possible, within a bound; always ends with the socket destroyed. */
export async function disconnect(conn: RedisConnection, timeoutMs = 1_000): Promise<void> {
  if (conn.status === 'end') return;
  if (conn.status === 'ready') {
    await withTimeout(conn.quit(), timeoutMs, () => new Error('quit timed out')).catch(() => undefined);
  }
  conn.disconnect();
}

const CONNECTION_ERRORS = /Stream isn't writeable|Connection is closed|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|Socket timeout|Command aborted due to connection close/i;
const TRANSIENT_REPLIES = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|OOM|CLUSTERDOWN|READONLY)/;

/** Maps what ioredis throws onto the bus error codes. */
export function toBusError(err: unknown, what: string): BusError {
  if (err instanceof BusError) return err;
  const e = err as { name?: string; message?: string };
  const message = e?.message ?? String(err);
  if (e?.name === 'MaxRetriesPerRequestError' || CONNECTION_ERRORS.test(message)) {
    return new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what}: Redis is unavailable (${message})`, { cause: err, retriable: true });
  }
  if (/Command timed out/i.test(message)) {
    return new BusError(ErrorCodes.BUS_TIMEOUT, `${what}: Redis did not answer in time`, { cause: err, retriable: true });
  }
  return new BusError(ErrorCodes.BUS_REJECTED, `${what}: Redis refused: ${message}`, { cause: err, retriable: TRANSIENT_REPLIES.test(message) });
}

import { redactUrl } from '../redact-url.js';

export { redactUrl };

/**
 * Decides from the reply to `CONFIG GET maxmemory-policy` whether the server may evict keys. Returns the
 * problem in words, or undefined when the policy is noeviction. Any other policy lets Redis drop whole
 * streams under memory pressure: silent message loss.
 */
export function evictionPolicyProblem(reply: unknown): string | undefined {
  const policy = Array.isArray(reply) && reply.length >= 2 ? String(reply[1]) : undefined;
  if (policy === undefined) return 'CONFIG GET maxmemory-policy returned nothing, so the eviction policy is unknown';
  if (policy === 'noeviction') return undefined;
  return `Redis maxmemory-policy is "${policy}": under memory pressure Redis may evict streams and silently lose messages. Set maxmemory-policy noeviction (or bus.requireNoEviction: false to accept the risk)`;
}
