import { randomUUID } from 'node:crypto';
import { afterAll, describe, it } from 'vitest';
import { redisUrl } from '../helpers/brokers.js';
import { cuttableBus } from '../helpers/fault-proxy.js';
import { runConformance } from './conformance.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';

const url = redisUrl();
const prefix = `test:${randomUUID().slice(0, 8)}:`;

if (!url) {
  describe.skip('bus conformance: redis (Redis unavailable, see the line printed at start)', () => it('skipped', () => undefined));
} else {
  afterAll(async () => {
    // Remove every key this suite made (they all share its unique prefix).
    await deleteRedisPrefix(url, prefix);
  });

  runConformance({
    kind: 'redis',
    config: () => ({ kind: 'redis', url, prefix, claimIdle: '1s', blockTime: '200ms' }),
    async faulty() {
      const cut = await cuttableBus({ kind: 'redis', url, prefix, claimIdle: '1s', blockTime: '200ms' });
      return { ...cut, down: async () => cut.down(), up: async () => cut.up() };
    },
    takeoverMs: 5_000,
    discoveryMs: 3_000,
    countsCrashRedelivery: true,
  });
}
