import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LoggerSettings {
  level?: string;
  /** Defaults to stderr so that stdout stays free for command output. */
  destination?: number | string;
}

/**
 * Every error is logged the same way, under `err`: `{ type, code, message, retriable?, stack?, cause? }`,
 * whatever was thrown (a CutoverError, a vendor error, a string). Callers pass the value as it is.
 */
export function serializeError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const out: Record<string, unknown> = { type: err.constructor?.name ?? 'Error', message: err.message };
  const extra = err as Error & { code?: unknown; retriable?: unknown };
  if (extra.code !== undefined) out.code = extra.code;
  if (typeof extra.retriable === 'boolean') out.retriable = extra.retriable;
  if (err.stack) out.stack = err.stack;
  if (err.cause !== undefined && depth < 3) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/** The root logger; parts receive it (or a child) by injection, never import a global. */
export function createLogger(settings: LoggerSettings = {}, options: LoggerOptions = {}): Logger {
  return pino(
    { level: settings.level ?? 'info', base: { service: 'cutover' }, serializers: { err: (e: unknown) => serializeError(e) }, ...options },
    pino.destination({ dest: settings.destination ?? 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
