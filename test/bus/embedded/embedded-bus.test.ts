import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { EmbeddedBus } from '../../../src/bus/embedded/embedded-bus.js';
import { EmbeddedStore, partitionOf } from '../../../src/bus/embedded/store.js';
import { embeddedBusSchema } from '../../../src/config/bus.js';
import { silentLogger } from '../../../src/logger.js';
import { createBus, type Bus, type BusConfigInput, type Delivery } from '../../../src/bus/index.js';
import { buildEvent } from '../../../src/events/cloudevent.js';
import { ErrorCodes } from '../../../src/errors.js';
import { settled, waitFor } from '../../helpers/wait-for.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-embedded-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

function freshFile(): string {
  return path.join(dir, `${randomUUID()}.db`);
}

function config(file: string, extra: Record<string, unknown> = {}): BusConfigInput {
  return { kind: 'embedded', path: file, sessionTimeout: '900ms', pollInterval: '10ms', ...extra } as BusConfigInput;
}

async function bus(file: string, extra: Record<string, unknown> = {}): Promise<Bus> {
  const b = await createBus(config(file, extra));
  cleanups.push(() => b.close());
  await b.start();
  return b;
}

/** A second connection to the file, the way another process would see it. */
function peek(file: string): Database.Database {
  const db = new Database(file, { timeout: 2_000 });
  cleanups.push(() => db.close());
  return db;
}

function event(n: number) {
  return buildEvent({ source: '/agents/test', type: 'test.event', data: { n } });
}

const topicOf = (label: string): string => `test.${label}.${randomUUID().slice(0, 8)}`;

describe('embedded bus', () => {
  it('creates missing parent directories and refuses a file made with another partition count', async () => {
    const file = path.join(dir, randomUUID(), 'nested', 'bus.db');
    const first = await bus(file, { partitions: 4 });
    await first.publish(topicOf('p'), [{ key: 'a', event: event(1) }]);
    const other = await createBus(config(file, { partitions: 8 }));
    cleanups.push(() => other.close());
    const err = await other.start().catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe(ErrorCodes.BUS_MISCONFIGURED);
  });

  it('keeps call order per key when many concurrent publishes share one transaction', async () => {
    const b = await bus(freshFile());
    const topic = topicOf('coalesce');
    await Promise.all(Array.from({ length: 50 }, (_, call) => b.publish(topic, Array.from({ length: 10 }, (_, i) => ({ key: 'same', event: event(call * 10 + i) })))));
    const seen: number[] = [];
    for await (const d of b.read(topic, { from: 'start', follow: false })) seen.push((d.event.data as { n: number }).n);
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('reads many partitions back in publish order, across pages', async () => {
    const b = await bus(freshFile());
    const topic = topicOf('merge');
    const total = 3_000;
    for (let i = 0; i < total; i += 500) {
      await b.publish(topic, Array.from({ length: 500 }, (_, j) => ({ key: `k-${(i + j) % 37}`, event: event(i + j) })));
    }
    const positions: number[] = [];
    const ns: number[] = [];
    for await (const d of b.read(topic, { from: 'start', follow: false })) {
      positions.push(Number(d.position));
      ns.push((d.event.data as { n: number }).n);
    }
    expect(ns).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
  });

  it('hands all partitions to the remaining member when one leaves the group', async () => {
    const file = freshFile();
    const a = await bus(file);
    const c = await bus(file);
    const topic = topicOf('leave');
    const group = `g-${randomUUID()}`;
    const byA: number[] = [];
    const byC: number[] = [];
    const subA = await a.subscribe({ group, topics: [topic], handler: async (d) => void byA.push((d.event.data as { n: number }).n) });
    await c.subscribe({ group, topics: [topic], handler: async (d) => void byC.push((d.event.data as { n: number }).n) });
    // 40 keys cover every one of the 8 partitions.
    await a.publish(topic, Array.from({ length: 40 }, (_, i) => ({ key: `key-${i}`, event: event(i) })));
    await waitFor(() => byA.length + byC.length >= 40, { what: 'first 40' });
    expect(byA.length).toBeGreaterThan(0);
    expect(byC.length).toBeGreaterThan(0);

    await subA.close();
    await a.publish(topic, Array.from({ length: 40 }, (_, i) => ({ key: `key-${i}`, event: event(100 + i) })));
    await waitFor(() => byC.filter((n) => n >= 100).length >= 40, { what: 'the remaining member to get all 40 new messages' });
    expect(byA.filter((n) => n >= 100)).toEqual([]);
  });

  it('takes over a partition whose owner stopped heartbeating, counting the redelivery as an attempt', async () => {
    const file = freshFile();
    const b = await bus(file);
    const topic = topicOf('takeover');
    const group = `g-${randomUUID()}`;
    await b.publish(topic, [{ key: 'k', event: event(1) }, { key: 'k', event: event(2) }]);
    const part = partitionOf('k', 8);
    const db = peek(file);
    const topicId = (db.prepare('SELECT id FROM topics WHERE name = ?').get(topic) as { id: number }).id;
    const seqs = (db.prepare('SELECT seq FROM messages WHERE topic_id = ? ORDER BY seq').all(topicId) as Array<{ seq: number }>).map((r) => r.seq);
    // A member that died after dispatching both messages and before committing either: its lease and
    // heartbeat stop being renewed from now on.
    const now = Date.now();
    db.prepare('INSERT INTO group_members (grp, member_id, heartbeat_at) VALUES (?, ?, ?)').run(group, 'dead', now);
    db.prepare('INSERT INTO partition_leases (grp, part, member_id, expires_at) VALUES (?, ?, ?, ?)').run(group, part, 'dead', now + 900);
    for (let p = 0; p < 8; p += 1) {
      db.prepare('INSERT INTO group_offsets (grp, topic_id, part, committed_seq, dispatched_seq) VALUES (?, ?, ?, ?, ?)').run(group, topicId, p, 0, p === part ? seqs[1] : 0);
    }

    const got: Delivery[] = [];
    let takenAt = 0;
    await b.subscribe({ group, topics: [topic], handler: async (d) => void (takenAt ||= Date.now(), got.push(d)) });
    await waitFor(() => got.length >= 2, { timeoutMs: 10_000, what: 'redelivery after the lease expired' });
    expect(got.map((d) => (d.event.data as { n: number }).n)).toEqual([1, 2]);
    expect(got.map((d) => d.attempt)).toEqual([2, 2]);
    // Correctness, not speed: the lease was not taken before it expired.
    expect(got.every((d) => d.attempt >= 2)).toBe(true);
    expect(takenAt).toBeGreaterThanOrEqual(now + 900);
    await waitFor(() => (db.prepare('SELECT committed_seq FROM group_offsets WHERE grp = ? AND topic_id = ? AND part = ?').get(group, topicId, part) as { committed_seq: number }).committed_seq === seqs[1], { what: 'commit' });
    expect(db.prepare('SELECT COUNT(*) AS n FROM redeliveries WHERE grp = ?').get(group)).toEqual({ n: 0 });
  });

  it('dead-letters without calling the handler a message redelivered more than maxAttempts times', async () => {
    const file = freshFile();
    const b = await bus(file);
    const topic = topicOf('poison');
    const group = `g-${randomUUID()}`;
    await b.publish(topic, [{ key: 'k', event: event(1) }]);
    const db = peek(file);
    const topicId = (db.prepare('SELECT id FROM topics WHERE name = ?').get(topic) as { id: number }).id;
    const seq = (db.prepare('SELECT seq FROM messages WHERE topic_id = ?').get(topicId) as { seq: number }).seq;
    const part = partitionOf('k', 8);
    // Consumers crashed on it twice already (dispatched, never committed, redelivered once before).
    for (let p = 0; p < 8; p += 1) {
      db.prepare('INSERT INTO group_offsets (grp, topic_id, part, committed_seq, dispatched_seq) VALUES (?, ?, ?, 0, ?)').run(group, topicId, p, p === part ? seq : 0);
    }
    db.prepare('INSERT INTO redeliveries (grp, topic_id, part, seq, attempts) VALUES (?, ?, ?, ?, 2)').run(group, topicId, part, seq);
    const calls: number[] = [];
    await b.subscribe({ group, topics: [topic], maxAttempts: 2, handler: async (d) => void calls.push(d.attempt) });
    const dead = await waitFor(async () => {
      const out: Delivery[] = [];
      for await (const d of b.read(`${topic}.dlq`, { from: 'start', follow: false })) out.push(d);
      return out.length > 0 ? out : undefined;
    }, { what: 'the dead letter' });
    expect(calls).toEqual([]);
    expect(dead[0]!.headers['cutover-dlq-error-code']).toBe(ErrorCodes.HANDLER_FAILED);
    expect(dead[0]!.headers['cutover-dlq-attempts']).toBe('3');
  });

  it('stops dispatching a partition once another member holds its lease', async () => {
    const file = freshFile();
    const b = await bus(file);
    const topic = topicOf('stolen');
    const group = `g-${randomUUID()}`;
    const got: number[] = [];
    await b.subscribe({ group, topics: [topic], handler: async (d) => void got.push((d.event.data as { n: number }).n) });
    await b.publish(topic, [{ key: 'k', event: event(1) }]);
    await waitFor(() => got.length === 1, { what: 'first delivery' });
    // Another member (say, after this process stalled past sessionTimeout) now owns every partition.
    const db = peek(file);
    db.prepare('UPDATE partition_leases SET member_id = ?, expires_at = ? WHERE grp = ?').run('thief', Date.now() + 60_000, group);
    const topicId = (db.prepare('SELECT id FROM topics WHERE name = ?').get(topic) as { id: number }).id;
    const committed = (): number =>
      (db.prepare('SELECT committed_seq FROM group_offsets WHERE grp = ? AND topic_id = ? AND part = ?').get(group, topicId, partitionOf('k', 8)) as { committed_seq: number }).committed_seq;
    const before = committed();
    await b.publish(topic, [{ key: 'k', event: event(2) }]);
    const published = Date.now();
    // Every poll writes its heartbeat in the transaction that checks leases before dispatching what it
    // fetched; a heartbeat after the publish means the consumer has seen message 2 and the stolen lease.
    const heartbeat = db.prepare('SELECT MAX(heartbeat_at) AS at FROM group_members WHERE grp = ?');
    await waitFor(() => (heartbeat.get(group) as { at: number }).at > published, { what: 'a poll after the publish' });
    await waitFor(() => (heartbeat.get(group) as { at: number }).at > published + 50, { what: 'a few more polls' });
    expect(got).toEqual([1]);
    expect(committed()).toBe(before);
  });

  it('starts a group at the end when asked, but a topic created later from its start', async () => {
    const b = await bus(freshFile());
    const base = topicOf('from');
    await b.publish(`${base}.old`, [{ key: null, event: event(1) }]);
    const got: Delivery[] = [];
    await b.subscribe({ group: `g-${randomUUID()}`, topics: [`${base}.*`], from: 'end', handler: async (d) => void got.push(d) });
    await b.publish(`${base}.old`, [{ key: null, event: event(2) }]);
    await b.publish(`${base}.new`, [{ key: null, event: event(3) }]);
    await waitFor(() => got.length >= 2, { what: 'two deliveries' });
    expect(got.map((d) => (d.event.data as { n: number }).n).sort()).toEqual([2, 3]);
  });

  it('deletes messages past retention without ever reusing their sequence numbers', async () => {
    const file = freshFile();
    const b = (await bus(file, { retention: '1h' })) as EmbeddedBus;
    const topic = topicOf('retention');
    const group = `g-${randomUUID()}`;
    await b.publish(topic, Array.from({ length: 2_500 }, (_, i) => ({ key: `k-${i % 5}`, event: event(i) })));
    const got: number[] = [];
    const sub = await b.subscribe({ group, topics: [topic], handler: async (d) => void got.push((d.event.data as { n: number }).n) });
    await waitFor(() => got.length === 2_500, { what: 'all 2,500' });
    await sub.close();

    // Everything is older than retention two hours from now: it all goes, in batches.
    expect(await b.enforceRetention(Date.now() + 2 * 3_600_000)).toBe(2_500);
    const left: Delivery[] = [];
    for await (const d of b.read(topic, { from: 'start', follow: false })) left.push(d);
    expect(left).toEqual([]);
    // Nothing is past retention now: a run deletes nothing.
    await b.publish(topic, [{ key: 'k-0', event: event(9_000) }]);
    expect(await b.enforceRetention()).toBe(0);

    // The group's committed offsets point past the deleted rows; a new message must still be newer.
    await b.publish(topic, [{ key: 'k-0', event: event(9_001) }]);
    const later: number[] = [];
    await b.subscribe({ group, topics: [topic], handler: async (d) => void later.push((d.event.data as { n: number }).n) });
    await waitFor(() => later.length >= 2, { what: 'messages published after the purge' });
    expect(later).toEqual([9_000, 9_001]);
  });

  it('reports unhealthy and rejects publishes in bounded time while another connection holds the write lock', async () => {
    const file = freshFile();
    const b = await bus(file, { publishTimeout: '500ms' });
    const topic = topicOf('locked');
    await b.publish(topic, [{ key: 'a', event: event(0) }]);
    const holder = peek(file);
    holder.exec('BEGIN EXCLUSIVE');
    const results = (await settled(Promise.allSettled([b.publish(topic, [{ key: 'a', event: event(1) }]), b.publish(topic, [{ key: 'a', event: event(2) }])]), {
      timeoutMs: 5_000,
      what: 'both publishes to settle',
    })) as PromiseSettledResult<void>[];
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as { code: string; retriable: boolean }).code).toBe(ErrorCodes.BUS_UNAVAILABLE);
      expect(((r as PromiseRejectedResult).reason as { retriable: boolean }).retriable).toBe(true);
    }
    const health = await b.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/locked/);
    holder.exec('COMMIT');
    expect((await b.health()).ok).toBe(true);
    await b.publish(topic, [{ key: 'a', event: event(3) }]);
    const seen: number[] = [];
    for await (const d of b.read(topic, { from: 'start', follow: false })) seen.push((d.event.data as { n: number }).n);
    expect(seen).toEqual([0, 3]);
  });

  it('refuses work before start and after close with CUTOVER_BUS_CLOSED', async () => {
    const b = await createBus(config(freshFile()));
    const early = await b.publish('test.x', [{ key: null, event: event(1) }]).catch((e: unknown) => e);
    expect((early as { code?: string }).code).toBe(ErrorCodes.BUS_CLOSED);
    expect((await b.health()).ok).toBe(false);
    await b.start();
    const reader = b.read(topicOf('r'), { from: 'start', follow: true });
    const pending = reader[Symbol.asyncIterator]().next();
    await b.close();
    // close() ends readers it made.
    expect((await pending).done).toBe(true);
    expect(() => b.read('test.x', { from: 'start' })).toThrow(expect.objectContaining({ code: ErrorCodes.BUS_CLOSED }));
  });
});

describe('embedded bus change watcher', () => {
  async function store(file: string): Promise<EmbeddedStore> {
    const s = await EmbeddedStore.open(embeddedBusSchema.parse({ kind: 'embedded', path: file }), silentLogger());
    cleanups.push(() => s.close());
    return s;
  }

  it("wakes its listeners on another connection's commits without waiting for the next poll", async () => {
    const file = freshFile();
    const s = await store(file);
    let woken = 0;
    // A poll interval of an hour: only the file-system notification can wake the listener within the test.
    s.onChange(() => (woken += 1), 3_600_000);
    const other = peek(file);
    other.prepare("INSERT INTO meta (name, value) VALUES ('probe', '1')").run();
    await waitFor(() => woken > 0, { what: 'the listener woken by the commit' });
    other.prepare("UPDATE meta SET value = '2' WHERE name = 'probe'").run();
    await waitFor(() => woken > 1, { what: 'the listener woken by the second commit' });
  });

  it("does not wake its listeners for its own connection's commits", async () => {
    const file = freshFile();
    const s = await store(file);
    // Another connection to the file with its own watcher, as another process would have: it is woken by
    // the same write, and both watchers look on the same turn (a poll interval of 1 ms puts no gap before
    // a look), so once the witness was woken the store has looked too.
    const witness = await store(file);
    let woken = 0;
    let witnessed = 0;
    s.onChange(() => (woken += 1), 1);
    witness.onChange(() => (witnessed += 1), 1);
    // A watcher's first look learns the file's version and wakes its listeners: let it happen first.
    peek(file).prepare("INSERT INTO meta (name, value) VALUES ('probe', '1')").run();
    await waitFor(() => woken > 0 && witnessed > 0, { what: 'both watchers woken by a third connection' });
    const before = woken;
    const seen = witnessed;
    s.write(() => s.db.prepare("INSERT INTO meta (name, value) VALUES ('own', '1')").run(), true);
    await waitFor(() => witnessed > seen, { what: "the witness woken by the store's commit" });
    expect(woken).toBe(before);
  });
});
