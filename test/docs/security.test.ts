import { createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { FieldCipher } from '../../src/crypto/field-cipher.js';
import { DEFAULT_REDACTED_HEADERS, DEFAULT_REDACTED_QUERY, DEFAULT_REQUEST_HEADERS, DEFAULT_RESPONSE_HEADERS } from '../../src/config/sidecar.js';
import { createBus } from '../../src/bus/index.js';
import { silentLogger } from '../../src/logger.js';
import { RedisDedupeStore } from '../../src/handling/dedupe/index.js';
import { redisUrl } from '../helpers/brokers.js';
import { waitFor } from '../helpers/wait-for.js';
import { codeBlocks, prose } from './markdown.js';

const FILE = 'docs/security.md';

describe('docs/security.md', () => {
  const text = prose(FILE);

  it('states the default redaction and capture lists the code uses', () => {
    const sentence = (list: readonly string[]): string => list.map((h) => `\`${h}\``).join(', ');
    // "by default `authorization`, `proxy-authorization`, `cookie`, `set-cookie` and `x-api-key`"
    const natural = (list: readonly string[]): string => `${sentence(list.slice(0, -1))} and \`${list.at(-1)}\``;
    expect(text.replace(/\s+/g, ' ')).toContain(`by default ${natural(DEFAULT_REDACTED_HEADERS)}`);
    expect(text.replace(/\s+/g, ' ')).toContain(`Query parameters masked by default: ${sentence(DEFAULT_REDACTED_QUERY)}.`);
    expect(text).toContain(`(default ${sentence(DEFAULT_REQUEST_HEADERS)})`);
    expect(text).toContain(`(default ${sentence(DEFAULT_RESPONSE_HEADERS)})`);
  });

  it('describes the encrypted value format precisely enough to decrypt it without cutover', () => {
    const key = randomBytes(32);
    const cipher = new FieldCipher(key, 'pii-test', ['/card/number']);
    const doc = { card: { number: '4111 1111 1111 1111', cvc: 123 } };
    cipher.encryptFields(doc, { eventId: 'evt-1', part: 'request' });
    const value = doc.card.number as unknown as { $enc: string; kid: string };
    expect(value.kid).toBe('pii-test');
    // The recipe of the page: the subkey by HKDF, base64-decode, 12 bytes IV, 16 bytes tag, the additional
    // data, AES-256-GCM, JSON.
    const subkey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'cutover field-encryption v1', 32));
    const raw = Buffer.from(value.$enc, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', subkey, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from('cutover-field-v1\0evt-1\0request\0/card/number'));
    decipher.setAuthTag(raw.subarray(12, 28));
    const plain = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    expect(JSON.parse(plain)).toBe('4111 1111 1111 1111');
    expect(text).toContain('split off the first 12 bytes (IV)\nand the next 16 (GCM tag)');
    expect(text).toContain('`hkdfSync(\'sha256\', key, \'\', \'cutover field-encryption v1\', 32)`');
    expect(text).toContain('`cutover-field-v1`, the event id, `request` or `response`, and the JSON pointer');
  });
});

/**
 * The Redis ACL rule of the page, run for real: a user with exactly that rule (key pattern moved to a
 * unique prefix) must be able to do everything cutover does on Redis: start, publish, consume in a group,
 * dead-letter, read a topic without a group, and use the dedupe store.
 */
const url = redisUrl();

describe.skipIf(!url)('the Redis ACL rule in docs/security.md (real Redis)', () => {
  it('lets a user with only that rule run the Redis bus and the dedupe store', async () => {
    const block = codeBlocks(FILE).find((b) => b.marker === '<!-- redis-acl -->');
    expect(block, 'a block marked <!-- redis-acl -->').toBeDefined();
    const words = block!.text.trim().split(/\s+/);
    expect(words.slice(0, 3)).toEqual(['ACL', 'SETUSER', 'cutover']);
    expect(words).toContain('~cutover:*');
    const rules = words.slice(3).filter((w) => w !== 'on' && !w.startsWith('>') && !w.startsWith('~'));

    const id = randomUUID().slice(0, 8);
    const user = `cutover-docs-acl-${id}`;
    const password = `pw-${randomUUID()}`;
    const prefix = `cutover-docs-acl-${id}:`;
    const admin = new Redis(url!, { lazyConnect: true });
    await admin.connect();
    await admin.call('ACL', 'SETUSER', user, 'reset', 'on', `>${password}`, `~${prefix}*`, ...rules);
    const restricted = new URL(url!);
    restricted.username = user;
    restricted.password = password;
    const bus = await createBus({ kind: 'redis', url: restricted.toString(), prefix, partitions: 2 }, { logger: silentLogger() });
    try {
      await bus.start();
      const topic = `test.acl.${id}`;
      const seen: string[] = [];
      const sub = await bus.subscribe({
        group: `g-${id}`,
        topics: ['test.acl.*'],
        maxAttempts: 1,
        handler: async (d) => {
          seen.push(d.event.id);
          if (d.event.type === 'fail') throw new Error('fails on purpose: goes to the DLQ');
        },
      });
      await bus.publish(topic, [
        { key: 'k', event: { specversion: '1.0', id: 'ok-1', source: '/test', type: 'ok' } },
        { key: 'k', event: { specversion: '1.0', id: 'fail-1', source: '/test', type: 'fail' } },
      ]);
      await waitFor(() => seen.length === 2, { what: 'both messages handled' });
      const dead: string[] = [];
      await waitFor(async () => {
        dead.length = 0;
        const stream = bus.read(`${topic}.dlq`, { from: 'start', follow: false });
        for await (const d of stream) dead.push(d.event.id);
        await stream.close();
        return dead.length === 1;
      }, { what: 'the dead letter' });
      expect(dead).toEqual(['fail-1']);
      await sub.close();
      expect((await bus.health()).ok).toBe(true);

      const store = new RedisDedupeStore(restricted.toString(), `${prefix}dedupe:`);
      await store.start();
      try {
        expect(await store.claim('g', 'e1', 5_000)).toBe('acquired');
        expect(await store.claim('g', 'e1', 5_000)).toBe('busy');
        await store.release('g', 'e1');
        await store.complete('g', 'e1', 5_000);
        expect(await store.claim('g', 'e1', 5_000)).toBe('done');
      } finally {
        await store.close();
      }
    } finally {
      await bus.close();
      await admin.call('ACL', 'DELUSER', user);
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    }
  });
});
