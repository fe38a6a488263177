import net from 'node:net';
import tls from 'node:tls';
import { Kafka, logLevel, type ISocketFactory, type LogEntry, type RetryOptions, type SASLOptions } from 'kafkajs';
import type { Logger } from '../../logger.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import { busTlsOptions } from '../../tls.js';

/** Same keep-alive kafkajs's own socket factory sets, so swapping in `options.connect` changes nothing else. */
const KEEP_ALIVE_MS = 60_000;

/**
 * kafkajs logs every failed response at error level before handing the error to the caller. A CreateTopics
 * response fails with "Topic creation errors" whenever the topic already exists, which ensureTopic() does
 * on purpose (create on demand, idempotently), and kafkajs then swallows TOPIC_ALREADY_EXISTS. Any other
 * creation error still rejects ensureTopic() and is reported by whoever called it, so this line says
 * nothing the caller does not: debug.
 */
function isExpectedError(namespace: string, message: string, extra: Record<string, unknown>): boolean {
  return namespace === 'Connection' && message.startsWith('Response CreateTopics') && extra.error === 'Topic creation errors';
}

/**
 * kafkajs logs each failed connection attempt of its internal retries at error level: dozens of lines a
 * second while a broker is down. The adapter turns the outcome into one typed error (CUTOVER_BUS_UNAVAILABLE)
 * that its caller reports once (the sidecar: "bus unreachable ... retrying"), so the attempts are debug.
 */
function isConnectionAttempt(namespace: string, message: string): boolean {
  return (
    (namespace === 'Connection' && message.startsWith('Connection error')) ||
    (namespace === 'BrokerPool' && message.startsWith('Failed to connect to seed broker')) ||
    // A broker that accepts connections but never answers: each attempt ends in a timed-out handshake.
    (namespace === 'BrokerPool' && /^Request ApiVersions\b.* timed out/.test(message))
  );
}

/** Maps kafkajs log entries onto the injected pino logger (kafkajs would otherwise print to the console). */
export function kafkaLogCreator(logger: Logger): () => (entry: LogEntry) => void {
  return () =>
    ({ namespace, level, log }) => {
      // kafkajs puts the message and its own timestamp beside the structured fields.
      const { message, timestamp: _timestamp, ...extra } = log;
      const fields = { kafkajs: namespace, ...extra };
      switch (level) {
        case logLevel.ERROR:
          if (isExpectedError(namespace, message, extra)) logger.debug(fields, message);
          else if (isConnectionAttempt(namespace, message)) logger.debug(fields, message);
          else logger.error(fields, message);
          break;
        case logLevel.WARN:
          logger.warn(fields, message);
          break;
        case logLevel.INFO:
          logger.info(fields, message);
          break;
        default:
          logger.debug(fields, message);
      }
    };
}

/** The kafkajs level matching the logger's, so kafkajs does not even format lines pino would drop. */
function kafkaLevel(logger: Logger): logLevel {
  if (logger.isLevelEnabled('debug')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('info')) return logLevel.INFO;
  if (logger.isLevelEnabled('warn')) return logLevel.WARN;
  if (logger.isLevelEnabled('error')) return logLevel.ERROR;
  return logLevel.NOTHING;
}

/**
 * Every socket one kafkajs client opened, so closing it can end them all. kafkajs keeps connecting inside
 * its own retries after a caller gave up on it (a broker that accepts TCP but never answers holds each
 * attempt for a whole request timeout), and `disconnect()` does not stop a connect in progress: without
 * this, each failed start would leave its sockets and retry timers behind, and a command that printed its
 * error would never exit. Once closed, the factory refuses new connections, so kafkajs's remaining
 * retries fail at once instead of opening more.
 */
export class KafkaSockets {
  private readonly open = new Set<net.Socket>();
  private closed = false;

  constructor(private readonly connect: (host: string, port: number) => net.Socket = (host, port) => net.connect({ host, port })) {}

  /** Whether {@link destroy} ran. */
  get destroyed(): boolean {
    return this.closed;
  }

  /** The kafkajs socket factory: every connection goes through `connect` and is tracked until it closes. */
  readonly factory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    if (this.closed) throw new Error('the Kafka client is closed');
    const raw = this.track(this.connect(host, port));
    raw.setKeepAlive(true, KEEP_ALIVE_MS);
    // Node sockets start with Nagle's algorithm on: a small request written while an earlier one on the
    // connection is unacknowledged (a commit or heartbeat behind a fetch, the next produce) would wait for
    // the broker's delayed ACK. Kafka's own clients set TCP_NODELAY too.
    raw.setNoDelay(true);
    // kafkajs hands over its `ssl` setting as given: `true` or TLS options when on, falsy when off.
    if (ssl) {
      const tlsOptions = typeof ssl === 'object' ? ssl : {};
      // SNI is the host connected to unless the config names another; never an IP address (RFC 6066).
      return this.track(tls.connect({ ...(net.isIP(host) ? {} : { servername: host }), ...tlsOptions, socket: raw }, onConnect));
    }
    if (!raw.connecting && raw.readyState === 'open') queueMicrotask(onConnect);
    else raw.once('connect', onConnect);
    return raw;
  };

  /** Refuses new connections and destroys the open ones. Idempotent. */
  destroy(): void {
    this.closed = true;
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }

  private track<S extends net.Socket>(socket: S): S {
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    return socket;
  }
}

/**
 * Retries kafkajs makes on its own before an operation fails. Kept short: cutover bounds every publish
 * with its own deadline, and kafkajs's defaults (5 retries, growing to 30 s) would outlive it.
 */
export function clientRetry(config: KafkaBusConfig): RetryOptions {
  return { retries: 3, initialRetryTime: 100, maxRetryTime: Math.max(200, Math.min(1_000, config.publishTimeout / 4)) };
}

/**
 * The producer's own retries: none. kafkajs retries a produce request per broker and keeps the answers of
 * the brokers that succeeded; when a retry finds that a failed broker's partitions moved to one of those
 * (a leader election, a broker restarting), it sends them nowhere and resolves as if they were written: an
 * acknowledged publish that is not on the cluster. The publisher retries the whole batch itself instead
 * (publisher.ts), until the publish deadline: at worst a duplicate, never a loss.
 */
export function produceRetry(config: KafkaBusConfig): RetryOptions {
  return { ...clientRetry(config), retries: 0 };
}

/**
 * Makes a kafkajs client with sockets of its own: a producer or admin that is replaced ends its own
 * connections without touching the others'. `sockets` may be absent for a client that opens none (tests).
 */
export type KafkaFactory = () => { client: Kafka; sockets?: KafkaSockets };

/**
 * The TLS options of `bus.ssl`, files read and checked now (CUTOVER_CONFIG_INVALID naming the field when
 * one is unreadable); undefined when TLS is off. Logs a warning when verification is off.
 */
export function kafkaTlsOptions(config: KafkaBusConfig, logger: Logger): tls.ConnectionOptions | undefined {
  const options = busTlsOptions(config.ssl, 'bus.ssl');
  if (options?.rejectUnauthorized === false) {
    logger.warn({ brokers: config.brokers }, 'bus.ssl.rejectUnauthorized is false: the brokers\' certificates are NOT verified, anyone on the path can pose as a broker; give bus.ssl.caFile instead');
  }
  return options;
}

/** A kafkajs client whose every connection goes through `sockets`; `ssl` from {@link kafkaTlsOptions}. */
export function createKafkaClient(config: KafkaBusConfig, logger: Logger, sockets: KafkaSockets, ssl: tls.ConnectionOptions | undefined): Kafka {
  return new Kafka({
    clientId: config.clientId,
    brokers: config.brokers,
    connectionTimeout: config.connectionTimeout,
    // kafkajs's default is 10 s; a SASL handshake is a few round trips, bounded like connecting.
    authenticationTimeout: config.connectionTimeout * 2,
    // A request outliving the publish deadline is useless to the caller, who has been told it failed.
    requestTimeout: Math.max(config.publishTimeout, 1_000),
    enforceRequestTimeout: true,
    retry: clientRetry(config),
    // kafkajs passes this to the socket factory as given; `{}` (ssl: true) means Node's CAs.
    ssl: ssl ?? false,
    // The config schema restricts the mechanism to the three kafkajs supports with username/password.
    ...(config.sasl ? { sasl: config.sasl as SASLOptions } : {}),
    socketFactory: sockets.factory,
    logLevel: kafkaLevel(logger),
    logCreator: kafkaLogCreator(logger),
  });
}
