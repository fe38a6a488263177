import { describe, it } from 'vitest';
import { kafkaBrokers } from '../helpers/brokers.js';
import { cuttableBus } from '../helpers/fault-proxy.js';
import { runConformance } from './conformance.js';

const brokers = kafkaBrokers();

if (!brokers) {
  describe.skip('bus conformance: kafka (no broker, see the line printed at start)', () => it('skipped', () => undefined));
} else {
  // The suite runs once per producer client (bus.client.producer); consumers are kafkajs in both.
  for (const producer of ['kafkajs', 'platformatic'] as const) {
    // 6 s: the lowest session timeout a stock broker accepts (group.min.session.timeout.ms).
    const base = { kind: 'kafka' as const, brokers, partitions: 3, sessionTimeout: '6s', topicRefreshInterval: '1s', connectionTimeout: '1s', client: { producer } };
    runConformance({
      kind: 'kafka',
      label: `${producer} producer`,
      config: () => base,
      async faulty() {
        const cut = await cuttableBus(base);
        return { ...cut, down: async () => cut.down(), up: async () => cut.up() };
      },
      takeoverMs: 15_000,
      discoveryMs: 5_000,
      countsCrashRedelivery: false,
      ...(producer === 'platformatic'
        ? {
            unsupported: {
              serverDown:
                '@platformatic/kafka opens its sockets itself, so the relay this case cuts cannot sit under its producer; test/faults/kafka-bus.test.ts kills and pauses a real broker under it instead',
            },
          }
        : {}),
    });
  }
}
