import { describe, it } from 'vitest';
import { kafkaBrokers } from '../helpers/brokers.js';
import { cuttableBus } from '../helpers/fault-proxy.js';
import { runConformance } from './conformance.js';

const brokers = kafkaBrokers();

if (!brokers) {
  describe.skip('bus conformance: kafka (no broker, see the line printed at start)', () => it('skipped', () => undefined));
} else {
  // 6 s: the lowest session timeout a stock broker accepts (group.min.session.timeout.ms).
  const base = { kind: 'kafka' as const, brokers, partitions: 3, sessionTimeout: '6s', topicRefreshInterval: '1s', connectionTimeout: '1s' };
  runConformance({
    kind: 'kafka',
    config: () => base,
    async faulty() {
      const cut = await cuttableBus(base);
      return { ...cut, down: async () => cut.down(), up: async () => cut.up() };
    },
    takeoverMs: 15_000,
    discoveryMs: 5_000,
    countsCrashRedelivery: false,
  });
}
