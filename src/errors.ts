/**
 * The one error module. Callers match `code`, never message text.
 * Codes are a closed list: add one here (and to docs/troubleshooting.md) before throwing it.
 */
export const ErrorCodes = {
  /** Config file fails validation; message names every failing path. */
  CONFIG_INVALID: 'CUTOVER_CONFIG_INVALID',
  /** Config file missing or unreadable. */
  CONFIG_NOT_FOUND: 'CUTOVER_CONFIG_NOT_FOUND',
  /** Bus server unreachable (connection refused, down, lock held). Retriable. */
  BUS_UNAVAILABLE: 'CUTOVER_BUS_UNAVAILABLE',
  /** A bus operation did not complete within its time bound. Retriable. */
  BUS_TIMEOUT: 'CUTOVER_BUS_TIMEOUT',
  /** The bus answered but refused the operation. */
  BUS_REJECTED: 'CUTOVER_BUS_REJECTED',
  /** The bus is set up in a way that silently breaks guarantees (e.g. Redis eviction policy). */
  BUS_MISCONFIGURED: 'CUTOVER_BUS_MISCONFIGURED',
  /** Operation on a bus that was closed or never started. */
  BUS_CLOSED: 'CUTOVER_BUS_CLOSED',
  /** Entries the bus had acknowledged to this process are gone from it (logged, not thrown: publishing goes on). */
  BUS_DATA_LOST: 'CUTOVER_BUS_DATA_LOST',
  /** Topic name or pattern does not follow the rules. */
  TOPIC_INVALID: 'CUTOVER_TOPIC_INVALID',
  /** A CloudEvent is malformed or misses a required attribute. */
  EVENT_INVALID: 'CUTOVER_EVENT_INVALID',
  /** A message exceeds the bus or capture size limit. */
  MESSAGE_TOO_LARGE: 'CUTOVER_MESSAGE_TOO_LARGE',
  /** A subscriber's handler threw; wraps the cause. */
  HANDLER_FAILED: 'CUTOVER_HANDLER_FAILED',
  /** An event's schemaversion major is not one the consumer supports. */
  SCHEMA_UNSUPPORTED: 'CUTOVER_SCHEMA_UNSUPPORTED',
  /** Upstream agent refused or dropped the connection (HTTP 502). */
  UPSTREAM_UNREACHABLE: 'CUTOVER_UPSTREAM_UNREACHABLE',
  /** Upstream agent did not answer in time (HTTP 504). */
  UPSTREAM_TIMEOUT: 'CUTOVER_UPSTREAM_TIMEOUT',
  /** Upstream agent dropped the connection after sending its response headers: the caller's connection is cut too. */
  UPSTREAM_ABORTED: 'CUTOVER_UPSTREAM_ABORTED',
  /** Request body over a configured limit. */
  BODY_TOO_LARGE: 'CUTOVER_BODY_TOO_LARGE',
  /** Local spool has no room left: spool.maxBytes reached, or the file system is full (ENOSPC, a write that took nothing). */
  SPOOL_FULL: 'CUTOVER_SPOOL_FULL',
  /** Local spool file is unreadable or corrupt. */
  SPOOL_CORRUPT: 'CUTOVER_SPOOL_CORRUPT',
  /** The spool directory or a spool file cannot be written or read: read-only file system, permissions, I/O error. */
  SPOOL_UNWRITABLE: 'CUTOVER_SPOOL_UNWRITABLE',
  /** Another live process holds the spool directory (two sidecars must not share one spool). */
  SPOOL_LOCKED: 'CUTOVER_SPOOL_LOCKED',
  /** Missing or wrong bearer token on the admin API (HTTP 401). */
  UNAUTHORIZED: 'CUTOVER_UNAUTHORIZED',
  /** A valid admin token whose scopes do not cover the route (HTTP 403). */
  AUTH_FORBIDDEN: 'CUTOVER_AUTH_FORBIDDEN',
  /** Too many failed admin authentications from one client address (HTTP 429). */
  AUTH_RATE_LIMITED: 'CUTOVER_AUTH_RATE_LIMITED',
  /** A bus command asks for a request its flow does not allow (method, path, credential header): not replayed. */
  AUTH_REPLAY_REFUSED: 'CUTOVER_AUTH_REPLAY_REFUSED',
  /** A bus command's `replyto` is not a reply topic cutover created: neither replayed nor answered. */
  AUTH_REPLYTO_REFUSED: 'CUTOVER_AUTH_REPLYTO_REFUSED',
  /** An event without a signature from a producer not in `trust.allowUnsigned`: dead-lettered, not acted on. */
  AUTH_UNSIGNED: 'CUTOVER_AUTH_UNSIGNED',
  /** An event whose signature does not verify (tampered, replayed onto another topic, wrong key, signer not its source). */
  AUTH_BAD_SIGNATURE: 'CUTOVER_AUTH_BAD_SIGNATURE',
  /** An event signed by an agent or key id that `trust.agents` does not list. */
  AUTH_UNKNOWN_AGENT: 'CUTOVER_AUTH_UNKNOWN_AGENT',
  /** A publish, or an event's (verified) producer, outside the topics `acl:` grants that identity. */
  AUTH_TOPIC_DENIED: 'CUTOVER_AUTH_TOPIC_DENIED',
  /** Unknown route or resource (HTTP 404). */
  NOT_FOUND: 'CUTOVER_NOT_FOUND',
  /** A flow name that no config declares. */
  FLOW_UNKNOWN: 'CUTOVER_FLOW_UNKNOWN',
  /** A flip refused by the readiness gate. */
  FLIP_REFUSED: 'CUTOVER_FLIP_REFUSED',
  /** A flip this process cannot sign with an operator key: every follower with a trust would ignore it (HTTP 403). */
  FLIP_NOT_OPERATOR: 'CUTOVER_FLIP_NOT_OPERATOR',
  /** No reply arrived on the bus in time (bus mode). */
  REPLY_TIMEOUT: 'CUTOVER_REPLY_TIMEOUT',
  /** Encryption key missing or unusable, or ciphertext that does not decrypt. */
  CRYPTO_FAILED: 'CUTOVER_CRYPTO_FAILED',
  /** A saga step's participant answered with a status its `success` does not list: the saga compensates. */
  SAGA_STEP_REFUSED: 'CUTOVER_SAGA_STEP_REFUSED',
  /** A saga name or saga id that no config or saga topic knows. */
  SAGA_UNKNOWN: 'CUTOVER_SAGA_UNKNOWN',
  /** A saga that can go neither forward nor back (a compensation kept failing): an operator must act. */
  SAGA_STUCK: 'CUTOVER_SAGA_STUCK',
  /** A command-line usage error. */
  USAGE: 'CUTOVER_USAGE',
  /** A bug: an invariant broke. */
  INTERNAL: 'CUTOVER_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface CutoverErrorOptions {
  cause?: unknown;
  retriable?: boolean;
  /** HTTP status to answer with when this error ends a request. */
  status?: number;
  /** Structured detail safe to log and return (never secrets). */
  details?: Record<string, unknown>;
}

/** Base error: every error cutover throws on purpose is one of these. */
export class CutoverError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly status: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: CutoverErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.status = options.status;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, retriable: this.retriable, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Config could not be loaded or validated. `issues` lists every failing path. */
export class ConfigError extends CutoverError {
  readonly issues: readonly string[];
  constructor(code: typeof ErrorCodes.CONFIG_INVALID | typeof ErrorCodes.CONFIG_NOT_FOUND, message: string, issues: readonly string[] = [], options: CutoverErrorOptions = {}) {
    super(code, message, options);
    this.issues = issues;
  }
}

/** Anything that went wrong talking to a bus. */
export class BusError extends CutoverError {}

/** Bad events, topics or payloads. */
export class ValidationError extends CutoverError {}

/** HTTP data-plane errors (upstream, limits). */
export class ProxyError extends CutoverError {}

/** Admin API / control-plane errors. */
export class ControlError extends CutoverError {}

export function isCutoverError(err: unknown): err is CutoverError {
  return err instanceof CutoverError;
}

/** True when retrying the same operation may succeed. Unknown errors are not retried. */
export function isRetriable(err: unknown): boolean {
  return isCutoverError(err) && err.retriable;
}

/** Short text for an unknown thrown value, for logs and DLQ records. */
export function describeError(err: unknown): { code: string; message: string } {
  if (isCutoverError(err)) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: (err as { code?: string }).code ?? err.name, message: err.message };
  return { code: 'UNKNOWN', message: String(err) };
}
