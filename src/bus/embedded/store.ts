import Database from 'better-sqlite3';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { BusError, ErrorCodes } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { CloudEvent } from '../../events/types.js';
import type { EmbeddedBusConfig } from '../../config/bus.js';
import type { Delivery } from '../types.js';
import { BUSY_TIMEOUT_MS, createPrivateFile, withBusyRetry } from './sqlite.js';

export { partitionOf } from '../hash.js';

const SCHEMA_VERSION = '1';

/**
 * Every piece of coordination state lives in the file, because several processes may share it:
 * - `messages.seq` is AUTOINCREMENT so a sequence number is never reused, even after retention deleted the
 *   newest rows: group offsets are sequence numbers and a reused one would be skipped.
 * - Topics get small integer ids so the hot index stays narrow.
 * - `group_offsets.dispatched_seq` is how far the owner of a partition has handed messages to handlers;
 *   whatever lies between the committed and the dispatched sequence when a new owner takes over is a
 *   redelivery, counted per message in `redeliveries` (rows exist only for redelivered messages).
 */
const DDL = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  topic_id INTEGER NOT NULL,
  part INTEGER NOT NULL,
  msg_key TEXT,
  event TEXT NOT NULL,
  headers TEXT,
  published_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_part ON messages (topic_id, part, seq);
CREATE TABLE IF NOT EXISTS consumer_groups (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
  grp TEXT NOT NULL, member_id TEXT NOT NULL, heartbeat_at INTEGER NOT NULL,
  PRIMARY KEY (grp, member_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_leases (
  grp TEXT NOT NULL, part INTEGER NOT NULL, member_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (grp, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
  grp TEXT NOT NULL, topic_id INTEGER NOT NULL, part INTEGER NOT NULL,
  committed_seq INTEGER NOT NULL, dispatched_seq INTEGER NOT NULL,
  PRIMARY KEY (grp, topic_id, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redeliveries (
  grp TEXT NOT NULL, topic_id INTEGER NOT NULL, part INTEGER NOT NULL, seq INTEGER NOT NULL, attempts INTEGER NOT NULL,
  PRIMARY KEY (grp, topic_id, part, seq)
) WITHOUT ROWID;
`;

/** A stored message as the consumers and readers fetch it. */
export interface MessageRow {
  seq: number;
  topic_id: number;
  part: number;
  msg_key: string | null;
  event: string;
  headers: string | null;
  published_at: number;
}

/**
 * A stored row as a Delivery, or undefined (logged) for a row that does not parse: only this adapter writes
 * rows, always as JSON, so such a row was damaged outside it and is skipped.
 */
export function rowToDelivery(topic: string, row: MessageRow, attempt: number, logger: Logger): Delivery | undefined {
  try {
    return {
      topic,
      key: row.msg_key,
      event: JSON.parse(row.event) as CloudEvent,
      headers: row.headers ? (JSON.parse(row.headers) as Record<string, string>) : {},
      position: String(row.seq),
      publishedAt: row.published_at,
      attempt,
    };
  } catch (err) {
    logger.error({ err, topic, position: row.seq }, 'skipping a stored message that is not JSON');
    return undefined;
  }
}

/** One message ready to insert. */
export interface NewRow {
  key: string | null;
  part: number;
  event: string;
  headers: string | null;
}

export interface OffsetRow {
  topic_id: number;
  committed_seq: number;
  dispatched_seq: number;
}

// A local name for better-sqlite3's statement type, which its typings keep in a namespace they do not
// export: without it the emitted declarations of `Statements` could not name the type.
interface Statement<R> extends Database.Statement<unknown[], R> {}

function prepareAll(db: Database.Database) {
  const p = <R = unknown>(sql: string): Statement<R> => db.prepare<unknown[], R>(sql);
  return {
    syncFull: p('PRAGMA synchronous = FULL'),
    syncNormal: p('PRAGMA synchronous = NORMAL'),
    topicId: p<{ id: number }>('SELECT id FROM topics WHERE name = ?'),
    insertTopic: p('INSERT INTO topics (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    topicsAfter: p<{ id: number; name: string }>('SELECT id, name FROM topics WHERE id > ? ORDER BY id'),
    insertMessage: p('INSERT INTO messages (topic_id, part, msg_key, event, headers, published_at) VALUES (?, ?, ?, ?, ?, ?)'),
    maxSeq: p<{ m: number | null }>('SELECT MAX(seq) AS m FROM messages'),
    touchedSince: p<{ topic_id: number; part: number }>('SELECT DISTINCT topic_id, part FROM messages WHERE seq > ?'),
    fetch: p<MessageRow>(
      'SELECT seq, topic_id, part, msg_key, event, headers, published_at FROM messages WHERE topic_id = ? AND part = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    fetchUpTo: p<MessageRow>(
      'SELECT seq, topic_id, part, msg_key, event, headers, published_at FROM messages WHERE topic_id = ? AND part = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?',
    ),
    // Rows are in seq order, which is publish order; looking at the oldest few bounds the work per batch
    // even when nothing is due (a scan on published_at alone would read the whole table).
    deleteExpired: p(
      'DELETE FROM messages WHERE seq IN (SELECT seq FROM (SELECT seq, published_at FROM messages ORDER BY seq LIMIT ?) WHERE published_at < ?)',
    ),
    generation: p<{ generation: number }>('SELECT generation FROM consumer_groups WHERE grp = ?'),
    bumpGeneration: p<{ generation: number }>(
      'INSERT INTO consumer_groups (grp, generation) VALUES (?, 1) ON CONFLICT (grp) DO UPDATE SET generation = generation + 1 RETURNING generation',
    ),
    heartbeat: p(
      'INSERT INTO group_members (grp, member_id, heartbeat_at) VALUES (?, ?, ?) ON CONFLICT (grp, member_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at',
    ),
    deleteMember: p('DELETE FROM group_members WHERE grp = ? AND member_id = ?'),
    deleteStaleMembers: p('DELETE FROM group_members WHERE grp = ? AND heartbeat_at < ?'),
    liveMembers: p<{ n: number }>('SELECT COUNT(*) AS n FROM group_members WHERE grp = ? AND heartbeat_at >= ?'),
    renewLeases: p('UPDATE partition_leases SET expires_at = ? WHERE grp = ? AND member_id = ?'),
    myLeases: p<{ part: number }>('SELECT part FROM partition_leases WHERE grp = ? AND member_id = ?'),
    leases: p<{ part: number; member_id: string; expires_at: number }>('SELECT part, member_id, expires_at FROM partition_leases WHERE grp = ?'),
    takeLease: p(
      `INSERT INTO partition_leases (grp, part, member_id, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (grp, part) DO UPDATE SET member_id = excluded.member_id, expires_at = excluded.expires_at
       WHERE partition_leases.expires_at < ? OR partition_leases.member_id = excluded.member_id`,
    ),
    dropLease: p('DELETE FROM partition_leases WHERE grp = ? AND part = ? AND member_id = ?'),
    initOffset: p('INSERT INTO group_offsets (grp, topic_id, part, committed_seq, dispatched_seq) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING'),
    offsetsOfPart: p<OffsetRow>('SELECT topic_id, committed_seq, dispatched_seq FROM group_offsets WHERE grp = ? AND part = ?'),
    commit: p('UPDATE group_offsets SET committed_seq = ? WHERE grp = ? AND topic_id = ? AND part = ? AND committed_seq < ?'),
    markDispatched: p('UPDATE group_offsets SET dispatched_seq = MAX(dispatched_seq, ?) WHERE grp = ? AND topic_id = ? AND part = ?'),
    setDispatched: p('UPDATE group_offsets SET dispatched_seq = ? WHERE grp = ? AND topic_id = ? AND part = ?'),
    countRedelivery: p<{ attempts: number }>(
      `INSERT INTO redeliveries (grp, topic_id, part, seq, attempts) VALUES (?, ?, ?, ?, 2)
       ON CONFLICT (grp, topic_id, part, seq) DO UPDATE SET attempts = attempts + 1 RETURNING attempts`,
    ),
    forgetRedeliveries: p('DELETE FROM redeliveries WHERE grp = ? AND topic_id = ? AND part = ? AND seq <= ?'),
    ping: p('SELECT 1'),
    // Changes whenever another connection (another process) commits to the file; never for our own commits.
    dataVersion: p<{ data_version: number }>('PRAGMA data_version'),
  };
}

export type Statements = ReturnType<typeof prepareAll>;

/**
 * Longest an idle consumer or reader sleeps without a wake-up (local publish, change watcher) or a due
 * heartbeat: a safety net, not the poll.
 */
export const IDLE_RECHECK_MS = 1_000;

/** How often the change watcher looks anyway while file-system notifications are working (a safety net). */
export const NOTIFIED_RECHECK_MS = 1_000;

/**
 * The SQLite file and what the publisher, consumers and readers of one bus share: one connection (calls
 * are synchronous, so they never interleave), prepared statements, the topic-id cache, a signal for
 * "this process just published", which wakes local consumers without waiting for their next poll, and a
 * change watcher. The watcher looks at the file's `data_version` (a counter SQLite bumps when another
 * connection commits) and wakes the consumers and readers only when the file changed. It looks when the
 * file system says the database or its WAL was written (a commit of any process writes the WAL), and on a
 * timer besides: every `pollInterval` where the file system cannot tell (no notifications, an in-memory
 * file), every {@link NOTIFIED_RECHECK_MS} where it can. So idle subscriptions cost nothing between
 * commits, and a commit of another process wakes them at once instead of at the next poll.
 */
export class EmbeddedStore {
  readonly partitions: number;
  private readonly topicIds = new Map<string, number>();
  private readonly writeListeners = new Set<() => void>();
  private readonly changeListeners = new Set<() => void>();
  private durable: boolean | undefined;
  private notifyPending = false;
  private watchTimer: NodeJS.Timeout | undefined;
  private watchInterval = 0;
  /** File-system notifications on the file's directory, while they work. */
  private watcher: FSWatcher | undefined;
  private notificationsFailed = false;
  private checkPending = false;
  private lastCheckAt = -Infinity;
  private seenVersion = -1;
  /** {@link markChanged} was called since the watcher last looked (data_version does not show our own commits). */
  private committedHere = false;

  private constructor(
    readonly db: Database.Database,
    readonly sql: Statements,
    partitions: number,
    private readonly file: string,
  ) {
    this.partitions = partitions;
  }

  /** Opens (creating it 0600 and its parent directory 0700 when missing) and migrates the file. */
  static async open(config: EmbeddedBusConfig, logger: Logger): Promise<EmbeddedStore> {
    const deadline = Date.now() + config.publishTimeout;
    const action = `opening the embedded bus at ${config.path}`;
    let db: Database.Database;
    try {
      if (config.path !== ':memory:') createPrivateFile(config.path, logger);
      db = new Database(config.path, { timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      throw new BusError(ErrorCodes.BUS_UNAVAILABLE, `${action}: ${(err as Error).message}`, { cause: err, retriable: true });
    }
    try {
      const mode = await withBusyRetry(() => db.pragma('journal_mode = WAL', { simple: true }), deadline, action);
      if (mode !== 'wal' && config.path !== ':memory:') {
        // Still correct, but readers then block writers: other processes see more lock waits.
        logger.warn({ path: config.path, mode }, 'the embedded bus file could not switch to WAL mode');
      }
      await withBusyRetry(() => db.transaction(() => db.exec(DDL)).immediate(), deadline, action);
      const partitions = await withBusyRetry(
        () =>
          db
            .transaction(() => {
              const get = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?');
              const put = db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING');
              put.run('schema_version', SCHEMA_VERSION);
              put.run('partitions', String(config.partitions));
              return { version: get.get('schema_version')!.value, partitions: Number(get.get('partitions')!.value) };
            })
            .immediate(),
        deadline,
        action,
      );
      if (partitions.version !== SCHEMA_VERSION) {
        throw new BusError(ErrorCodes.BUS_MISCONFIGURED, `${action}: the file has schema version ${partitions.version}; this cutover reads version ${SCHEMA_VERSION}`);
      }
      // Processes sharing the file must hash keys to the same partitions, or per-key order breaks silently.
      if (partitions.partitions !== config.partitions) {
        throw new BusError(
          ErrorCodes.BUS_MISCONFIGURED,
          `${action}: the file was created with ${partitions.partitions} partitions but bus.partitions is ${config.partitions}; use the same value everywhere or a new file`,
        );
      }
      return new EmbeddedStore(db, prepareAll(db), config.partitions, config.path);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE, so a lock conflict shows at BEGIN as SQLITE_BUSY
   * rather than as an unretriable upgrade failure later). `durable` picks the sync level:
   * - publishes use synchronous=FULL: the WAL is fsynced at commit, so an accepted message survives power
   *   loss, which is what "durably accepted" promises (measured ~0.2 ms per commit here, amortized by
   *   micro-batching);
   * - consumer bookkeeping (offsets, leases, heartbeats) uses NORMAL: it survives a process crash, and
   *   losing its last commits to a power cut only means redelivery, which at-least-once allows.
   */
  write<T>(fn: () => T, durable: boolean): T {
    if (this.durable !== durable) {
      (durable ? this.sql.syncFull : this.sql.syncNormal).run();
      this.durable = durable;
    }
    return this.db.transaction(fn).immediate();
  }

  /**
   * A local transaction changed what other local members act on (a group's generation: a join, a leave,
   * partitions handed over): the change watcher wakes them at its next look (within `pollInterval`), as it
   * would for another process.
   */
  markChanged(): void {
    this.committedHere = true;
    this.scheduleCheck();
  }

  /**
   * Calls `listener` while the file changed: another process committed, or a local member changed its group
   * ({@link markChanged}); at once when file-system notifications tell, else at the watcher's next look (at
   * most `interval` later). Local publishes wake through {@link onWrite}, at once. Returns the unsubscribe
   * function.
   */
  onChange(listener: () => void, interval: number): () => void {
    this.changeListeners.add(listener);
    if (!this.watchTimer) {
      this.watchInterval = Math.max(1, interval);
      this.startNotifications();
      this.startTimer();
    }
    return () => {
      this.changeListeners.delete(listener);
      if (this.changeListeners.size === 0) this.stopWatching();
    };
  }

  private startNotifications(): void {
    if (this.notificationsFailed || this.file === ':memory:' || this.file === '') return;
    const dir = path.dirname(path.resolve(this.file));
    // The database, its WAL and its rollback journal: `bus.db`, `bus.db-wal`, `bus.db-journal`.
    const base = path.basename(this.file);
    try {
      // Not persistent: the subscriptions keep the process alive, the watcher alone must not.
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || (typeof name === 'string' && name.startsWith(base))) this.scheduleCheck();
      });
      this.watcher.on('error', () => this.notificationsLost());
    } catch {
      this.notificationsLost();
    }
  }

  /** Notifications stopped (or never started): back to looking every `pollInterval`. */
  private notificationsLost(): void {
    this.notificationsFailed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.watchTimer) {
      clearInterval(this.watchTimer);
      this.startTimer();
    }
  }

  private startTimer(): void {
    const every = this.watcher ? Math.max(this.watchInterval, NOTIFIED_RECHECK_MS) : this.watchInterval;
    this.watchTimer = setInterval(() => this.checkChanged(), every);
    this.watchTimer.unref();
  }

  private stopWatching(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  /**
   * One look soon, however many notifications arrive before it (a commit writes several times, and this
   * process's own commits notify too): on the next turn when the last look is `pollInterval` old (at most
   * {@link NOTIFIED_RECHECK_MS}), else when it will be. Idle, a commit is seen at once; under a stream of
   * commits, once per `pollInterval` as a poll would.
   */
  private scheduleCheck(): void {
    if (this.checkPending || this.changeListeners.size === 0) return;
    this.checkPending = true;
    const run = (): void => {
      this.checkPending = false;
      if (this.db.open) this.checkChanged();
    };
    const wait = this.lastCheckAt + Math.min(this.watchInterval, NOTIFIED_RECHECK_MS) - performance.now();
    if (wait <= 0) setImmediate(run);
    else setTimeout(run, wait).unref();
  }

  private checkChanged(): void {
    this.lastCheckAt = performance.now();
    let changed = this.committedHere;
    this.committedHere = false;
    try {
      const version = this.sql.dataVersion.get()?.data_version ?? -1;
      if (version !== this.seenVersion) changed = true;
      this.seenVersion = version;
    } catch {
      // Cannot tell (a closing file, an I/O error): wake everyone, as a plain poll would.
      changed = true;
    }
    if (!changed) return;
    for (const listener of this.changeListeners) listener();
  }

  /**
   * Tells local consumers and readers that new messages were committed. Deferred to the next turn of the
   * event loop (and coalesced): publish() callers see their promise settle before consumers run, and a
   * burst of flushes wakes each consumer once.
   */
  notifyWrite(): void {
    if (this.notifyPending || this.writeListeners.size === 0) return;
    this.notifyPending = true;
    setImmediate(() => {
      this.notifyPending = false;
      for (const listener of this.writeListeners) listener();
    });
  }

  /** Calls `listener` on {@link notifyWrite}. Returns the unsubscribe function. */
  onWrite(listener: () => void): () => void {
    this.writeListeners.add(listener);
    return () => this.writeListeners.delete(listener);
  }

  /** Id of an existing topic, cached (ids never change: topics are never deleted). */
  topicId(name: string): number | undefined {
    const cached = this.topicIds.get(name);
    if (cached !== undefined) return cached;
    const row = this.sql.topicId.get(name);
    if (row) this.topicIds.set(name, row.id);
    return row?.id;
  }

  /**
   * Id of `name`, creating the topic; call inside a write transaction. Not cached here: if the
   * transaction rolls back, the id would point at nothing (see {@link remember}).
   */
  ensureTopic(name: string, now: number): number {
    const known = this.topicIds.get(name);
    if (known !== undefined) return known;
    this.sql.insertTopic.run(name, now);
    return this.sql.topicId.get(name)!.id;
  }

  /** Caches a topic id once the transaction that created it has committed. */
  remember(name: string, id: number): void {
    this.topicIds.set(name, id);
  }

  /** Highest sequence number present (0 when empty); seq order is commit order across processes. */
  maxSeq(): number {
    return this.sql.maxSeq.get()?.m ?? 0;
  }

  close(): void {
    this.writeListeners.clear();
    this.changeListeners.clear();
    this.stopWatching();
    if (this.db.open) this.db.close();
  }
}
