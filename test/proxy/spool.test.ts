import { execFileSync, spawn } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../proxy/journal.js';
import { Spool, type SpoolOptions, type SpoolRecord } from '../../proxy/spool.js';
import { DiskBackoff, nodeSpoolFs, type SpoolFile, type SpoolFs } from '../../proxy/spool-fs.js';
import { ErrorCodes } from '../../src/errors.js';
import { pino } from 'pino';
import { silentLogger } from '../../src/logger.js';
import { waitFor } from '../helpers/wait-for.js';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { createRegistry } from '../../src/metrics.js';
import { request } from '../helpers/http.js';
import { MemoryBus } from '../helpers/memory-bus.js';

const dirs: string[] = [];
const spools: Spool[] = [];

afterEach(async () => {
  for (const s of spools.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'cutover-spool-'));
  dirs.push(d);
  return d;
}

async function openSpool(dir: string, opts: Partial<SpoolOptions> = {}): Promise<Spool> {
  const s = new Spool({ dir, maxBytes: 10_000_000, segmentBytes: 1_000_000, logger: silentLogger(), ...opts });
  await s.open();
  spools.push(s);
  return s;
}

function records(from: number, count: number, topic = 'commands.agent.a.b'): SpoolRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    seq: from + i,
    topic,
    message: { key: `k${(from + i) % 3}`, event: { specversion: '1.0' as const, id: `e${from + i}`, source: '/agents/a', type: 't', data: { n: from + i } }, headers: { h: 'v' } },
  }));
}

async function drainAll(s: Spool, batch = 7): Promise<number[]> {
  const seqs: number[] = [];
  for (;;) {
    const b = await s.read(batch);
    if (!b) return seqs;
    seqs.push(...b.records.map((r) => r.seq));
    await s.commit(b);
  }
}

describe('Spool', () => {
  it('returns what was appended, in order, and forgets it once committed', async () => {
    const s = await openSpool(await tempDir());
    await s.append(records(0, 10));
    await s.append(records(10, 5));
    expect(s.depth).toBe(15);
    const first = await s.read(4);
    expect(first!.records.map((r) => r.message.event.id)).toEqual(['e0', 'e1', 'e2', 'e3']);
    expect(first!.records[0]!.message).toEqual(records(0, 1)[0]!.message);
    // Not committed: read again from the same place.
    expect((await s.read(4))!.records[0]!.seq).toBe(0);
    await s.commit(first!);
    expect(s.depth).toBe(11);
    expect(await drainAll(s)).toEqual(Array.from({ length: 11 }, (_, i) => i + 4));
    expect(s.depth).toBe(0);
    expect(await s.read(10)).toBeNull();
  });

  it('survives a restart, resuming after the last committed batch', async () => {
    const dir = await tempDir();
    const s1 = await openSpool(dir);
    await s1.append(records(0, 20));
    const b = await s1.read(8);
    await s1.commit(b!);
    await s1.close();

    const s2 = await openSpool(dir);
    expect(s2.depth).toBe(12);
    expect(s2.lastSeq).toBe(19);
    expect(await drainAll(s2)).toEqual(Array.from({ length: 12 }, (_, i) => i + 8));
  });

  it('rotates segments and deletes drained ones', async () => {
    const dir = await tempDir();
    const s = await openSpool(dir, { segmentBytes: 600 });
    for (let i = 0; i < 10; i++) await s.append(records(i * 3, 3));
    const segments = (await readdir(dir)).filter((n) => n.startsWith('seg-'));
    expect(segments.length).toBeGreaterThan(2);
    expect(await drainAll(s, 5)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect((await readdir(dir)).filter((n) => n.startsWith('seg-'))).toEqual([]);
    expect(s.sizeOnDisk).toBe(0);
  });

  it('drops what does not fit under maxBytes and reports it', async () => {
    const s = await openSpool(await tempDir(), { maxBytes: 1_000, segmentBytes: 1_000 });
    const result = await s.append(records(0, 20));
    expect(result.written).toBeGreaterThan(0);
    expect(result.written + result.dropped.length).toBe(20);
    expect(result.dropped[0]!.seq).toBe(result.written);
    expect(s.sizeOnDisk).toBeLessThanOrEqual(1_000);
    expect((await s.append(records(20, 1))).dropped).toHaveLength(1);
  });

  it('reads an older batch appended late before newer records', async () => {
    const s = await openSpool(await tempDir());
    await s.append(records(10, 5)); // newer events overflowed first
    await s.append(records(0, 10)); // then an older in-flight batch failed
    await s.append(records(15, 5));
    expect(await drainAll(s)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('skips a torn record at the end of a segment (crash mid-write)', async () => {
    const dir = await tempDir();
    const s1 = await openSpool(dir);
    await s1.append(records(0, 3));
    await s1.close();
    const seg = (await readdir(dir)).find((n) => n.startsWith('seg-'))!;
    await appendFile(path.join(dir, seg), '{"s":3,"t":"x","m":{"key":nu');
    const s2 = await openSpool(dir);
    expect(await drainAll(s2)).toEqual([0, 1, 2]);
  });

  it('skips a record that does not parse with a CUTOVER_SPOOL_CORRUPT error, and keeps the records after it', async () => {
    const dir = await tempDir();
    const s1 = await openSpool(dir);
    await s1.append(records(0, 2));
    await s1.close();
    const seg = (await readdir(dir)).find((n) => n.startsWith('seg-'))!;
    await appendFile(path.join(dir, seg), 'not json at all\n');
    const lines: Array<{ err?: { code?: string }; msg?: string }> = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const s2 = new Spool({ dir, maxBytes: 10_000_000, segmentBytes: 1_000_000, logger });
    await s2.open();
    spools.push(s2);
    await s2.append(records(2, 2));
    expect(await drainAll(s2)).toEqual([0, 1, 2, 3]);
    expect(s2.corruptRecords).toBe(1);
    expect(lines.map((l) => [l.err?.code, l.msg])).toEqual([[ErrorCodes.SPOOL_CORRUPT, 'skipping a corrupt spool record']]);
  });

  it('refuses a directory another live spool holds, and takes over a stale lock', async () => {
    const dir = await tempDir();
    await openSpool(dir);
    await expect(openSpool(dir)).rejects.toMatchObject({ code: ErrorCodes.SPOOL_LOCKED });

    const other = await tempDir();
    await writeFile(path.join(other, 'LOCK'), '999999999');
    const s = await openSpool(other);
    expect(s.depth).toBe(0);
  });
});

const isRoot = process.getuid?.() === 0;

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/**
 * The real file system with faults injected at the file-handle layer: short writes, a byte budget after
 * which writes take nothing (or throw ENOSPC), EIO from fdatasync, an error from mkdir.
 */
function faultyFs() {
  const state = { writes: 0, halfWrites: false, budget: Infinity, enospcThrows: false, datasyncError: undefined as string | undefined, mkdirError: undefined as string | undefined };
  const fs: SpoolFs = {
    ...nodeSpoolFs,
    mkdir: async (dir) => {
      if (state.mkdirError) throw errno(state.mkdirError);
      return nodeSpoolFs.mkdir(dir);
    },
    open: async (file, flags, mode) => {
      const h = await nodeSpoolFs.open(file, flags, mode);
      const faulty: SpoolFile = {
        write: async (buf, offset, length, position) => {
          state.writes++;
          let n = state.halfWrites ? Math.max(1, Math.floor(length / 2)) : length;
          n = Math.min(n, state.budget);
          state.budget -= n;
          if (n === 0) {
            if (state.enospcThrows) throw errno('ENOSPC');
            return { bytesWritten: 0 };
          }
          return h.write(buf, offset, n, position);
        },
        datasync: async () => {
          if (state.datasyncError) throw errno(state.datasyncError);
          return h.datasync();
        },
        truncate: (length) => h.truncate(length),
        sync: () => h.sync(),
        close: () => h.close(),
      };
      return faulty;
    },
  };
  return { fs, state };
}

async function segmentLines(dir: string): Promise<number> {
  let n = 0;
  for (const name of (await readdir(dir)).filter((f) => f.startsWith('seg-'))) n += (await readFile(path.join(dir, name), 'utf8')).split('\n').length - 1;
  return n;
}

describe('Spool under disk faults', () => {
  it('loops on short writes: every record lands whole', async () => {
    const { fs, state } = faultyFs();
    state.halfWrites = true;
    const dir = await tempDir();
    const s = await openSpool(dir, { fs });
    await s.append(records(0, 20));
    expect(state.writes).toBeGreaterThan(2);
    expect(await segmentLines(dir)).toBe(20);
    expect(await drainAll(s)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('never counts a write the disk cut short: whole records kept, the rest cut back and reported, then backed off', async () => {
    const { fs, state } = faultyFs();
    const errors: string[] = [];
    const dir = await tempDir();
    const s = await openSpool(dir, { fs, backoff: 30, maxBackoff: 30, onError: (op, reason) => errors.push(`${op}:${reason}`) });
    await s.append(records(0, 5));
    state.budget = 400; // two records and a half fit, then the disk takes nothing
    const partial = await s.append(records(5, 16));
    expect(partial.written).toBe(2);
    expect(partial.dropped.map((r) => r.seq)).toEqual(Array.from({ length: 14 }, (_, i) => i + 7));
    expect(errors).toEqual(['append:short_write']);
    expect(s.depth).toBe(7);
    expect(s.healthy).toBe(false);
    expect(await segmentLines(dir)).toBe(7);

    // Nothing whole fits: the append fails, typed, and leaves no partial record behind. The spool refuses work
    // for the backoff after a disk error (30 ms here) before it touches the disk again: let it pass.
    await new Promise((r) => setTimeout(r, 40));
    state.budget = 50;
    await expect(s.append(records(21, 3))).rejects.toMatchObject({ code: ErrorCodes.SPOOL_FULL, details: { reason: 'short_write' } });
    expect(await segmentLines(dir)).toBe(7);
    expect(s.depth).toBe(7);

    // Within the backoff: refused without touching the disk.
    const writes = state.writes;
    await expect(s.append(records(21, 1))).rejects.toMatchObject({ code: ErrorCodes.SPOOL_FULL });
    expect(state.writes).toBe(writes);

    state.budget = Infinity;
    await waitFor(async () => (await s.append(records(30, 3)).catch(() => undefined)) !== undefined);
    expect(s.healthy).toBe(true);
    expect(await drainAll(s)).toEqual([0, 1, 2, 3, 4, 5, 6, 30, 31, 32]);
    expect(await s.read(10)).toBeNull();
  });

  it('reports ENOSPC as CUTOVER_SPOOL_FULL and EIO as CUTOVER_SPOOL_UNWRITABLE', async () => {
    const { fs, state } = faultyFs();
    const s = await openSpool(await tempDir(), { fs, backoff: 1, maxBackoff: 1 });
    state.budget = 0;
    state.enospcThrows = true;
    await expect(s.append(records(0, 3))).rejects.toMatchObject({ code: ErrorCodes.SPOOL_FULL, details: { reason: 'no_space', errno: 'ENOSPC' } });
    state.budget = Infinity;
    state.datasyncError = 'EIO';
    await waitFor(async () => {
      const err = await s.append(records(3, 3)).then(() => undefined, (e: { code: string; details?: { reason?: string } }) => e);
      return err?.code === ErrorCodes.SPOOL_UNWRITABLE && err.details?.reason === 'io_error';
    });
    expect(s.depth).toBe(0);
    state.datasyncError = undefined;
    await waitFor(async () => (await s.append(records(6, 2)).catch(() => undefined)) !== undefined);
    expect(await drainAll(s)).toEqual([6, 7]);
  });

  it('a read-only directory is CUTOVER_SPOOL_UNWRITABLE naming the cause, and the spool opens once it is writable', async () => {
    const { fs, state } = faultyFs();
    state.mkdirError = 'EROFS';
    const s = new Spool({ dir: path.join(await tempDir(), 'spool'), maxBytes: 1_000_000, segmentBytes: 100_000, logger: silentLogger(), fs, backoff: 20, maxBackoff: 20 });
    spools.push(s);
    await expect(s.open()).rejects.toMatchObject({ code: ErrorCodes.SPOOL_UNWRITABLE, message: expect.stringContaining('read-only'), details: { reason: 'read_only', errno: 'EROFS' } });
    await expect(s.append(records(0, 1))).rejects.toMatchObject({ code: ErrorCodes.SPOOL_UNWRITABLE });
    state.mkdirError = undefined;
    await waitFor(async () => (await s.append(records(0, 2)).catch(() => undefined)) !== undefined);
    expect(await drainAll(s)).toEqual([0, 1]);
  });

  it.skipIf(!isRoot)('on a real read-only file system (tmpfs mounted ro; needs root)', async () => {
    const mnt = await tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k,ro', 'tmpfs', mnt]);
    try {
      const s = new Spool({ dir: path.join(mnt, 'spool'), maxBytes: 1_000_000, segmentBytes: 100_000, logger: silentLogger() });
      spools.push(s);
      await expect(s.open()).rejects.toMatchObject({ code: ErrorCodes.SPOOL_UNWRITABLE, details: { errno: 'EROFS' } });
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it.skipIf(!isRoot)('on a real nearly full file system (128 KiB tmpfs; needs root): acknowledged records only, all read back', async () => {
    const mnt = await tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', mnt]);
    try {
      const dir = path.join(mnt, 'spool');
      await mkdir(dir);
      const filler = path.join(mnt, 'filler');
      await writeFile(filler, Buffer.alloc(128 * 1024 - 16 * 1024)).catch(() => undefined);
      const s = await openSpool(dir, { backoff: 10, maxBackoff: 10, durability: 'none' });
      const big = (from: number, count: number): SpoolRecord[] => records(from, count).map((r) => ({ ...r, message: { ...r.message, event: { ...r.message.event, data: { pad: 'x'.repeat(900) } } } }));
      const acknowledged: number[] = [];
      let failures = 0;
      for (let i = 0; i < 100; i += 16) {
        await s.append(big(i, 16)).then(
          (r) => {
            acknowledged.push(...Array.from({ length: r.written }, (_, k) => i + k));
            if (r.dropped.length > 0) failures++;
          },
          (err: { code: string }) => {
            expect(err.code).toBe(ErrorCodes.SPOOL_FULL);
            failures++;
          },
        );
        // Past the 20 ms disk backoff now and then, so some appends reach the full disk again.
        await new Promise((r) => setTimeout(r, 15));
      }
      expect(failures).toBeGreaterThan(0);
      expect(s.depth).toBe(acknowledged.length);
      expect(await segmentLines(dir)).toBe(acknowledged.length);
      await rm(filler);
      await waitFor(async () => (await s.append(big(200, 4)).catch(() => undefined)) !== undefined);
      acknowledged.push(200, 201, 202, 203);
      expect(await drainAll(s)).toEqual(acknowledged);
      await s.close();
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe('Spool lock', () => {
  it('takes over a lock whose pid now belongs to another process (recycled pid)', async () => {
    const dir = await tempDir();
    // pid 1 is alive, but it is not the process that wrote this lock: its start time differs.
    await writeFile(path.join(dir, 'LOCK'), JSON.stringify({ pid: 1, start: 1, token: 'gone' }));
    expect((await openSpool(dir)).depth).toBe(0);

    // A bare-pid lock (older sidecars) written before that pid's process started cannot be its own.
    const legacy = await tempDir();
    await writeFile(path.join(legacy, 'LOCK'), '1');
    const longAgo = new Date(Date.now() - 400 * 86_400_000);
    await utimes(path.join(legacy, 'LOCK'), longAgo, longAgo);
    expect((await openSpool(legacy)).depth).toBe(0);
  });

  it('refuses a directory a live sidecar process holds', async () => {
    const dir = await tempDir();
    const script = `const { Spool } = await import('./proxy/spool.ts'); const { silentLogger } = await import('./src/logger.ts');
      const s = new Spool({ dir: ${JSON.stringify(dir)}, maxBytes: 1e6, segmentBytes: 1e5, logger: silentLogger() }); await s.open(); console.log('locked'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: path.resolve(import.meta.dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await waitFor(() => out.includes('locked'), { timeoutMs: 30_000 });
      await expect(openSpool(dir)).rejects.toMatchObject({ code: ErrorCodes.SPOOL_LOCKED, details: { pid: child.pid } });
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('Journal', () => {
  const journalOpts = (dir: string, fs: SpoolFs = nodeSpoolFs) => ({ dir, fs, commitInterval: 5, segmentBytes: 1_000_000, backoff: new DiskBackoff(20, 20), logger: silentLogger() });

  it('after a crash, gives back every record not settled (and maybe a few that were)', async () => {
    const dir = await tempDir();
    const j = new Journal(journalOpts(dir));
    await j.recover();
    const recs = records(0, 10);
    for (const r of recs) j.add(r);
    for (const i of [0, 1, 2, 3, 5]) j.settle(recs[i]!);
    expect(j.watermark).toBe(4);
    await waitFor(async () => (await readdir(dir)).some((n) => n.startsWith('wal-')) && (await readFile(path.join(dir, (await readdir(dir)).find((n) => n.startsWith('wal-'))!), 'utf8')).includes('{"w":4}'));
    // No close: the process died here.
    const after = new Journal(journalOpts(dir));
    const { records: back, maxSeq } = await after.recover();
    expect(maxSeq).toBe(9);
    expect(back.map((r) => r.seq)).toEqual([4, 5, 6, 7, 8, 9]);
    await after.forget();
    expect((await readdir(dir)).filter((n) => n.startsWith('wal-'))).toEqual([]);
  });

  it('a clean close removes a settled journal and keeps one that is not', async () => {
    const dir = await tempDir();
    const wal = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith('wal-'));
    const settled = new Journal(journalOpts(dir));
    await settled.recover();
    const recs = records(0, 3);
    for (const r of recs) settled.add(r);
    for (const r of recs) settled.settle(r);
    await settled.close();
    expect(await wal()).toEqual([]);

    const unsettled = new Journal(journalOpts(dir));
    await unsettled.recover();
    for (const r of records(3, 2)) unsettled.add(r);
    await unsettled.close();
    expect((await wal()).length).toBe(1);
    expect((await new Journal(journalOpts(dir)).recover()).records.map((r) => r.seq)).toEqual([3, 4]);
  });

  it('a spool with durability moves what the journal held into the spool on open', async () => {
    const dir = await tempDir();
    const j = new Journal(journalOpts(dir));
    await j.recover();
    for (const r of records(0, 4)) j.add(r);
    await waitFor(async () => (await readdir(dir)).some((n) => n.startsWith('wal-')) && (await segmentLinesOf(dir, 'wal-')) === 4);
    const s = await openSpool(dir, { durability: 'interval' });
    expect(s.depth).toBe(4);
    expect(s.lastSeq).toBe(3);
    expect((await readdir(dir)).filter((n) => n.startsWith('wal-'))).toEqual([]);
    expect(await drainAll(s)).toEqual([0, 1, 2, 3]);
  });

  it('a journal that cannot write counts what it missed and never throws', async () => {
    const { fs, state } = faultyFs();
    state.budget = 0;
    state.enospcThrows = true;
    const reasons: string[] = [];
    const j = new Journal({ ...journalOpts(await tempDir(), fs), backoff: new DiskBackoff(60_000, 60_000), onError: (reason) => reasons.push(reason) });
    await j.recover();
    for (const r of records(0, 5)) j.add(r);
    await waitFor(() => j.unjournaled === 5);
    expect(j.healthy).toBe(false);
    expect(reasons).toEqual(['no_space']);
    j.add(records(5, 1)[0]!); // within the backoff: not even tried
    expect(j.unjournaled).toBe(6);
    await j.close();
  });

  it('a failing fdatasync is reported and marks the journal unhealthy', async () => {
    const { fs, state } = faultyFs();
    state.datasyncError = 'EIO';
    const reasons: string[] = [];
    const j = new Journal({ ...journalOpts(await tempDir(), fs), backoff: new DiskBackoff(60_000, 60_000), onError: (reason) => reasons.push(reason) });
    await j.recover();
    for (const r of records(0, 5)) j.add(r);
    await waitFor(() => reasons.length > 0);
    expect(reasons[0]).toBe('io_error');
    expect(j.healthy).toBe(false);
    await j.close();
  });
});

async function segmentLinesOf(dir: string, prefix: string): Promise<number> {
  let n = 0;
  for (const name of (await readdir(dir)).filter((f) => f.startsWith(prefix))) n += (await readFile(path.join(dir, name), 'utf8')).split('\n').filter((l) => l.startsWith('{"s"')).length;
  return n;
}

describe('a sidecar whose spool cannot open', () => {
  it('starts, forwards and publishes from memory, and says so in its metrics', async () => {
    const dir = await tempDir();
    // A file where the spool's directory should be: mkdir fails (ENOTDIR), as under a read-only mount.
    await writeFile(path.join(dir, 'not-a-dir'), '');
    const agent = await startInventory();
    const bus = new MemoryBus();
    const registry = createRegistry();
    const flow = { name: 'inventory.reserve', match: { method: 'POST' as const, path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow' as const };
    const sidecar = await startSidecar(
      { agent: 'inventory', listen: '127.0.0.1:0', upstream: agent.url, admin: { listen: '127.0.0.1:0', auth: false }, bus: { kind: 'embedded', path: path.join(dir, 'bus.db') }, dataDir: dir, spool: { dir: path.join(dir, 'not-a-dir', 'spool') }, flows: [flow] },
      { registry, bus },
    );
    try {
      const res = await request(sidecar.data.url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1 }) });
      expect(res.status).toBe(201);
      await waitFor(() => bus.messages('commands.agent.inventory.reserve').length === 1);
      const metrics = await registry.metrics();
      expect(metrics).toContain('cutover_sidecar_spool_healthy 0');
      expect(metrics).toMatch(/cutover_sidecar_spool_errors_total\{op="open",reason="missing"\} [1-9]/);
    } finally {
      await sidecar.close();
      await agent.close();
    }
  });
});
