import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { CutoverError, ErrorCodes } from '../src/errors.js';

/** The calls the spool and the journal make on an open file: what a fault-injecting test replaces. */
export interface SpoolFile {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The file system as the spool sees it. Injectable (SpoolOptions.fs) so tests can return short writes,
 * ENOSPC or EIO from the file-handle layer without a broken disk.
 */
export interface SpoolFs {
  open(file: string, flags: number | string, mode?: number): Promise<SpoolFile>;
  mkdir(dir: string): Promise<unknown>;
  readdir(dir: string): Promise<string[]>;
  readFile(file: string): Promise<Buffer>;
  /** Whole-file write for small files (lock, cursor); not used for records. */
  writeFile(file: string, data: string, flag: 'w' | 'wx'): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  rm(file: string): Promise<void>;
}

export const nodeSpoolFs: SpoolFs = {
  open: (file, flags, mode) => open(file, flags, mode),
  mkdir: (dir) => mkdirWithCause(dir),
  readdir: (dir) => readdir(dir),
  readFile: (file) => readFile(file),
  writeFile: (file, data, flag) => writeFile(file, data, { flag, mode: 0o600 }),
  rename: (from, to) => rename(from, to),
  rm: (file) => rm(file, { force: true }),
};

/**
 * `mkdir -p` that names the real cause: Node's recursive mkdir reports ENOENT when the parent exists but
 * is read-only, so the failure is retried without recursion to get EROFS or EACCES from the kernel.
 */
async function mkdirWithCause(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const direct = await mkdir(dir, { mode: 0o700 }).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    if (direct === undefined) return;
    throw direct.code === 'ENOENT' || direct.code === 'EEXIST' ? err : direct;
  }
}

/** Why a spool operation failed, as the `reason` label of cutover_sidecar_spool_errors_total. */
export type SpoolErrorReason = 'no_space' | 'short_write' | 'io_error' | 'read_only' | 'permission' | 'missing' | 'other';

/** What the spool was doing when the disk failed, as the `op` label. */
export type SpoolOp = 'open' | 'append' | 'read' | 'commit' | 'journal';

const REASONS: Record<string, SpoolErrorReason> = {
  ENOSPC: 'no_space',
  EDQUOT: 'no_space',
  EFBIG: 'no_space',
  EIO: 'io_error',
  EROFS: 'read_only',
  EACCES: 'permission',
  EPERM: 'permission',
  ENOENT: 'missing',
  ENOTDIR: 'missing',
};

/** A write that made no progress: the file system took nothing, which is what a full disk looks like. */
const SHORT_WRITE = 'ESHORTWRITE';

export function spoolErrorReason(err: unknown): SpoolErrorReason {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === SHORT_WRITE) return 'short_write';
  return (code && REASONS[code]) || 'other';
}

/**
 * Turns a file-system error into the typed error callers match: CUTOVER_SPOOL_FULL when the disk has no
 * room (retrying later may work), CUTOVER_SPOOL_UNWRITABLE for everything else (read-only, permissions,
 * I/O errors). The errno and path stay in `details` and `cause`.
 */
export function spoolDiskError(err: unknown, what: string): CutoverError {
  if (err instanceof CutoverError) return err;
  const reason = spoolErrorReason(err);
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const code = reason === 'no_space' || reason === 'short_write' ? ErrorCodes.SPOOL_FULL : ErrorCodes.SPOOL_UNWRITABLE;
  const hint = HINTS[reason];
  return new CutoverError(code, `${what}: ${(err as Error | undefined)?.message ?? String(err)}${hint ? ` (${hint})` : ''}`, {
    cause: err,
    retriable: true,
    details: { reason, ...(errno ? { errno } : {}) },
  });
}

const HINTS: Partial<Record<SpoolErrorReason, string>> = {
  no_space: 'the file system is full: free space or move spool.dir',
  short_write: 'the file system took only part of a write, as it does when full',
  read_only: 'the file system is read-only: point spool.dir (or dataDir) at a writable one',
  permission: 'the sidecar may not write there: fix the permissions or point spool.dir elsewhere',
  io_error: 'the disk reported an I/O error',
};

/**
 * Writes all of `buf` at `position`, looping on short writes (POSIX allows them, and a nearly full file
 * system returns them). A write that makes no progress at all fails, so a full disk never spins here. A
 * failure carries how many bytes did land (`bytesWrittenBefore`).
 */
export async function writeFully(file: SpoolFile, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    let bytesWritten: number;
    try {
      ({ bytesWritten } = await file.write(buf, done, buf.length - done, position + done));
    } catch (err) {
      throw Object.assign(err as Error, { bytesWritten: done });
    }
    if (bytesWritten <= 0) {
      throw Object.assign(new Error(`write made no progress after ${done} of ${buf.length} bytes`), { code: SHORT_WRITE, bytesWritten: done });
    }
    done += bytesWritten;
  }
}

/** How many bytes of a failed `writeFully` did reach the file. */
export function bytesWrittenBefore(err: unknown): number {
  const n = (err as { bytesWritten?: unknown } | undefined)?.bytesWritten;
  return typeof n === 'number' ? n : 0;
}

/** Doubling wait between attempts on a failing disk, reset by the first success. */
export class DiskBackoff {
  private until = 0;
  private delay: number;

  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {
    this.delay = min;
  }

  /** True while a recent failure says not to touch the disk yet. */
  get waiting(): boolean {
    return Date.now() < this.until;
  }

  failed(): void {
    this.until = Date.now() + this.delay;
    this.delay = Math.min(this.max, this.delay * 2);
  }

  succeeded(): void {
    this.until = 0;
    this.delay = this.min;
  }
}

/** Makes a new file's directory entry durable too, not only its bytes. Best effort: some file systems refuse. */
export async function syncDir(fs: SpoolFs, dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => undefined);
  await handle.close().catch(() => undefined);
}
