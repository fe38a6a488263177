import { BusError, ErrorCodes, isCutoverError, type CutoverError } from '../../errors.js';
import { tlsFailure } from '../../tls.js';

/** kafkajs error names that mean "no broker to talk to" rather than "the broker said no". */
const UNREACHABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSGroupCoordinatorNotFound',
]);
const TIMEOUTS = new Set(['KafkaJSRequestTimeoutError', 'KafkaJSTimeout', 'KafkaJSLockTimeout']);
/**
 * Protocol error types meaning the broker is there but not ready (elections, coordinator moves).
 * NOT_LEADER_FOR_PARTITION is kafkajs's name of error 6, NOT_LEADER_OR_FOLLOWER Kafka's own (@platformatic/kafka).
 */
const TRANSIENT_TYPES = new Set(['LEADER_NOT_AVAILABLE', 'NOT_LEADER_FOR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS', 'REQUEST_TIMED_OUT', 'NETWORK_EXCEPTION']);

/**
 * @platformatic/kafka's errors carry a `PLT_KFK_*` code instead of a class name: a network error means no
 * broker to talk to, except a request that timed out on an open connection (`Request timed out`); a
 * protocol error names Kafka's error code in `apiId` and whether a retry can fix it in `canRetry`.
 */
const PLATFORMATIC_NETWORK = 'PLT_KFK_NETWORK';
const PLATFORMATIC_PROTOCOL = 'PLT_KFK_PROTOCOL';

interface KafkaLikeError {
  name?: string;
  type?: string;
  code?: string | number;
  message?: string;
  /** kafkajs protocol errors: whether the broker's error code is one a retry can fix. */
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
  /** Set for @platformatic/kafka errors: what the error means, read from its code and message. */
  reason?: 'unreachable' | 'timeout';
}

/** An @platformatic/kafka error in the terms kafkajs errors give: protocol type, retriable, unreachable or timeout. */
function fromPlatformatic(e: KafkaLikeError & { apiId?: unknown; canRetry?: unknown }): KafkaLikeError {
  if (e.code === PLATFORMATIC_PROTOCOL && typeof e.apiId === 'string') {
    return { ...e, message: e.message, type: e.apiId, ...(typeof e.canRetry === 'boolean' ? { retriable: e.canRetry } : {}) };
  }
  if (e.code === PLATFORMATIC_NETWORK) {
    return { ...e, message: e.message, reason: e.message?.startsWith('Request timed out') ? 'timeout' : 'unreachable' };
  }
  // Authentication, a refused option, a record that does not serialize: a retry cannot fix these.
  if (typeof e.canRetry === 'boolean') return { ...e, message: e.message, retriable: e.canRetry, type: e.code as string };
  return e;
}

/** The error and the errors it wraps (kafkajs nests causes in retry and aggregate errors). */
function chain(err: unknown): KafkaLikeError[] {
  const out: KafkaLikeError[] = [];
  let current: unknown = err;
  while (current && typeof current === 'object' && out.length < 10) {
    const e = current as KafkaLikeError & { errors?: unknown[] };
    out.push(typeof e.code === 'string' && e.code.startsWith('PLT_KFK_') ? fromPlatformatic(e) : e);
    current = e.cause ?? e.originalError ?? (Array.isArray(e.errors) ? e.errors[0] : undefined);
  }
  return out;
}

/** True when `err` says the brokers cannot be reached (as opposed to a refusal or a bug). */
export function isUnreachable(err: unknown): boolean {
  return chain(err).some(
    (e) => (e.name !== undefined && UNREACHABLE.has(e.name)) || e.reason === 'unreachable' || e.code === 'ECONNREFUSED' || (isCutoverError(e) && e.code === ErrorCodes.BUS_UNAVAILABLE),
  );
}

/**
 * Translates whatever kafkajs (or @platformatic/kafka) threw into a BusError with a code callers can match. Errors that already
 * are cutover errors pass through unchanged.
 */
export function toBusError(err: unknown, what: string, brokers: readonly string[]): CutoverError {
  if (isCutoverError(err)) return err;
  const links = chain(err);
  const root = links[links.length - 1] ?? {};
  const detail = root.message ?? String(err);
  // Checked before "unreachable": kafkajs reports a failed handshake as a connection error, but retrying
  // cannot fix a certificate; the settings or the certificates must change.
  const tls = tlsFailure(err);
  if (tls !== undefined) {
    return new BusError(
      ErrorCodes.BUS_MISCONFIGURED,
      `${what}: TLS handshake with Kafka brokers ${brokers.join(',')} failed (${tls}); check bus.ssl: caFile must hold the CA that signed the brokers' certificates, and certFile/keyFile a client certificate they accept when they require one`,
      { cause: err },
    );
  }
  if (isUnreachable(err)) {
    return new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what}: Kafka brokers ${brokers.join(',')} unreachable (${detail})`, { cause: err, retriable: true });
  }
  if (links.some((e) => (e.name !== undefined && TIMEOUTS.has(e.name)) || e.reason === 'timeout' || (e.type !== undefined && TRANSIENT_TYPES.has(e.type)))) {
    return new BusError(ErrorCodes.BUS_TIMEOUT, `${what}: Kafka brokers ${brokers.join(',')} did not answer in time (${detail})`, { cause: err, retriable: true });
  }
  const type = links.find((e) => e.type)?.type;
  if (type === 'INVALID_SESSION_TIMEOUT') {
    return new BusError(
      ErrorCodes.BUS_MISCONFIGURED,
      `${what}: the broker refuses this sessionTimeout; it must lie within the broker's group.min.session.timeout.ms (default 6s) and group.max.session.timeout.ms`,
      { cause: err },
    );
  }
  if (type === 'INVALID_REPLICATION_FACTOR') {
    return new BusError(
      ErrorCodes.BUS_MISCONFIGURED,
      `${what}: the cluster cannot hold the replicas asked for (${detail}): bus.replicationFactor (or the broker's default.replication.factor) exceeds the brokers available; lower it or add brokers`,
      { cause: err },
    );
  }
  if (type === 'INVALID_CONFIG' || type === 'POLICY_VIOLATION') {
    return new BusError(ErrorCodes.BUS_MISCONFIGURED, `${what}: the cluster refused the topic's settings (${detail}); check bus.replicationFactor and bus.minInsyncReplicas`, { cause: err });
  }
  if (type === 'NOT_ENOUGH_REPLICAS' || type === 'NOT_ENOUGH_REPLICAS_AFTER_APPEND') {
    return new BusError(
      ErrorCodes.BUS_UNAVAILABLE,
      `${what}: fewer replicas in sync than the topic's min.insync.replicas, so Kafka did not acknowledge the write (${detail}); it succeeds again once enough brokers are back`,
      { cause: err, retriable: true },
    );
  }
  if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') {
    return new BusError(ErrorCodes.BUS_REJECTED, `${what}: Kafka refused the batch as too large (${detail}); lower maxMessageBytes or raise the topic's max.message.bytes`, { cause: err });
  }
  // A refusal is retried only when the broker's error code says a retry can succeed: an authorization
  // failure, for one, stays a refusal however often the batch is sent again.
  const protocol = links.find((e) => e.type);
  const retriable = root.name !== 'KafkaJSNonRetriableError' && protocol?.retriable !== false;
  return new BusError(ErrorCodes.BUS_REJECTED, `${what}: Kafka refused the request (${type ?? root.name ?? 'error'}: ${detail})`, { cause: err, retriable });
}

export function timeoutError(what: string, ms: number, unreachable: boolean, brokers: readonly string[]): BusError {
  return unreachable
    ? new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what}: Kafka brokers ${brokers.join(',')} unreachable (gave up after ${ms} ms)`, { retriable: true })
    : new BusError(ErrorCodes.BUS_TIMEOUT, `${what}: no answer from Kafka brokers ${brokers.join(',')} within ${ms} ms`, { retriable: true });
}
