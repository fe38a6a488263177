import { constants as fsConstants } from 'node:fs';
import { readFile as readFileNode, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { BusMessage } from '../src/bus/types.js';
import { CutoverError, ErrorCodes, isCutoverError } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import { Journal } from './journal.js';
import { bytesWrittenBefore, DiskBackoff, nodeSpoolFs, spoolDiskError, spoolErrorReason, syncDir, writeFully, type SpoolErrorReason, type SpoolFile, type SpoolFs, type SpoolOp } from './spool-fs.js';
import type { SpoolRecord } from './spool-types.js';

export type { SpoolRecord } from './spool-types.js';

/** What a crash may lose of the events the outbox accepted (see docs/sidecar.md, Durability). */
export type Durability = 'none' | 'interval' | 'strict';

export interface SpoolOptions {
  dir: string;
  /** Cap on the spool's files together; appends past it are dropped (and reported to the caller). */
  maxBytes: number;
  /** A segment at or above this size is closed and the next append starts a new one. */
  segmentBytes: number;
  logger: Logger;
  /**
   * `interval` and `strict` keep a journal of every event the outbox accepts (fdatasync every
   * `commitInterval`, or after every write for strict); `none` spools only what the bus did not take.
   */
  durability?: Durability;
  /** ms between journal fdatasyncs under `interval` (default 10). */
  commitInterval?: number;
  /** Wait after a disk failure before touching the disk again, doubling up to `maxBackoff` (ms). */
  backoff?: number;
  maxBackoff?: number;
  /** The file system; tests inject short writes, ENOSPC and EIO here. */
  fs?: SpoolFs;
  /** Every disk failure, for metrics. */
  onError?(op: SpoolOp, reason: SpoolErrorReason, err: unknown): void;
}

export interface AppendResult {
  written: number;
  /** Records that did not fit under maxBytes, in order (the caller counts and logs them). */
  dropped: SpoolRecord[];
}

/** Records read from the head of the spool; `commit` them once the bus holds them. */
export interface SpoolBatch {
  records: SpoolRecord[];
  readonly token: { segment: string; endOffset: number; count: number; bytes: number };
}

interface Segment {
  name: string;
  firstSeq: number;
  /** Bytes of complete records in the file: what this process wrote or found. Never past a failed write. */
  size: number;
  /** Complete records in the file not yet consumed. */
  pending: number;
  /** Offset of the first unconsumed byte. */
  offset: number;
}

/** Who holds a spool directory: enough to tell a live holder from a recycled pid. */
interface LockOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat field 22), when known. */
  start?: number;
  /** /proc/sys/kernel/random/boot_id: a pid from another boot is never the holder. */
  boot?: string;
  token?: string;
}

const SEGMENT = /^seg-(\d{20})(?:-\d+)?\.jsonl$/;
const NEWLINE = 0x0a;
const heldInThisProcess = new Set<string>();

function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(20, '0')}.jsonl`;
}

function countLines(buf: Buffer, from = 0, to = buf.length): number {
  let n = 0;
  for (let i = buf.indexOf(NEWLINE, from); i !== -1 && i < to; i = buf.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/**
 * A local durable spool for events the bus could not take: append-only JSON-lines segment files under
 * one directory, each append one write plus fdatasync, read back in sequence order, drained segments
 * deleted whole. A small cursor file remembers how far the head segment was sent, so a restart resends
 * at most one batch (at-least-once: duplicates possible, loss not).
 *
 * Segments are named by the sequence number of their first record and read in name order. That lets an
 * append whose records are older than the newest spooled one (a publish that failed after newer events
 * already overflowed to the spool) go into its own segment and still be read first.
 *
 * Disk failures (a short write, ENOSPC, EIO, a read-only file system) never count unwritten bytes: a
 * failed append is cut back to the last complete record and rejected with CUTOVER_SPOOL_FULL or
 * CUTOVER_SPOOL_UNWRITABLE, and the spool then refuses work without touching the disk until a backoff
 * passes. A spool that could not open retries opening on later calls, after the same backoff.
 *
 * With `durability` other than `none` the spool directory also holds the outbox's journal (`journal`),
 * and `open` moves what a crashed run left there into the spool.
 *
 * Every operation runs on one internal chain, so appends, reads and commits never interleave.
 */
export class Spool {
  private readonly opts: SpoolOptions;
  private readonly fs: SpoolFs;
  private segments: Segment[] = [];
  private active: { segment: Segment; handle: SpoolFile } | undefined;
  private cache: { name: string; buf: Buffer } | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private total = 0;
  private pendingCount = 0;
  private pendingBytes = 0;
  private maxSeq = -1;
  private opened = false;
  private closed = false;
  private openError: CutoverError | undefined;
  private lastError: CutoverError | undefined;
  private diskErrors = 0;
  private readonly backoff: DiskBackoff;
  private readonly cursorFile: string;
  /** Records skipped because they did not parse (each logged as CUTOVER_SPOOL_CORRUPT). */
  corruptRecords = 0;
  /** Records the spool had counted but could not find on disk again (a write the disk lost). */
  lostRecords = 0;
  private readonly lockFile: string;
  private lockToken = '';
  /** The outbox's write-ahead journal, once open (undefined with durability `none`). */
  journal: Journal | undefined;

  constructor(options: SpoolOptions) {
    this.opts = options;
    this.fs = options.fs ?? nodeSpoolFs;
    this.cursorFile = path.join(options.dir, 'cursor.json');
    this.lockFile = path.join(options.dir, 'LOCK');
    this.backoff = new DiskBackoff(options.backoff ?? 250, options.maxBackoff ?? 5_000);
  }

  /** Records waiting to be sent. */
  get depth(): number {
    return this.pendingCount;
  }

  /** Bytes of records waiting to be sent. */
  get pendingSize(): number {
    return this.pendingBytes;
  }

  /** Bytes of the spool's files (what counts against maxBytes). */
  get sizeOnDisk(): number {
    return this.total;
  }

  /** Highest sequence number in the spool, or -1. New events must be numbered above it. */
  get lastSeq(): number {
    return this.maxSeq;
  }

  /** False while the spool cannot use its disk (not open, or a recent write failed); the journal's too. */
  get healthy(): boolean {
    return this.opened && !this.backoff.waiting && this.lastError === undefined && (this.journal?.healthy ?? true);
  }

  /**
   * Creates the directory, takes the lock, loads what a previous run left and moves what its journal held
   * into the spool. Rejects with CUTOVER_SPOOL_LOCKED, or with CUTOVER_SPOOL_UNWRITABLE / CUTOVER_SPOOL_FULL
   * when the disk refuses; after those two, later calls try to open again (after a backoff).
   */
  async open(): Promise<void> {
    if (this.opened) return;
    try {
      await this.doOpen();
      this.openError = undefined;
    } catch (err) {
      this.opts.onError?.('open', spoolErrorReason(err), err);
      if (isCutoverError(err) && err.code === ErrorCodes.SPOOL_LOCKED) throw err;
      this.openError = spoolDiskError(err, `cannot open the spool in ${this.opts.dir}`);
      this.backoff.failed();
      throw this.openError;
    }
  }

  private async doOpen(): Promise<void> {
    await this.fs.mkdir(this.opts.dir);
    await this.lock();
    try {
      await this.load();
      if ((this.opts.durability ?? 'none') !== 'none') await this.openJournal();
    } catch (err) {
      this.journal = undefined;
      this.segments = [];
      this.total = this.pendingBytes = this.pendingCount = 0;
      await this.unlock();
      throw err;
    }
    this.opened = true;
    this.backoff.succeeded();
  }

  private async openJournal(): Promise<void> {
    const journal = new Journal({
      dir: this.opts.dir,
      fs: this.fs,
      commitInterval: this.opts.durability === 'strict' ? 0 : (this.opts.commitInterval ?? 10),
      segmentBytes: Math.min(this.opts.segmentBytes, 4 * 1024 * 1024),
      backoff: new DiskBackoff(this.opts.backoff ?? 250, this.opts.maxBackoff ?? 5_000),
      logger: this.opts.logger,
      onError: (reason, err) => this.opts.onError?.('journal', reason, err),
    });
    const { records, maxSeq } = await journal.recover();
    this.maxSeq = Math.max(this.maxSeq, maxSeq);
    if (records.length > 0) {
      const { written, dropped } = await this.doAppend(records);
      this.opts.logger.warn(
        { dir: this.opts.dir, records: written, dropped: dropped.length },
        'the previous run ended without a clean shutdown: the events its journal held are sent again (duplicates are possible; consumers dedupe by event id)',
      );
    }
    await journal.forget();
    this.journal = journal;
  }

  /** Appends records (in order). Resolves once they are on disk (fdatasync). */
  append(records: readonly SpoolRecord[]): Promise<AppendResult> {
    return this.run('append', () => this.doAppend(records));
  }

  /** Reads up to `max` records from the head, or null when the spool is empty. */
  read(max: number): Promise<SpoolBatch | null> {
    return this.run('read', () => this.doRead(max));
  }

  /** Marks a batch sent: its bytes are released and the cursor moves past it. */
  commit(batch: SpoolBatch): Promise<void> {
    return this.run('commit', () => this.doCommit(batch));
  }

  /** Closes the journal and the active segment and releases the lock. What is spooled stays for the next run. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain.catch(() => undefined);
    await this.journal?.close().catch(() => undefined);
    if (this.active) {
      await this.active.handle.close().catch(() => undefined);
      this.active = undefined;
    }
    if (this.opened) await this.unlock();
  }

  private run<T>(op: SpoolOp, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new CutoverError(ErrorCodes.INTERNAL, 'spool is closed'));
    const guarded = async (): Promise<T> => {
      if (!this.opened) {
        if (!this.openError) throw new CutoverError(ErrorCodes.INTERNAL, 'spool is not open');
        if (this.backoff.waiting) throw this.openError;
        await this.open();
        this.opts.logger.info({ dir: this.opts.dir }, 'spool usable again');
      }
      // Right after a disk failure, refuse without touching the disk: a full disk must cost nothing per event.
      if (op === 'append' && this.backoff.waiting && this.lastError) throw this.lastError;
      const errorsBefore = this.diskErrors;
      try {
        const result = await fn();
        if (this.lastError && this.diskErrors === errorsBefore) {
          this.lastError = undefined;
          this.backoff.succeeded();
        }
        return result;
      } catch (err) {
        if (isCutoverError(err)) throw err;
        throw this.noteDiskError(op, err);
      }
    };
    const next = this.chain.then(guarded, guarded);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async lock(): Promise<void> {
    const dir = path.resolve(this.opts.dir);
    this.lockToken = randomBytes(8).toString('hex');
    const me: LockOwner = { pid: process.pid, ...(await processIdentity(process.pid)), token: this.lockToken };
    for (let tries = 0; tries < 2; tries++) {
      try {
        await this.fs.writeFile(this.lockFile, JSON.stringify(me), 'wx');
        heldInThisProcess.add(dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = parseLock(await this.fs.readFile(this.lockFile).then((b) => b.toString('utf8'), () => ''));
      const written = await stat(this.lockFile).then((st) => st.mtimeMs, () => undefined);
      const alive = owner !== undefined && (owner.pid === process.pid ? heldInThisProcess.has(dir) : await holds(owner, written));
      if (alive) {
        throw new CutoverError(ErrorCodes.SPOOL_LOCKED, `spool directory ${this.opts.dir} is in use by process ${owner.pid}; give each sidecar its own spool.dir (or dataDir)`, {
          details: { dir: this.opts.dir, pid: owner.pid },
        });
      }
      this.opts.logger.warn({ dir: this.opts.dir, pid: owner?.pid }, 'removing a stale spool lock left by a process that is gone');
      await this.fs.rm(this.lockFile);
    }
    throw new CutoverError(ErrorCodes.SPOOL_LOCKED, `could not lock spool directory ${this.opts.dir}`);
  }

  private async unlock(): Promise<void> {
    heldInThisProcess.delete(path.resolve(this.opts.dir));
    // Never remove a lock another process took over after ours was judged stale.
    const owner = parseLock(await this.fs.readFile(this.lockFile).then((b) => b.toString('utf8'), () => ''));
    if (owner?.token === this.lockToken) await this.fs.rm(this.lockFile).catch(() => undefined);
  }

  private async load(): Promise<void> {
    const names = (await this.fs.readdir(this.opts.dir)).filter((n) => SEGMENT.test(n)).sort();
    let cursor: { segment?: string; offset?: number } = {};
    try {
      cursor = JSON.parse((await this.fs.readFile(this.cursorFile)).toString('utf8')) as typeof cursor;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // A torn cursor only costs duplicates: the head segment is resent from its start.
        this.opts.logger.warn({ err, file: this.cursorFile }, 'spool cursor unreadable; resending the head segment from its start');
      }
    }
    for (const name of names) {
      const file = path.join(this.opts.dir, name);
      const buf = await this.fs.readFile(file);
      // Bytes after the last newline are a torn write: not part of the segment.
      const size = buf.lastIndexOf(NEWLINE) + 1;
      const offset = cursor.segment === name && typeof cursor.offset === 'number' && cursor.offset <= size ? cursor.offset : 0;
      const pending = countLines(buf, offset, size);
      const segment: Segment = { name, firstSeq: Number(SEGMENT.exec(name)![1]), size, pending, offset };
      if (size < buf.length) this.opts.logger.warn({ segment: name, bytes: buf.length - size }, 'dropping a torn record at the end of a spool segment');
      const lastNl = size - 1;
      if (lastNl !== -1) {
        const prevNl = buf.lastIndexOf(NEWLINE, lastNl - 1);
        try {
          const last = JSON.parse(buf.subarray(prevNl + 1, lastNl).toString('utf8')) as { s?: number };
          if (typeof last.s === 'number') this.maxSeq = Math.max(this.maxSeq, last.s);
        } catch {
          // a corrupt last line is reported when it is read
        }
      }
      this.maxSeq = Math.max(this.maxSeq, segment.firstSeq);
      if (pending === 0) {
        await this.fs.rm(file);
        continue;
      }
      this.segments.push(segment);
      this.total += size;
      this.pendingCount += pending;
      this.pendingBytes += size - offset;
    }
    if (this.pendingCount > 0) {
      this.opts.logger.info({ dir: this.opts.dir, records: this.pendingCount, bytes: this.pendingBytes }, 'spool holds records from a previous run; they are sent when the bus is reachable');
    }
  }

  private async doAppend(records: readonly SpoolRecord[]): Promise<AppendResult> {
    if (records.length === 0) return { written: 0, dropped: [] };
    const lines: Buffer[] = [];
    let size = 0;
    let fit = 0;
    for (const record of records) {
      const line = Buffer.from(JSON.stringify({ s: record.seq, t: record.topic, m: record.message }) + '\n', 'utf8');
      if (this.total + size + line.length > this.opts.maxBytes) break;
      lines.push(line);
      size += line.length;
      fit++;
    }
    if (fit === 0) return { written: 0, dropped: records.slice(0) };
    const buf = lines.length === 1 ? lines[0]! : Buffer.concat(lines, size);
    const firstSeq = records[0]!.seq;

    if (firstSeq <= this.maxSeq) {
      // Older than something already spooled: its own segment, named so it sorts (and is read) first.
      await this.writeSegment(firstSeq, buf, fit);
    } else {
      if (!this.active || this.active.segment.size >= this.opts.segmentBytes) await this.rotate(firstSeq);
      const { segment, handle } = this.active!;
      try {
        await writeFully(handle, buf, segment.size);
        await handle.datasync();
      } catch (err) {
        const keptBytes = await this.keepWhole(segment, handle, lines, bytesWrittenBefore(err));
        if (keptBytes === 0) throw err;
        // The records that reached the disk whole are kept; the rest is reported dropped, and the spool backs off.
        this.noteDiskError('append', err);
        let kept = 0;
        for (let sum = 0; sum < keptBytes; kept++) sum += lines[kept]!.length;
        return this.counted(segment, records, kept, keptBytes);
      }
      // Counted only now: a write the disk did not finish is never reported as spooled.
      return this.counted(segment, records, fit, buf.length);
    }
    return this.counted(undefined, records, fit, buf.length);
  }

  private counted(segment: Segment | undefined, records: readonly SpoolRecord[], count: number, bytes: number): AppendResult {
    if (segment) {
      segment.size += bytes;
      segment.pending += count;
    }
    this.total += bytes;
    this.pendingBytes += bytes;
    this.pendingCount += count;
    this.maxSeq = Math.max(this.maxSeq, records[count - 1]!.seq);
    return { written: count, dropped: records.slice(count) };
  }

  /**
   * After a failed append of `lines`, of which `written` bytes reached the file: keeps the whole records
   * among them (cut, then fdatasync) and returns their bytes, or cuts back to before the append and returns 0.
   */
  private async keepWhole(segment: Segment, handle: SpoolFile, lines: readonly Buffer[], written: number): Promise<number> {
    let whole = 0;
    for (const line of lines) {
      if (whole + line.length > written) break;
      whole += line.length;
    }
    if (whole > 0) {
      try {
        await handle.truncate(segment.size + whole);
        await handle.datasync();
        return whole;
      } catch {
        // fall through: keep nothing of this append
      }
    }
    await this.cutBack(segment, handle);
    return 0;
  }

  private noteDiskError(op: SpoolOp, err: unknown): CutoverError {
    const typed = spoolDiskError(err, `spool ${op} failed in ${this.opts.dir}`);
    this.diskErrors++;
    this.opts.onError?.(op, spoolErrorReason(err), err);
    this.lastError = typed;
    this.backoff.failed();
    return typed;
  }

  /**
   * After a failed append, removes its partial bytes so the next append follows the last complete record.
   * When even that fails, the segment is sealed: nothing more is written to it, and reads stop at its
   * known size, so the stray bytes are never read in this process (after a restart they are at worst a
   * torn line or records sent twice).
   */
  private async cutBack(segment: Segment, handle: SpoolFile): Promise<void> {
    try {
      await handle.truncate(segment.size);
    } catch {
      await this.seal();
      if (segment.size === 0 && segment.pending === 0) await this.forgetSegment(segment);
    }
  }

  private async rotate(firstSeq: number): Promise<void> {
    await this.seal();
    const name = segmentName(firstSeq);
    const handle = await this.fs.open(path.join(this.opts.dir, name), fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_EXCL, 0o600);
    await syncDir(this.fs, this.opts.dir);
    const segment: Segment = { name, firstSeq, size: 0, pending: 0, offset: 0 };
    this.insert(segment);
    this.active = { segment, handle };
  }

  private async writeSegment(firstSeq: number, buf: Buffer, count: number): Promise<void> {
    // Two batches share a first sequence number only when a caller re-spools one: keep both.
    let name = segmentName(firstSeq);
    for (let n = 1; this.segments.some((s) => s.name === name); n++) name = segmentName(firstSeq).replace('.jsonl', `-${n}.jsonl`);
    const file = path.join(this.opts.dir, name);
    const handle = await this.fs.open(file, fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_EXCL, 0o600);
    try {
      await writeFully(handle, buf, 0);
      await handle.datasync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await this.fs.rm(file).catch(() => undefined);
      throw err;
    }
    await handle.close();
    await syncDir(this.fs, this.opts.dir);
    this.insert({ name, firstSeq, size: buf.length, pending: count, offset: 0 });
  }

  private insert(segment: Segment): void {
    this.segments.push(segment);
    this.segments.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private async seal(): Promise<void> {
    if (!this.active) return;
    const { handle } = this.active;
    this.active = undefined;
    await handle.close().catch(() => undefined);
  }

  private async doRead(max: number): Promise<SpoolBatch | null> {
    // Each pass returns a batch or consumes or removes a segment, so this loop always ends.
    for (;;) {
      const head = this.segments[0];
      if (!head) {
        this.pendingCount = this.pendingBytes = 0;
        return null;
      }
      if (this.pendingCount === 0) return null;
      // Appends go to a fresh segment while this one drains, so the reader never races a writer.
      if (this.active?.segment === head) await this.seal();
      if (this.cache?.name !== head.name) this.cache = { name: head.name, buf: await this.fs.readFile(path.join(this.opts.dir, head.name)) };
      const buf = this.cache.buf;
      // Only what this process counted: bytes past it belong to a write that failed.
      const end = Math.min(buf.length, head.size);
      const records: SpoolRecord[] = [];
      let pos = head.offset;
      let consumed = 0;
      while (records.length < max) {
        const nl = buf.indexOf(NEWLINE, pos);
        if (nl === -1 || nl >= end) break;
        const line = buf.subarray(pos, nl);
        pos = nl + 1;
        consumed++;
        try {
          const parsed = JSON.parse(line.toString('utf8')) as { s: number; t: string; m: BusMessage };
          records.push({ seq: parsed.s, topic: parsed.t, message: parsed.m });
        } catch (cause) {
          const offset = pos - line.length - 1;
          this.corruptRecords++;
          const err = new CutoverError(ErrorCodes.SPOOL_CORRUPT, `spool segment ${head.name} has a record at byte ${offset} that does not parse; it is skipped`, { cause });
          this.opts.logger.error({ err, segment: head.name, offset }, 'skipping a corrupt spool record');
        }
      }
      const exhausted = pos >= end || buf.indexOf(NEWLINE, pos) === -1 || buf.indexOf(NEWLINE, pos) >= end;
      if (exhausted && consumed < head.pending) {
        // The file holds fewer records than were counted into it: the disk lost some. Forget them loudly
        // rather than wait for records that will never appear.
        const missing = head.pending - consumed;
        this.lostRecords += missing;
        const err = new CutoverError(ErrorCodes.SPOOL_CORRUPT, `spool segment ${head.name} ends at byte ${buf.length}, short of the ${head.size} bytes written to it; ${missing} records are lost`);
        this.opts.logger.error({ err, segment: head.name, missing }, 'spool segment shorter than written');
        this.pendingCount = Math.max(0, this.pendingCount - missing);
        head.pending = consumed;
        pos = head.size;
      } else if (exhausted) {
        pos = head.size;
      }
      const batch: SpoolBatch = { records, token: { segment: head.name, endOffset: pos, count: consumed, bytes: pos - head.offset } };
      if (records.length > 0) return batch;
      // Nothing readable: consume it and look at the next segment.
      await this.doCommit(batch, true);
    }
  }

  private async doCommit(batch: SpoolBatch, force = false): Promise<void> {
    const { segment: name, endOffset, count, bytes } = batch.token;
    const segment = this.segments.find((s) => s.name === name);
    if (!segment || (endOffset <= segment.offset && !force)) return;
    segment.offset = Math.max(segment.offset, endOffset);
    segment.pending = Math.max(0, segment.pending - count);
    this.pendingCount = Math.max(0, this.pendingCount - count);
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes);
    if (segment.offset >= segment.size && this.active?.segment !== segment) {
      await this.forgetSegment(segment);
      await this.fs.rm(this.cursorFile);
      return;
    }
    // Atomic replace: a crash leaves the old cursor or the new one, never half of one.
    const tmp = this.cursorFile + '.tmp';
    await this.fs.writeFile(tmp, JSON.stringify({ segment: name, offset: segment.offset }), 'w');
    await this.fs.rename(tmp, this.cursorFile);
  }

  private async forgetSegment(segment: Segment): Promise<void> {
    this.segments = this.segments.filter((s) => s !== segment);
    this.total -= segment.size;
    this.pendingBytes = Math.max(0, this.pendingBytes - (segment.size - segment.offset));
    if (this.cache?.name === segment.name) this.cache = undefined;
    await this.fs.rm(path.join(this.opts.dir, segment.name));
  }
}

function parseLock(text: string): LockOwner | undefined {
  const trimmed = text.trim();
  // Older sidecars wrote the bare pid.
  if (/^\d+$/.test(trimmed)) return { pid: Number(trimmed) };
  try {
    const owner = JSON.parse(trimmed) as LockOwner;
    return Number.isInteger(owner.pid) && owner.pid > 0 ? owner : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process a lock names still holds it: alive, same boot, started when the lock says, and not
 * started after the lock file was written (which catches a recycled pid in a lock that names only a pid).
 */
async function holds(owner: LockOwner, lockWrittenMs: number | undefined): Promise<boolean> {
  if (!isAlive(owner.pid)) return false;
  const now = await processIdentity(owner.pid);
  if (owner.boot !== undefined && now.boot !== undefined && owner.boot !== now.boot) return false;
  if (owner.start !== undefined && now.start !== undefined && owner.start !== now.start) return false;
  // A second of slack: mtime and the start time are coarse, and a live holder must never be judged stale.
  if (lockWrittenMs !== undefined && now.startedAtMs !== undefined && now.startedAtMs > lockWrittenMs + 1_000) return false;
  return true;
}

/** Linux's USER_HZ: /proc start times are in these ticks, and it is 100 on every mainstream kernel. */
const CLOCK_TICKS = 100;

/** Boot id and process start time where /proc has them (Linux); empty elsewhere, which falls back to the pid. */
async function processIdentity(pid: number): Promise<{ start?: number; boot?: string; startedAtMs?: number }> {
  const [procStat, boot, sysStat] = await Promise.all([
    readFileNode(`/proc/${pid}/stat`, 'utf8').catch(() => undefined),
    readFileNode('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => undefined),
    readFileNode('/proc/stat', 'utf8').catch(() => undefined),
  ]);
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
  const fields = procStat?.slice(procStat.lastIndexOf(')') + 2).split(' ');
  const start = fields ? Number(fields[19]) : NaN;
  const btime = Number(/^btime (\d+)$/m.exec(sysStat ?? '')?.[1]);
  return {
    ...(Number.isFinite(start) ? { start } : {}),
    ...(boot ? { boot: boot.trim() } : {}),
    ...(Number.isFinite(start) && Number.isFinite(btime) ? { startedAtMs: btime * 1_000 + (start * 1_000) / CLOCK_TICKS } : {}),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Size of a file or 0 when missing; for tests and diagnostics. */
export async function fileSize(file: string): Promise<number> {
  return stat(file).then((s) => s.size, () => 0);
}
