import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { BusMessage } from '../src/bus/types.js';
import { CutoverError, ErrorCodes } from '../src/errors.js';
import type { Logger } from '../src/logger.js';

/** One spooled message: its publish sequence number, its topic and the message itself. */
export interface SpoolRecord {
  seq: number;
  topic: string;
  message: BusMessage;
}

export interface SpoolOptions {
  dir: string;
  /** Cap on the spool's files together; appends past it are dropped (and reported to the caller). */
  maxBytes: number;
  /** A segment at or above this size is closed and the next append starts a new one. */
  segmentBytes: number;
  logger: Logger;
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
  /** Bytes in the file. */
  size: number;
  /** Complete records in the file not yet consumed. */
  pending: number;
  /** Offset of the first unconsumed byte. */
  offset: number;
}

const SEGMENT = /^seg-(\d{20})(?:-\d+)?\.jsonl$/;
const NEWLINE = 0x0a;
const heldInThisProcess = new Set<string>();

function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(20, '0')}.jsonl`;
}

function countLines(buf: Buffer, from = 0): number {
  let n = 0;
  for (let i = buf.indexOf(NEWLINE, from); i !== -1; i = buf.indexOf(NEWLINE, i + 1)) n++;
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
 * Every operation runs on one internal chain, so appends, reads and commits never interleave.
 */
export class Spool {
  private readonly opts: SpoolOptions;
  private segments: Segment[] = [];
  private active: { segment: Segment; handle: FileHandle } | undefined;
  private cache: { name: string; buf: Buffer } | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private total = 0;
  private pendingCount = 0;
  private pendingBytes = 0;
  private maxSeq = -1;
  private opened = false;
  private closed = false;
  private readonly cursorFile: string;
  /** Records skipped because they did not parse (each logged as CUTOVER_SPOOL_CORRUPT). */
  corruptRecords = 0;
  private readonly lockFile: string;

  constructor(options: SpoolOptions) {
    this.opts = options;
    this.cursorFile = path.join(options.dir, 'cursor.json');
    this.lockFile = path.join(options.dir, 'LOCK');
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

  /** Creates the directory, takes the lock and loads what a previous run left. */
  async open(): Promise<void> {
    if (this.opened) return;
    await mkdir(this.opts.dir, { recursive: true });
    await this.lock();
    try {
      await this.load();
    } catch (err) {
      await this.unlock();
      throw err;
    }
    this.opened = true;
  }

  /** Appends records (in order). Resolves once they are on disk (fdatasync). */
  append(records: readonly SpoolRecord[]): Promise<AppendResult> {
    return this.run(() => this.doAppend(records));
  }

  /** Reads up to `max` records from the head, or null when the spool is empty. */
  read(max: number): Promise<SpoolBatch | null> {
    return this.run(() => this.doRead(max));
  }

  /** Marks a batch sent: its bytes are released and the cursor moves past it. */
  commit(batch: SpoolBatch): Promise<void> {
    return this.run(() => this.doCommit(batch));
  }

  /** Closes the active segment and releases the lock. What is spooled stays for the next run. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain.catch(() => undefined);
    if (this.active) {
      await this.active.handle.close().catch(() => undefined);
      this.active = undefined;
    }
    if (this.opened) await this.unlock();
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new CutoverError(ErrorCodes.INTERNAL, 'spool is closed'));
    if (!this.opened) return Promise.reject(new CutoverError(ErrorCodes.INTERNAL, 'spool is not open'));
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async lock(): Promise<void> {
    const dir = path.resolve(this.opts.dir);
    for (let tries = 0; tries < 2; tries++) {
      try {
        await writeFile(this.lockFile, String(process.pid), { flag: 'wx' });
        heldInThisProcess.add(dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number.parseInt(await readFile(this.lockFile, 'utf8').catch(() => ''), 10);
      const alive = pid === process.pid ? heldInThisProcess.has(dir) : Number.isFinite(pid) && pid > 0 && isAlive(pid);
      if (alive) {
        throw new CutoverError(ErrorCodes.SPOOL_LOCKED, `spool directory ${this.opts.dir} is in use by process ${pid}; give each sidecar its own spool.dir (or dataDir)`, {
          details: { dir: this.opts.dir, pid },
        });
      }
      this.opts.logger.warn({ dir: this.opts.dir, pid }, 'removing a stale spool lock left by a process that is gone');
      await rm(this.lockFile, { force: true });
    }
    throw new CutoverError(ErrorCodes.SPOOL_LOCKED, `could not lock spool directory ${this.opts.dir}`);
  }

  private async unlock(): Promise<void> {
    heldInThisProcess.delete(path.resolve(this.opts.dir));
    await rm(this.lockFile, { force: true }).catch(() => undefined);
  }

  private async load(): Promise<void> {
    const names = (await readdir(this.opts.dir)).filter((n) => SEGMENT.test(n)).sort();
    let cursor: { segment?: string; offset?: number } = {};
    try {
      cursor = JSON.parse(await readFile(this.cursorFile, 'utf8')) as typeof cursor;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // A torn cursor only costs duplicates: the head segment is resent from its start.
        this.opts.logger.warn({ err, file: this.cursorFile }, 'spool cursor unreadable; resending the head segment from its start');
      }
    }
    for (const name of names) {
      const file = path.join(this.opts.dir, name);
      const buf = await readFile(file);
      const offset = cursor.segment === name && typeof cursor.offset === 'number' && cursor.offset <= buf.length ? cursor.offset : 0;
      const pending = countLines(buf, offset);
      const segment: Segment = { name, firstSeq: Number(SEGMENT.exec(name)![1]), size: buf.length, pending, offset };
      const lastNl = buf.lastIndexOf(NEWLINE);
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
      if (pending === 0 && offset >= buf.length) {
        await rm(file, { force: true });
        continue;
      }
      this.segments.push(segment);
      this.total += buf.length;
      this.pendingCount += pending;
      this.pendingBytes += buf.length - offset;
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
    const dropped = records.slice(fit);
    if (fit === 0) return { written: 0, dropped };
    const buf = lines.length === 1 ? lines[0]! : Buffer.concat(lines, size);
    const firstSeq = records[0]!.seq;
    const lastSeq = records[fit - 1]!.seq;

    if (firstSeq <= this.maxSeq) {
      // Older than something already spooled: its own segment, named so it sorts (and is read) first.
      await this.writeSegment(firstSeq, buf, fit);
    } else {
      if (!this.active || this.active.segment.size >= this.opts.segmentBytes) await this.rotate(firstSeq);
      const { segment, handle } = this.active!;
      await handle.write(buf, 0, buf.length, segment.size);
      await handle.datasync();
      segment.size += buf.length;
      segment.pending += fit;
    }
    this.total += buf.length;
    this.pendingBytes += buf.length;
    this.pendingCount += fit;
    this.maxSeq = Math.max(this.maxSeq, lastSeq);
    return { written: fit, dropped };
  }

  private async rotate(firstSeq: number): Promise<void> {
    await this.seal();
    const name = segmentName(firstSeq);
    const handle = await open(path.join(this.opts.dir, name), fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_EXCL, 0o600);
    await this.syncDir();
    const segment: Segment = { name, firstSeq, size: 0, pending: 0, offset: 0 };
    this.insert(segment);
    this.active = { segment, handle };
  }

  private async writeSegment(firstSeq: number, buf: Buffer, count: number): Promise<void> {
    // Two batches share a first sequence number only when a caller re-spools one: keep both.
    let name = segmentName(firstSeq);
    for (let n = 1; this.segments.some((s) => s.name === name); n++) name = segmentName(firstSeq).replace('.jsonl', `-${n}.jsonl`);
    const handle = await open(path.join(this.opts.dir, name), fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_EXCL, 0o600);
    try {
      await handle.write(buf, 0, buf.length, 0);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await this.syncDir();
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
    await handle.close();
  }

  private async syncDir(): Promise<void> {
    // The new file's directory entry must survive a crash too, not only its bytes.
    const dir = await open(this.opts.dir, fsConstants.O_RDONLY).catch(() => undefined);
    if (!dir) return;
    await dir.sync().catch(() => undefined);
    await dir.close();
  }

  private async doRead(max: number): Promise<SpoolBatch | null> {
    for (;;) {
      const head = this.segments[0];
      if (!head || this.pendingCount === 0) return null;
      // Appends go to a fresh segment while this one drains, so the reader never races a writer.
      if (this.active?.segment === head) await this.seal();
      if (this.cache?.name !== head.name) this.cache = { name: head.name, buf: await readFile(path.join(this.opts.dir, head.name)) };
      const buf = this.cache.buf;
      const records: SpoolRecord[] = [];
      let pos = head.offset;
      let consumed = 0;
      while (records.length < max) {
        const nl = buf.indexOf(NEWLINE, pos);
        if (nl === -1) break;
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
      if (pos >= buf.length || buf.indexOf(NEWLINE, pos) === -1) {
        // Whatever follows the last newline is a torn write from a crash: it was never acknowledged.
        if (pos < buf.length) this.opts.logger.warn({ segment: head.name, bytes: buf.length - pos }, 'dropping a torn record at the end of a spool segment');
        pos = buf.length;
      }
      const batch: SpoolBatch = { records, token: { segment: head.name, endOffset: pos, count: consumed, bytes: pos - head.offset } };
      if (records.length > 0) return batch;
      // Only corrupt lines: consume them and look at the next segment.
      await this.doCommit(batch);
    }
  }

  private async doCommit(batch: SpoolBatch): Promise<void> {
    const { segment: name, endOffset, count, bytes } = batch.token;
    const segment = this.segments.find((s) => s.name === name);
    if (!segment || endOffset <= segment.offset) return;
    segment.offset = endOffset;
    segment.pending = Math.max(0, segment.pending - count);
    this.pendingCount = Math.max(0, this.pendingCount - count);
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes);
    if (segment.offset >= segment.size && this.active?.segment !== segment) {
      this.segments = this.segments.filter((s) => s !== segment);
      this.total -= segment.size;
      if (this.cache?.name === name) this.cache = undefined;
      await rm(path.join(this.opts.dir, name), { force: true });
      await rm(this.cursorFile, { force: true });
      return;
    }
    // Atomic replace: a crash leaves the old cursor or the new one, never half of one.
    const tmp = this.cursorFile + '.tmp';
    await writeFile(tmp, JSON.stringify({ segment: name, offset: endOffset }));
    await rename(tmp, this.cursorFile);
  }
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
