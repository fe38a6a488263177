import { appendFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolRecord } from '../../proxy/spool.js';
import { ErrorCodes } from '../../src/errors.js';
import { pino } from 'pino';
import { silentLogger } from '../../src/logger.js';

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

async function openSpool(dir: string, opts: { maxBytes?: number; segmentBytes?: number } = {}): Promise<Spool> {
  const s = new Spool({ dir, maxBytes: opts.maxBytes ?? 10_000_000, segmentBytes: opts.segmentBytes ?? 1_000_000, logger: silentLogger() });
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
