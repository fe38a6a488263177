import net from 'node:net';
import { describe, it } from 'vitest';
import { kafkaBrokers } from '../helpers/brokers.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { runConformance } from './conformance.js';

const brokers = kafkaBrokers();

if (!brokers) {
  describe.skip('bus conformance: kafka (no broker, see the line printed at start)', () => it('skipped', () => undefined));
} else {
  const base = { kind: 'kafka' as const, brokers, partitions: 3, sessionTimeout: '3s', topicRefreshInterval: '1s', connectionTimeout: '1s' };
  runConformance({
    kind: 'kafka',
    config: () => base,
    // Kafka clients reconnect to the addresses the broker advertises, so faults go in at the socket layer:
    // every broker connection runs through a relay the test can cut.
    async faulty() {
      const relays = new Map<string, FaultProxy>();
      let isDown = false;
      const relayFor = async (host: string, port: number): Promise<FaultProxy> => {
        const id = `${host}:${port}`;
        let relay = relays.get(id);
        if (!relay) {
          relay = await startFaultProxy(host, port);
          if (isDown) relay.down();
          relays.set(id, relay);
        }
        return relay;
      };
      await Promise.all(brokers.map((b) => relayFor(b.split(':')[0]!, Number(b.split(':')[1]))));
      const connect = (host: string, port: number): net.Socket => {
        const relay = relays.get(`${host}:${port}`);
        if (!relay) throw new Error(`no relay for ${host}:${port}`);
        return net.connect(relay.port, relay.host);
      };
      return {
        config: base,
        options: { connect },
        down: async () => {
          isDown = true;
          relays.forEach((r) => r.down());
        },
        up: async () => {
          isDown = false;
          relays.forEach((r) => r.up());
        },
        close: async () => void (await Promise.all([...relays.values()].map((r) => r.close()))),
      };
    },
    takeoverMs: 10_000,
    discoveryMs: 5_000,
    countsCrashRedelivery: false,
  });
}
