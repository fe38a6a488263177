import { BusError, ErrorCodes, isCutoverError, type CutoverError } from '../../errors.js';

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
/** Protocol error types meaning the broker is there but not ready (elections, coordinator moves). */
const TRANSIENT_TYPES = new Set(['LEADER_NOT_AVAILABLE', 'NOT_LEADER_FOR_PARTITION', 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS', 'REQUEST_TIMED_OUT', 'NETWORK_EXCEPTION']);

interface KafkaLikeError {
  name?: string;
  type?: string;
  code?: string | number;
  message?: string;
  cause?: unknown;
  originalError?: unknown;
}

/** The error and the errors it wraps (kafkajs nests causes in retry and aggregate errors). */
function chain(err: unknown): KafkaLikeError[] {
  const out: KafkaLikeError[] = [];
  let current: unknown = err;
  while (current && typeof current === 'object' && out.length < 10) {
    const e = current as KafkaLikeError & { errors?: unknown[] };
    out.push(e);
    current = e.cause ?? e.originalError ?? (Array.isArray(e.errors) ? e.errors[0] : undefined);
  }
  return out;
}

/** True when `err` says the brokers cannot be reached (as opposed to a refusal or a bug). */
export function isUnreachable(err: unknown): boolean {
  return chain(err).some((e) => (e.name !== undefined && UNREACHABLE.has(e.name)) || e.code === 'ECONNREFUSED' || (isCutoverError(e) && e.code === ErrorCodes.BUS_UNAVAILABLE));
}

/**
 * Translates whatever kafkajs threw into a BusError with a code callers can match. Errors that already
 * are cutover errors pass through unchanged.
 */
export function toBusError(err: unknown, what: string, brokers: readonly string[]): CutoverError {
  if (isCutoverError(err)) return err;
  const links = chain(err);
  const root = links[links.length - 1] ?? {};
  const detail = root.message ?? String(err);
  if (isUnreachable(err)) {
    return new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what}: Kafka brokers ${brokers.join(',')} unreachable (${detail})`, { cause: err, retriable: true });
  }
  if (links.some((e) => (e.name !== undefined && TIMEOUTS.has(e.name)) || (e.type !== undefined && TRANSIENT_TYPES.has(e.type)))) {
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
  if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') {
    return new BusError(ErrorCodes.BUS_REJECTED, `${what}: Kafka refused the batch as too large (${detail}); lower maxMessageBytes or raise the topic's max.message.bytes`, { cause: err });
  }
  return new BusError(ErrorCodes.BUS_REJECTED, `${what}: Kafka refused the request (${type ?? root.name ?? 'error'}: ${detail})`, { cause: err, retriable: root.name !== 'KafkaJSNonRetriableError' });
}

export function timeoutError(what: string, ms: number, unreachable: boolean, brokers: readonly string[]): BusError {
  return unreachable
    ? new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what}: Kafka brokers ${brokers.join(',')} unreachable (gave up after ${ms} ms)`, { retriable: true })
    : new BusError(ErrorCodes.BUS_TIMEOUT, `${what}: no answer from Kafka brokers ${brokers.join(',')} within ${ms} ms`, { retriable: true });
}
