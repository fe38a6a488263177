import amqp, { type ChannelModel } from 'amqplib';
import { withTimeout } from '../../async.js';
import { BusError, ErrorCodes, isCutoverError, type CutoverError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { RabbitmqBusConfig } from '../../config/bus.js';
import { redactUrl } from '../redact-url.js';
import { busTlsOptions, tlsFailure } from '../../tls.js';
import type { ConnectionOptions } from 'node:tls';

export { redactUrl } from '../redact-url.js';

/** The URL with the configured heartbeat, unless the URL sets one itself (amqplib reads it from the query). */
function withHeartbeat(url: string, heartbeatMs: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(Math.max(1, Math.round(heartbeatMs / 1000))));
  return u.toString();
}

interface AmqpLikeError {
  code?: string | number;
  message?: string;
}

/** AMQP reply codes that mean "the broker refused" (access, arguments, resource limits), not "unreachable". */
const REFUSALS = new Set([403, 404, 405, 406, 530, 540]);

/**
 * Translates what amqplib threw into a BusError callers can match: refusals (access refused, precondition
 * failed, not found) are CUTOVER_BUS_REJECTED, everything else (refused or dropped connections, closed
 * channels, handshake failures) CUTOVER_BUS_UNAVAILABLE. Cutover errors pass through.
 */
export function toBusError(err: unknown, what: string, url: string): CutoverError {
  if (isCutoverError(err)) return err;
  const e = (err ?? {}) as AmqpLikeError;
  const detail = e.message ?? String(err);
  if (typeof e.code === 'number' && REFUSALS.has(e.code)) {
    return new BusError(ErrorCodes.BUS_REJECTED, `${what}: RabbitMQ at ${redactUrl(url)} refused (${detail})`, { cause: err });
  }
  if (/ACCESS_REFUSED|403/.test(detail)) return new BusError(ErrorCodes.BUS_REJECTED, `${what}: RabbitMQ at ${redactUrl(url)} refused the credentials (${detail})`, { cause: err });
  return new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what}: RabbitMQ at ${redactUrl(url)} unreachable (${detail})`, { cause: err, retriable: true });
}

/**
 * One AMQP connection that is opened on demand and opened again after it was lost. `get()` returns the
 * live connection or connects (bounded); callers learn of a loss through `onLost` and by the epoch number
 * changing, so state tied to a connection (channels, consumers, exclusive queues) is rebuilt, not reused.
 */
export class RabbitConnection {
  private model: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private closed = false;
  /** Bumped on every new connection. */
  epoch = 0;
  private readonly lostListeners = new Set<(err: unknown) => void>();

  /** TLS socket options of an amqps:// URL, read once (certificate files are checked at construction). */
  private readonly tls: ConnectionOptions | undefined;

  constructor(
    private readonly config: RabbitmqBusConfig,
    private readonly name: string,
    private readonly log: Logger,
  ) {
    this.tls = config.url.startsWith('amqps://') ? busTlsOptions(config.tls ?? true, 'bus.tls') : undefined;
  }

  get connected(): boolean {
    return this.model !== undefined;
  }

  onLost(listener: (err: unknown) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** The live connection, or a new one within `timeoutMs` (CUTOVER_BUS_UNAVAILABLE otherwise). */
  get(timeoutMs = this.config.connectionTimeout): Promise<ChannelModel> {
    if (this.closed) return Promise.reject(new BusError(ErrorCodes.BUS_CLOSED, 'the bus is closed'));
    if (this.model) return Promise.resolve(this.model);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    // Unreachable rather than a timeout, as on Kafka: a broker that accepts TCP but never completes the AMQP
    // handshake is as good as down. amqplib's own socket timeout ends the attempt itself.
    return withTimeout(this.connecting, timeoutMs, () => new BusError(ErrorCodes.BUS_UNAVAILABLE, `connect: RabbitMQ at ${redactUrl(this.config.url)} unreachable (gave up after ${timeoutMs} ms)`, { retriable: true }));
  }

  private async open(): Promise<ChannelModel> {
    const { config } = this;
    let model: ChannelModel;
    try {
      model = await amqp.connect(withHeartbeat(config.url, config.heartbeat), { timeout: config.connectionTimeout, clientProperties: { connection_name: this.name }, ...this.tls });
    } catch (err) {
      // A failed handshake does not heal by retrying: the certificates or the settings must change.
      const tls = this.tls ? tlsFailure(err) : undefined;
      if (tls) throw new BusError(ErrorCodes.BUS_MISCONFIGURED, `TLS handshake with RabbitMQ at ${redactUrl(config.url)} failed (${tls}); check bus.tls (caFile, certFile, keyFile, servername)`, { cause: err });
      throw toBusError(err, 'connect', config.url);
    }
    if (this.closed) {
      await model.close().catch(() => undefined);
      throw new BusError(ErrorCodes.BUS_CLOSED, 'the bus is closed');
    }
    // 'error' always comes with a 'close'; listening keeps an unhandled 'error' from crashing the process.
    model.on('error', (err: Error) => this.log.debug({ err }, 'rabbitmq connection error'));
    model.on('close', (err?: Error) => {
      if (this.model !== model) return;
      this.model = undefined;
      if (!this.closed) this.log.warn({ err }, 'rabbitmq connection lost; reconnecting on next use');
      for (const l of this.lostListeners) l(err);
    });
    model.on('blocked', (reason: string) => this.log.warn({ reason }, 'rabbitmq blocked publishing on this connection (resource alarm)'));
    this.model = model;
    this.epoch += 1;
    return model;
  }

  /** Closes the connection (bounded) and refuses new ones. Idempotent. */
  async close(timeoutMs = 2_000): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    const model = this.model;
    this.model = undefined;
    if (model) {
      await withTimeout(model.close(), timeoutMs, () => new Error('close timed out')).catch(() => undefined);
      // A close that timed out leaves the socket: end it so the process can exit.
      (model.connection as unknown as { stream?: { destroy?: () => void } }).stream?.destroy?.();
    }
    for (const l of this.lostListeners) l(new BusError(ErrorCodes.BUS_CLOSED, 'the bus is closed'));
    this.lostListeners.clear();
  }
}
