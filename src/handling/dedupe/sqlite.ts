import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { BusError, ErrorCodes } from '../../errors.js';
import type { ClaimResult, DedupeStore } from './types.js';

const DDL = `
CREATE TABLE IF NOT EXISTS cutover_dedupe (
  scope TEXT NOT NULL,
  id TEXT NOT NULL,
  done INTEGER NOT NULL,
  owner TEXT,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (scope, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cutover_dedupe_expiry ON cutover_dedupe (expires_at);
`;

/** How long a call waits for another process's write lock before failing (retriable). */
const BUSY_TIMEOUT_MS = 2_000;
const PURGE_EVERY_MS = 60_000;

/**
 * Dedupe records in a table of a SQLite file (WAL), shared by every process on the machine that opens the
 * same file. Used beside the embedded bus, and on Kafka when no Redis is configured (then it dedupes only
 * between consumers on one machine: see docs/shadow.md).
 */
export class SqliteDedupeStore implements DedupeStore {
  readonly kind = 'sqlite';
  private db: Database.Database | undefined;
  private readonly owner = randomUUID();
  private statements: ReturnType<SqliteDedupeStore['prepare']> | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly file: string,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {
    if (this.db) return;
    try {
      if (this.file !== ':memory:') mkdirSync(path.dirname(path.resolve(this.file)), { recursive: true });
      const db = new Database(this.file, { timeout: BUSY_TIMEOUT_MS });
      db.pragma('journal_mode = WAL');
      // A dedupe mark lost in a power cut costs one duplicate delivery at worst: NORMAL is enough.
      db.pragma('synchronous = NORMAL');
      db.exec(DDL);
      this.db = db;
      this.statements = this.prepare(db);
    } catch (err) {
      throw new BusError(ErrorCodes.BUS_UNAVAILABLE, `cannot open the dedupe store ${this.file}: ${(err as Error).message}`, { cause: err, retriable: true });
    }
    this.purgeTimer = setInterval(() => this.purge(), PURGE_EVERY_MS);
    this.purgeTimer.unref();
  }

  private prepare(db: Database.Database) {
    const get = db.prepare<[string, string], { done: number; expires_at: number }>('SELECT done, expires_at FROM cutover_dedupe WHERE scope = ? AND id = ?');
    const put = db.prepare<[string, string, number, string | null, number]>(
      'INSERT INTO cutover_dedupe (scope, id, done, owner, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, id) DO UPDATE SET done = excluded.done, owner = excluded.owner, expires_at = excluded.expires_at',
    );
    const release = db.prepare<[string, string, string]>('DELETE FROM cutover_dedupe WHERE scope = ? AND id = ? AND done = 0 AND owner = ?');
    const purge = db.prepare<[number]>('DELETE FROM cutover_dedupe WHERE expires_at <= ?');
    const claim = db.transaction((scope: string, id: string, leaseMs: number): ClaimResult => {
      const now = this.now();
      const row = get.get(scope, id);
      if (row && row.expires_at > now) return row.done ? 'done' : 'busy';
      put.run(scope, id, 0, this.owner, now + leaseMs);
      return 'acquired';
    });
    return { put, release, purge, claim };
  }

  async claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult> {
    return this.run(() => this.sql().claim.immediate(scope, id, leaseMs));
  }

  async complete(scope: string, id: string, ttlMs: number): Promise<void> {
    this.run(() => this.sql().put.run(scope, id, 1, null, this.now() + ttlMs));
  }

  async release(scope: string, id: string): Promise<void> {
    this.run(() => this.sql().release.run(scope, id, this.owner));
  }

  async close(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.purgeTimer = undefined;
    this.db?.close();
    this.db = undefined;
    this.statements = undefined;
  }

  private purge(): void {
    try {
      this.statements?.purge.run(this.now());
    } catch {
      // Busy with another writer: the next round purges.
    }
  }

  private sql(): NonNullable<SqliteDedupeStore['statements']> {
    if (!this.statements) throw new BusError(ErrorCodes.BUS_CLOSED, `the dedupe store ${this.file} is not open`);
    return this.statements;
  }

  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof BusError) throw err;
      // SQLITE_BUSY and friends: another process holds the lock; the delivery retries.
      throw new BusError(ErrorCodes.BUS_UNAVAILABLE, `dedupe store ${this.file}: ${(err as Error).message}`, { cause: err, retriable: true });
    }
  }
}
