import { Redis } from 'ioredis';

/**
 * Deletes every key under `prefix` (all streams, leases and registries of one installation's `bus.prefix`).
 * For tests, benchmarks and the demo, which each run under a unique prefix; never call it on a prefix in use.
 * Returns the number of keys deleted.
 */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<number> {
  if (!prefix) throw new Error('refusing to delete every key of the server: give a non-empty prefix');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // Failures reject the calls below; without a listener ioredis would also print them.
  client.on('error', () => undefined);
  let deleted = 0;
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}
