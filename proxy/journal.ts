import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../src/logger.js';
import { DiskBackoff, spoolDiskError, spoolErrorReason, syncDir, writeFully, type SpoolErrorReason, type SpoolFile, type SpoolFs } from './spool-fs.js';
import type { SpoolRecord } from './spool-types.js';

export interface JournalOptions {
  dir: string;
  fs: SpoolFs;
  /** ms between fdatasyncs of the journal; 0 syncs after every write (`strict`). Writes never wait for it. */
  commitInterval: number;
  /** A journal file at or above this size is closed; closed files go once everything in them is settled. */
  segmentBytes: number;
  backoff: DiskBackoff;
  logger: Logger;
  onError?(reason: SpoolErrorReason, err: unknown): void;
}

const JOURNAL = /^wal-(\d{20})\.jsonl$/;
/** Bytes waiting for a write that does not return (a hung disk): past this, records go unjournaled instead of piling up. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
const NEWLINE = 0x0a;
/**
 * Least time between the starts of two journal writes. Each write is a round trip through libuv's thread
 * pool, which costs far more CPU than the bytes: at one write per request (a turn of the event loop per
 * call at moderate rates) the journal cost about 150 µs of CPU per shadowed call on the 2-core development
 * machine. Gathering at most this long bounds writes to 200 a second at a price of a few ms of records a
 * SIGKILL could lose.
 */
const MIN_WRITE_GAP_MS = 5;

interface JournalSegment {
  name: string;
  file: SpoolFile | undefined;
  size: number;
  /** Highest sequence number written to it. */
  lastSeq: number;
  /** Written since its last fdatasync. */
  dirty: boolean;
}

/**
 * The outbox's write-ahead log: every event the outbox accepts is appended here while it is published
 * from memory as before. Records are written as soon as the event loop is free, one write() for all
 * accepted since the last one, at most one write per MIN_WRITE_GAP_MS; fdatasync follows once per commit interval (`interval`) or right after every write
 * (`strict`, interval 0). Settling an event (the bus acknowledged it, the spool fsynced it, or it was
 * dropped and counted) moves a watermark — the lowest sequence number not yet settled — that is written
 * beside the records. After a crash, `recover` returns every journaled record at or above the last
 * watermark on disk; the spool takes them and sends them (at-least-once: those that did land on the bus
 * are sent twice).
 *
 * A killed process (SIGKILL, OOM) loses only what was accepted after the last write() began; a power loss
 * or kernel crash also loses what was written since the last fdatasync (one commit interval). The journal
 * never blocks or fails `add`: when the disk fails, records are counted as unjournaled (still published
 * from memory) and the journal tries again after a backoff.
 */
export class Journal {
  private readonly opts: JournalOptions;
  /** Lines waiting for the next write, as text: one UTF-8 conversion per write rather than one per record. */
  private pending: string[] = [];
  private pendingBytes = 0;
  private pendingMaxSeq = -1;
  /** Journaled sequence numbers in order; `head` is the first one not settled. */
  private order: number[] = [];
  private head = 0;
  private readonly settledAhead = new Set<number>();
  private highest = -1;
  private active: JournalSegment | undefined;
  private closedSegments: JournalSegment[] = [];
  private writtenWatermark = -1;
  private writeImmediate: NodeJS.Immediate | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  /** A write of new records held back to keep MIN_WRITE_GAP_MS after the previous one. */
  private gapTimer: NodeJS.Timeout | undefined;
  private lastWriteAt = -Infinity;
  private writing: Promise<void> | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private closed = false;
  private recoveredFiles: string[] = [];
  /** Journal files are numbered, not named by sequence: a file rotated while nothing settles must not clash. */
  private nextFile = 0;
  /** Records accepted while the journal could not write (they were published from memory only). */
  unjournaled = 0;

  constructor(options: JournalOptions) {
    this.opts = options;
  }

  /** Lowest sequence number not settled yet; every record below it is held elsewhere or counted. */
  get watermark(): number {
    return this.head < this.order.length ? this.order[this.head]! : this.highest + 1;
  }

  /** True while the last journal write succeeded. */
  get healthy(): boolean {
    return !this.opts.backoff.waiting;
  }

  /**
   * Reads what a previous run left: records at or above the last written watermark, in sequence order,
   * and the highest sequence number seen. Call `forget` once the records are safe elsewhere.
   */
  async recover(): Promise<{ records: SpoolRecord[]; maxSeq: number }> {
    const names = (await this.opts.fs.readdir(this.opts.dir)).filter((n) => JOURNAL.test(n)).sort();
    let watermark = -1;
    let maxSeq = -1;
    const bySeq = new Map<number, SpoolRecord>();
    for (const name of names) {
      const buf = await this.opts.fs.readFile(path.join(this.opts.dir, name));
      let pos = 0;
      // A line after the last newline is a write the crash cut short; it was never relied on.
      for (let nl = buf.indexOf(NEWLINE); nl !== -1; pos = nl + 1, nl = buf.indexOf(NEWLINE, pos)) {
        let line: { w?: number; s?: number; t?: string; m?: SpoolRecord['message'] };
        try {
          line = JSON.parse(buf.subarray(pos, nl).toString('utf8')) as typeof line;
        } catch {
          continue;
        }
        if (typeof line.w === 'number') watermark = Math.max(watermark, line.w);
        else if (typeof line.s === 'number' && typeof line.t === 'string' && line.m) {
          bySeq.set(line.s, { seq: line.s, topic: line.t, message: line.m });
          maxSeq = Math.max(maxSeq, line.s);
        }
      }
    }
    this.recoveredFiles = names;
    for (const name of names) this.nextFile = Math.max(this.nextFile, Number(JOURNAL.exec(name)![1]) + 1);
    const records = [...bySeq.values()].filter((r) => r.seq >= watermark).sort((a, b) => a.seq - b.seq);
    return { records, maxSeq };
  }

  /** Deletes the files `recover` read. */
  async forget(): Promise<void> {
    for (const name of this.recoveredFiles) await this.opts.fs.rm(path.join(this.opts.dir, name));
    this.recoveredFiles = [];
  }

  /** Journals one record; it must be settled later. Never blocks, never throws. */
  add(record: SpoolRecord): void {
    if (this.closed || this.opts.backoff.waiting || this.pendingBytes > MAX_PENDING_BYTES) {
      this.unjournaled++;
      return;
    }
    const line = JSON.stringify({ s: record.seq, t: record.topic, m: record.message }) + '\n';
    this.pending.push(line);
    // UTF-16 units: close enough to bytes for a bound on a hung disk.
    this.pendingBytes += line.length;
    this.pendingMaxSeq = record.seq;
    this.order.push(record.seq);
    this.highest = record.seq;
    record.journaled = true;
    this.scheduleWrite(true);
  }

  /** The record is held elsewhere (bus, spool) or was dropped and counted: a crash must not resend it. */
  settle(record: SpoolRecord): void {
    if (!record.journaled) return;
    record.journaled = false;
    if (this.order[this.head] !== record.seq) {
      this.settledAhead.add(record.seq);
      return;
    }
    this.head++;
    while (this.head < this.order.length && this.settledAhead.delete(this.order[this.head]!)) this.head++;
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    this.scheduleWrite(false);
  }

  /** Writes and syncs what is pending and removes the journal files when everything in them is settled. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.writeImmediate) clearImmediate(this.writeImmediate);
    this.writeImmediate = undefined;
    clearTimeout(this.writeTimer);
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    clearTimeout(this.syncTimer);
    await this.writing;
    if (this.pending.length > 0) await this.write();
    await this.syncing;
    if (this.active) this.closedSegments.push(this.active);
    this.active = undefined;
    const everythingSettled = this.watermark > this.highest;
    for (const segment of this.closedSegments) {
      if (!everythingSettled && segment.dirty) await segment.file?.datasync().catch(() => undefined);
      await segment.file?.close().catch(() => undefined);
      if (everythingSettled) await this.opts.fs.rm(path.join(this.opts.dir, segment.name)).catch(() => undefined);
    }
    this.closedSegments = [];
  }

  /**
   * Records are written as soon as the event loop is free and MIN_WRITE_GAP_MS passed since the previous
   * write began (a write() reaches the page cache, which a killed process cannot take back); only the
   * fdatasync waits for the commit interval. A watermark alone waits for the interval too: it only spares
   * duplicates.
   */
  private scheduleWrite(urgent: boolean): void {
    if (this.closed || this.writing) return;
    if (urgent) {
      if (this.writeImmediate || this.gapTimer) return;
      clearTimeout(this.writeTimer);
      this.writeTimer = undefined;
      const wait = this.lastWriteAt + MIN_WRITE_GAP_MS - performance.now();
      if (wait > 0) this.gapTimer = setTimeout(() => this.startWrite(), wait);
      else this.writeImmediate = setImmediate(() => this.startWrite());
      return;
    }
    if (this.writeTimer || this.writeImmediate || this.gapTimer || this.watermark === this.writtenWatermark) return;
    this.writeTimer = setTimeout(() => this.startWrite(), Math.max(this.opts.commitInterval, 10));
  }

  private startWrite(): void {
    this.writeImmediate = undefined;
    this.writeTimer = undefined;
    this.gapTimer = undefined;
    this.lastWriteAt = performance.now();
    this.writing = this.write().finally(() => {
      this.writing = undefined;
      if (this.pending.length > 0) this.scheduleWrite(true);
      else this.scheduleWrite(false);
    });
  }

  private async write(): Promise<void> {
    if (this.opts.backoff.waiting) {
      this.drop(this.pending.length);
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    const lines = this.pending;
    const maxSeq = this.pendingMaxSeq;
    this.pending = [];
    this.pendingBytes = 0;
    const records = lines.length;
    const watermark = this.watermark;
    if (watermark !== this.writtenWatermark) lines.push(`{"w":${watermark}}\n`);
    if (lines.length === 0) return;
    const buf = Buffer.from(lines.length === 1 ? lines[0]! : lines.join(''), 'utf8');
    let segment: JournalSegment | undefined;
    try {
      segment = this.active ?? (await this.openSegment());
      await writeFully(segment.file!, buf, segment.size);
      segment.size += buf.length;
      segment.lastSeq = Math.max(segment.lastSeq, maxSeq);
      this.writtenWatermark = watermark;
      this.opts.backoff.succeeded();
    } catch (err) {
      this.failed(err, records);
      if (segment) await this.abandon(segment);
      return;
    }
    if (records > 0) {
      segment.dirty = true;
      this.scheduleSync();
    }
    await this.housekeep();
  }

  /** `strict`: fdatasync right after each write (one at a time); `interval`: once per commit interval. */
  private scheduleSync(): void {
    if (this.syncTimer || this.closed) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    const run = (): void => {
      this.syncTimer = undefined;
      const segment = this.active;
      if (!segment?.file || !segment.dirty) return;
      segment.dirty = false;
      this.syncing = segment.file
        .datasync()
        .catch((err: unknown) => {
          segment.dirty = true;
          this.failed(err, 0);
        })
        .finally(() => {
          this.syncing = undefined;
          if (this.syncAgain) {
            this.syncAgain = false;
            this.scheduleSync();
          }
        });
    };
    if (this.opts.commitInterval === 0) run();
    else this.syncTimer = setTimeout(run, this.opts.commitInterval);
  }

  private failed(err: unknown, records: number): void {
    this.drop(records);
    this.opts.backoff.failed();
    this.opts.onError?.(spoolErrorReason(err), err);
    this.opts.logger.error({ err: spoolDiskError(err, `cannot write the spool journal in ${this.opts.dir}`), records }, 'spool journal write failed: events are published from memory only until it works again');
  }

  private drop(records: number): void {
    // Their sequence numbers stay in `order` and are settled as usual: the watermark stays exact.
    this.unjournaled += records;
  }

  private async openSegment(): Promise<JournalSegment> {
    const name = `wal-${String(this.nextFile++).padStart(20, '0')}.jsonl`;
    const file = await this.opts.fs.open(path.join(this.opts.dir, name), fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_EXCL, 0o600);
    await syncDir(this.opts.fs, this.opts.dir);
    this.active = { name, file, size: 0, lastSeq: -1, dirty: false };
    return this.active;
  }

  /** After a failed write: cut the file back to its last complete line, or stop using it if even that fails. */
  private async abandon(segment: JournalSegment): Promise<void> {
    try {
      await segment.file!.truncate(segment.size);
    } catch {
      if (this.active === segment) this.active = undefined;
      this.closedSegments.push(segment);
      await segment.file!.close().catch(() => undefined);
      segment.file = undefined;
    }
  }

  private async housekeep(): Promise<void> {
    if (this.active && this.active.size >= this.opts.segmentBytes) {
      const rotated = this.active;
      this.active = undefined;
      this.closedSegments.push(rotated);
      // Its records must be as durable as any other before the handle goes.
      await this.syncing;
      if (rotated.dirty) await rotated.file?.datasync().then(() => void (rotated.dirty = false), (err: unknown) => this.failed(err, 0));
      await rotated.file?.close().catch(() => undefined);
      rotated.file = undefined;
    }
    // Only what is on disk counts: a file may go once the written watermark is past its last record.
    const keep: JournalSegment[] = [];
    for (const segment of this.closedSegments) {
      if (segment.lastSeq < this.writtenWatermark) {
        await segment.file?.close().catch(() => undefined);
        await this.opts.fs.rm(path.join(this.opts.dir, segment.name)).catch(() => undefined);
      } else keep.push(segment);
    }
    this.closedSegments = keep;
  }
}
