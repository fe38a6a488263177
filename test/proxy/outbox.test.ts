import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { publisherSchema } from '../../src/config/sidecar.js';
import { Outbox, type OutboxHooks } from '../../proxy/outbox.js';
import { Spool, type SpoolOptions } from '../../proxy/spool.js';
import type { BusMessage } from '../../src/bus/types.js';
import { silentLogger } from '../../src/logger.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  bus: MemoryBus;
  spool: Spool;
  outbox: Outbox;
  dir: string;
  dropped: Record<string, number>;
}

async function setup(config: z.input<typeof publisherSchema> = {}, spoolOpts: Partial<SpoolOptions> = {}, bus = new MemoryBus()): Promise<Setup> {
  const dir = spoolOpts.dir ?? (await mkdtemp(path.join(tmpdir(), 'cutover-outbox-')));
  if (!spoolOpts.dir) cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const spool = new Spool({ maxBytes: 50_000_000, segmentBytes: 1_000_000, logger: silentLogger(), backoff: 20, maxBackoff: 100, ...spoolOpts, dir });
  await spool.open();
  const dropped: Record<string, number> = {};
  const hooks: OutboxHooks = { dropped: (reason, n) => void (dropped[reason] = (dropped[reason] ?? 0) + n) };
  const outbox = new Outbox({ config: publisherSchema.parse({ backoff: '20ms', maxBackoff: '100ms', publishTimeout: '200ms', drainTimeout: '2s', ...config }), bus: () => bus, spool, logger: silentLogger(), hooks });
  outbox.start();
  let closed = false;
  cleanups.push(async () => {
    if (!closed) await outbox.close();
    closed = true;
    await spool.close();
  });
  return { bus, spool, outbox, dir, dropped };
}

function message(i: number, key = `k${i % 4}`): BusMessage {
  return { key, event: { specversion: '1.0', id: `e${i}`, source: '/agents/a', type: 't', data: { i } } };
}

const ids = (bus: MemoryBus, topic: string): string[] => bus.messages(topic).map((d) => d.event.id);
const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `e${from + i}`);

describe('Outbox', () => {
  it('publishes in micro-batches, in order per topic', async () => {
    const { bus, outbox } = await setup();
    bus.slow(5);
    for (let i = 0; i < 200; i++) outbox.enqueue(i % 2 ? 'topic.b' : 'topic.a', message(i));
    await waitFor(() => bus.all().length === 200);
    expect(ids(bus, 'topic.a')).toEqual(range(0, 200).filter((_, i) => i % 2 === 0));
    expect(ids(bus, 'topic.b')).toEqual(range(0, 200).filter((_, i) => i % 2 === 1));
    expect(bus.calls.length).toBeLessThan(100);
    expect(outbox.stats).toMatchObject({ enqueued: 200, published: 200, spooled: 0, dropped: 0 });
  });

  it('spools while the bus is down and sends everything, in order, once it is back', async () => {
    const { bus, outbox, spool } = await setup();
    for (let i = 0; i < 50; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => bus.all().length === 50);
    bus.down();
    for (let i = 50; i < 150; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => spool.depth === 100);
    bus.up();
    // Newer events while the spool drains go behind it.
    for (let i = 150; i < 200; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => bus.all().length === 200 && spool.depth === 0);
    expect(ids(bus, 'topic.a')).toEqual(range(0, 200));
  });

  it('moves a full queue to the spool without reordering', async () => {
    const { bus, outbox } = await setup({ queueSize: 10 });
    bus.slow(30);
    for (let i = 0; i < 300; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => bus.all().length >= 300 && outbox.spoolDepth === 0, { timeoutMs: 20_000 });
    expect(outbox.stats.spooled).toBeGreaterThan(0);
    // A publish that straddled the overflow may land before older spooled events only if it failed; here
    // none failed, so the order is exact.
    expect(ids(bus, 'topic.a')).toEqual(range(0, 300));
  });

  it('treats a publish slower than publishTimeout as failed and spools it (duplicates allowed, none lost)', async () => {
    const { bus, outbox } = await setup({ publishTimeout: 50 });
    bus.hangs(true);
    for (let i = 0; i < 20; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => outbox.spoolDepth === 20);
    bus.hangs(false);
    await waitFor(() => new Set(ids(bus, 'topic.a')).size === 20 && outbox.spoolDepth === 0);
    expect(ids(bus, 'topic.a')).toEqual(range(0, 20));
  });

  it('drops only the message the bus refuses for good, and counts it', async () => {
    const { bus, outbox, dropped } = await setup();
    bus.refuseWhen((m) => m.event.id === 'e3');
    for (let i = 0; i < 6; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => bus.all().length === 5);
    expect(ids(bus, 'topic.a')).toEqual(['e0', 'e1', 'e2', 'e4', 'e5']);
    expect(dropped).toEqual({ rejected: 1 });
  });

  it('counts drops when the spool is full', async () => {
    const { bus, outbox, dropped } = await setup({ drainTimeout: '100ms' }, { maxBytes: 2_000 });
    bus.down();
    for (let i = 0; i < 100; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => (dropped.spool_full ?? 0) > 0 && outbox.queueDepth === 0);
    expect(outbox.stats.spooled + outbox.stats.dropped).toBe(100);
  });

  it('on close sends the queue and spool; what the bus cannot take stays spooled for the next start', async () => {
    const first = await setup({ drainTimeout: '300ms' });
    first.bus.down();
    for (let i = 0; i < 30; i++) first.outbox.enqueue('topic.a', message(i));
    await first.outbox.close();
    expect(first.spool.depth).toBe(30);
    await first.spool.close();

    const bus = new MemoryBus();
    const second = await setup({}, { dir: first.dir }, bus);
    second.outbox.enqueue('topic.a', message(30));
    await waitFor(() => bus.all().length === 31);
    expect(ids(bus, 'topic.a')).toEqual(range(0, 31));
    await second.outbox.close();
    expect(second.spool.depth).toBe(0);
  });

  it('after a crash, sends again what was accepted but not acknowledged (journal)', async () => {
    const { bus, outbox, dir } = await setup({ publishTimeout: '1s' }, { durability: 'strict' });
    bus.hangs(true);
    for (let i = 0; i < 50; i++) outbox.enqueue('topic.a', message(i));
    // What a SIGKILL leaves on disk: a copy of the directory once the journal holds the 50 events, while the
    // publish still hangs.
    await waitFor(async () => (await journalRecords(dir)) >= 50, { what: 'the 50 events in the journal' });
    const copy = await mkdtemp(path.join(tmpdir(), 'cutover-outbox-crash-'));
    cleanups.push(() => rm(copy, { recursive: true, force: true }));
    await cp(dir, copy, { recursive: true });
    await rm(path.join(copy, 'LOCK'));
    const after = await setup({}, { dir: copy, durability: 'interval' });
    await waitFor(() => after.bus.all().length === 50);
    expect(ids(after.bus, 'topic.a')).toEqual(range(0, 50));
    bus.hangs(false);
  });

  it('with the bus healthy, the journal keeps only what is in flight', async () => {
    const { bus, outbox, spool } = await setup({}, { durability: 'strict' });
    for (let i = 0; i < 200; i++) outbox.enqueue('topic.a', message(i));
    await waitFor(() => bus.all().length === 200);
    await waitFor(() => spool.journal!.watermark === 200);
    expect(spool.journal!.unjournaled).toBe(0);
    expect(spool.depth).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a nearly full spool file system with the bus down: counts what it kept and dropped, stays responsive, sends what it kept (128 KiB tmpfs; needs root)',
    async () => {
      const mnt = await mkdtemp(path.join(tmpdir(), 'cutover-outbox-tmpfs-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', mnt]);
      cleanups.push(async () => {
        execFileSync('umount', [mnt]);
        await rm(mnt, { recursive: true, force: true });
      });
      const dir = path.join(mnt, 'spool');
      await mkdir(dir);
      const filler = path.join(mnt, 'filler');
      await writeFile(filler, Buffer.alloc(128 * 1024 - 10 * 1024)).catch(() => undefined);
      const { bus, outbox, spool, dropped } = await setup({ linger: 0, maxBatch: 16 }, { dir, durability: 'interval' });
      bus.down();
      const big = (i: number): BusMessage => ({ ...message(i), event: { ...message(i).event, data: { pad: 'x'.repeat(900) } } });
      for (let i = 0; i < 100; i++) outbox.enqueue('topic.a', big(i));
      await waitFor(() => outbox.stats.spooled + outbox.stats.dropped === 100);
      expect(outbox.stats.dropped).toBeGreaterThan(0);
      expect((dropped.spool_full ?? 0) + (dropped.spool_error ?? 0)).toBe(outbox.stats.dropped);
      expect(spool.depth).toBe(outbox.stats.spooled);

      await rm(filler);
      // The event loop must keep turning while the spool drains: sample its lag.
      let worstLag = 0;
      let last = performance.now();
      const ticker = setInterval(() => {
        const now = performance.now();
        worstLag = Math.max(worstLag, now - last - 5);
        last = now;
      }, 5);
      bus.up();
      try {
        await waitFor(() => spool.depth === 0 && bus.all().length >= outbox.stats.spooled, { timeoutMs: 10_000 });
      } finally {
        clearInterval(ticker);
      }
      expect(new Set(ids(bus, 'topic.a')).size).toBe(outbox.stats.spooled);
      expect(worstLag).toBeLessThan(1_000);
      for (let i = 100; i < 110; i++) outbox.enqueue('topic.a', big(i));
      await waitFor(() => new Set(ids(bus, 'topic.a')).size === outbox.stats.spooled + 10);
    },
  );
});

/** Event records (not watermarks) in the journal files of a spool directory. */
async function journalRecords(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir)) {
    if (!/^wal-\d+\.jsonl$/.test(name)) continue;
    n += (await readFile(path.join(dir, name), 'utf8')).split('\n').filter((l) => l.startsWith('{"s":')).length;
  }
  return n;
}
