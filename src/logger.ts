import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LoggerSettings {
  level?: string;
  /** Defaults to stderr so that stdout stays free for command output. */
  destination?: number | string;
}

/** The root logger; parts receive it (or a child) by injection, never import a global. */
export function createLogger(settings: LoggerSettings = {}, options: LoggerOptions = {}): Logger {
  return pino(
    { level: settings.level ?? 'info', base: { service: 'cutover' }, ...options },
    pino.destination({ dest: settings.destination ?? 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
