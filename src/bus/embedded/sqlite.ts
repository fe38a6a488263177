import { closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { BusError, ErrorCodes } from '../../errors.js';
import { sleep } from '../../async.js';
import type { Logger } from '../../logger.js';

/**
 * How long one SQLite call waits for a lock held by another connection before it fails with SQLITE_BUSY.
 * better-sqlite3 is synchronous, so this wait blocks the event loop: keep it to a few milliseconds (enough
 * to ride out another process's short write transaction) and do longer waits in {@link withBusyRetry},
 * between tries, with the event loop free. A held lock thus becomes CUTOVER_BUS_UNAVAILABLE once the
 * caller's deadline (publishTimeout) passes, never a hang.
 */
export const BUSY_TIMEOUT_MS = 5;

/** The SQLite result code of a better-sqlite3 error (`SQLITE_BUSY`, `SQLITE_IOERR_WRITE`, ...). */
export function sqliteCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** Another connection holds a lock we need: retrying later may succeed. */
export function isBusy(err: unknown): boolean {
  const code = sqliteCode(err);
  return code !== undefined && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** Translates a SQLite failure into the bus error callers match on. */
export function toBusError(err: unknown, action: string): BusError {
  if (err instanceof BusError) return err;
  const code = sqliteCode(err) ?? '';
  const detail = err instanceof Error ? err.message : String(err);
  if (isBusy(err)) {
    return new BusError(ErrorCodes.BUS_UNAVAILABLE, `${action}: the bus file is locked by another connection (${detail})`, { cause: err, retriable: true });
  }
  if (code.startsWith('SQLITE_IOERR') || code === 'SQLITE_FULL' || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PROTOCOL') {
    return new BusError(ErrorCodes.BUS_UNAVAILABLE, `${action}: ${detail}`, { cause: err, retriable: true, details: { sqlite: code } });
  }
  if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new BusError(ErrorCodes.BUS_MISCONFIGURED, `${action}: ${detail}`, { cause: err, details: { sqlite: code } });
  }
  return new BusError(ErrorCodes.BUS_REJECTED, `${action}: ${detail}`, { cause: err, details: code ? { sqlite: code } : undefined });
}

/** Delay before try `n` (1-based) after SQLITE_BUSY: short first, since most locks are held for a millisecond. */
export function busyDelay(n: number): number {
  const base = Math.min(50, 2 ** Math.min(n, 6));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

/**
 * Runs `fn` (synchronous SQLite work, typically one transaction) until it stops failing with SQLITE_BUSY,
 * waiting between tries without blocking the event loop. Past `deadline` (epoch ms) the last BUSY error
 * becomes CUTOVER_BUS_UNAVAILABLE; any other SQLite error is translated at once.
 */
export async function withBusyRetry<T>(fn: () => T, deadline: number, action: string, signal?: AbortSignal): Promise<T> {
  for (let n = 1; ; n += 1) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err)) throw toBusError(err, action);
      const delay = busyDelay(n);
      if (Date.now() + delay + BUSY_TIMEOUT_MS >= deadline) throw toBusError(err, action);
      if (!(await sleep(delay, signal))) throw toBusError(err, action);
    }
  }
}

/** Files already warned about as world-readable: one warning per file and process, not per connection. */
const warnedReadable = new Set<string>();

/**
 * Makes sure the bus file exists before SQLite opens it, private to its owner: events carry request bodies,
 * like the spool (0600). A missing file is created 0600 and a missing directory 0700; SQLite gives the
 * -wal and -shm files the main file's mode. An existing file keeps the mode its owner chose, but a
 * world-readable one is warned about (once per file).
 */
export function createPrivateFile(file: string, logger: Logger): void {
  const resolved = path.resolve(file);
  mkdirSync(path.dirname(resolved), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(resolved, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = statSync(resolved).mode & 0o777;
  if ((mode & 0o004) === 0 || warnedReadable.has(resolved)) return;
  warnedReadable.add(resolved);
  logger.warn({ path: file, mode: `0${mode.toString(8)}` }, 'the embedded bus file is world-readable and its events carry request bodies; chmod 600 it (and its -wal and -shm files)');
}
