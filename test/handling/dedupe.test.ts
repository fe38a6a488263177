import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { busConfigSchema } from '../../src/config/bus.js';
import { createDedupeStore, DEDUPE_FILE, MemoryDedupeStore, RedisDedupeStore, SqliteDedupeStore, type DedupeStore } from '../../src/handling/dedupe/index.js';
import { redisUrl } from '../helpers/brokers.js';
import { waitFor } from '../helpers/wait-for.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';

const redis = redisUrl();

interface Kind {
  name: string;
  skip?: string;
  /** Two stores sharing state, as two processes would. */
  pair(): Promise<{ a: DedupeStore; b: DedupeStore; cleanup(): Promise<void> }>;
}

const kinds: Kind[] = [
  {
    name: 'sqlite (two connections to one file)',
    async pair() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cutover-dedupe-'));
      const file = path.join(dir, 'd.db');
      const a = new SqliteDedupeStore(file);
      const b = new SqliteDedupeStore(file);
      await a.start();
      await b.start();
      return { a, b, cleanup: async () => (await a.close(), await b.close(), await rm(dir, { recursive: true, force: true })) };
    },
  },
  {
    name: 'redis (two clients)',
    ...(redis ? {} : { skip: 'Redis unavailable' }),
    async pair() {
      const prefix = `cutover-dedupe-test-${randomUUID().slice(0, 8)}:`;
      const a = new RedisDedupeStore(redis!, prefix);
      const b = new RedisDedupeStore(redis!, prefix);
      await a.start();
      await b.start();
      return {
        a,
        b,
        async cleanup() {
          await a.close();
          await b.close();
          await deleteRedisPrefix(redis!, prefix);
        },
      };
    },
  },
];

for (const kind of kinds) {
  (kind.skip ? describe.skip : describe)(`dedupe store: ${kind.name}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!();
    });
    async function pair() {
      const p = await kind.pair();
      cleanups.push(p.cleanup);
      return p;
    }

    it('one claimer acquires, the other sees busy, then done once completed', async () => {
      const { a, b } = await pair();
      expect(await a.claim('g', 'e1', 10_000)).toBe('acquired');
      expect(await b.claim('g', 'e1', 10_000)).toBe('busy');
      await a.complete('g', 'e1', 60_000);
      expect(await b.claim('g', 'e1', 10_000)).toBe('done');
      expect(await a.claim('g', 'e1', 10_000)).toBe('done');
    });

    it('scopes ids by group', async () => {
      const { a } = await pair();
      await a.claim('g1', 'e1', 10_000);
      await a.complete('g1', 'e1', 60_000);
      expect(await a.claim('g2', 'e1', 10_000)).toBe('acquired');
    });

    it('a released lease can be claimed again; only its owner releases it', async () => {
      const { a, b } = await pair();
      expect(await a.claim('g', 'e2', 10_000)).toBe('acquired');
      await b.release('g', 'e2');
      expect(await b.claim('g', 'e2', 10_000)).toBe('busy');
      await a.release('g', 'e2');
      expect(await b.claim('g', 'e2', 10_000)).toBe('acquired');
    });

    it("a dead claimer's lease expires", async () => {
      const { a, b } = await pair();
      expect(await a.claim('g', 'e3', 50)).toBe('acquired');
      await waitFor(async () => (await b.claim('g', 'e3', 10_000)) === 'acquired', { what: 'the lease to expire' });
    });

    it('done marks expire after their ttl', async () => {
      const { a } = await pair();
      await a.claim('g', 'e4', 10_000);
      await a.complete('g', 'e4', 50);
      await waitFor(async () => (await a.claim('g', 'e4', 10_000)) === 'acquired', { what: 'the mark to expire' });
    });
  });
}

describe('dedupe store: memory', () => {
  it('follows the same rules with an injected clock, bounded in size', async () => {
    let now = 0;
    const s = new MemoryDedupeStore(2, () => now);
    expect(await s.claim('g', 'a', 100)).toBe('acquired');
    expect(await s.claim('g', 'a', 100)).toBe('busy');
    now = 100;
    expect(await s.claim('g', 'a', 100)).toBe('acquired');
    await s.complete('g', 'a', 1_000);
    expect(await s.claim('g', 'a', 100)).toBe('done');
    await s.claim('g', 'b', 100);
    await s.claim('g', 'c', 100);
    expect(await s.claim('g', 'a', 100)).toBe('acquired');
  });
});

describe('createDedupeStore', () => {
  it('picks by bus: SQLite beside the embedded file, the same Redis, SQLite in dataDir for Kafka and RabbitMQ; or the configured choice', () => {
    const embedded = createDedupeStore(busConfigSchema.parse({ kind: 'embedded', path: '/var/lib/cutover/bus.db' }));
    expect(embedded).toBeInstanceOf(SqliteDedupeStore);
    expect((embedded as SqliteDedupeStore).file).toBe(path.join('/var/lib/cutover', DEDUPE_FILE));
    expect(createDedupeStore(busConfigSchema.parse({ kind: 'redis', url: 'redis://h:6379' }))).toBeInstanceOf(RedisDedupeStore);
    const kafka = createDedupeStore(busConfigSchema.parse({ kind: 'kafka', brokers: ['h:9092'] }), { dataDir: '/data' });
    expect((kafka as SqliteDedupeStore).file).toBe(path.join('/data', DEDUPE_FILE));
    const rabbit = createDedupeStore(busConfigSchema.parse({ kind: 'rabbitmq', url: 'amqp://h:5672/' }), { dataDir: '/data' });
    expect((rabbit as SqliteDedupeStore).file).toBe(path.join('/data', DEDUPE_FILE));
    expect(createDedupeStore(busConfigSchema.parse({ kind: 'kafka', brokers: ['h:9092'] }), { choice: { kind: 'redis', url: 'redis://r:6379' } })).toBeInstanceOf(RedisDedupeStore);
  });
});
