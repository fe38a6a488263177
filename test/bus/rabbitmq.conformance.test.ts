import { randomUUID } from 'node:crypto';
import { afterAll, describe, it } from 'vitest';
import { rabbitmqUrl } from '../helpers/brokers.js';
import { cuttableBus } from '../helpers/fault-proxy.js';
import { deleteRabbitPrefix } from '../helpers/rabbitmq.js';
import { runConformance } from './conformance.js';

const url = rabbitmqUrl();
// Every exchange and queue this run declares starts with it; afterAll deletes them.
const prefix = `test-${randomUUID().slice(0, 8)}`;

if (!url) {
  describe.skip('bus conformance: rabbitmq (RabbitMQ unavailable, see the line printed at start)', () => it('skipped', () => undefined));
} else {
  afterAll(() => deleteRabbitPrefix(url, prefix));
  const base = { kind: 'rabbitmq' as const, url, prefix, rebalanceInterval: '200ms', heartbeat: '5s' };
  runConformance({
    kind: 'rabbitmq',
    config: () => base,
    async faulty() {
      const cut = await cuttableBus(base);
      return { ...cut, down: async () => cut.down(), up: async () => cut.up() };
    },
    // A killed consumer's connection closes at once, which frees its partitions; the next round claims them.
    takeoverMs: 5_000,
    // Wildcards are topic-exchange bindings: a new topic routes to the group the moment it is published.
    discoveryMs: 1_000,
    countsCrashRedelivery: true,
  });
}
