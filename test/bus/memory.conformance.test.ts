import { busConfigSchema, type BusConfigInput } from '../../src/bus/index.js';
import { MemoryBroker, MemoryBus } from '../helpers/memory-bus.js';
import { runConformance } from './conformance.js';

// Buses made from one config share a broker, as processes share a server (the config's path names it).
const brokers = new Map<string, MemoryBroker>();
const brokerFor = (config: BusConfigInput): MemoryBroker => {
  const name = config.kind === 'embedded' ? (config.path ?? '') : '';
  let broker = brokers.get(name);
  if (!broker) brokers.set(name, (broker = new MemoryBroker()));
  return broker;
};
let faults = 0;

runConformance({
  kind: 'memory',
  config: () => ({ kind: 'embedded', path: 'memory:conformance' }),
  create: (config) => new MemoryBus(Date.now, { broker: brokerFor(config), maxMessageBytes: busConfigSchema.parse(config).maxMessageBytes }),
  async faulty() {
    const config: BusConfigInput = { kind: 'embedded', path: `memory:faulty-${++faults}` };
    const broker = brokerFor(config);
    return {
      config,
      down: async () => void (broker.isDown = true),
      up: async () => void (broker.isDown = false),
      close: async () => undefined,
    };
  },
  takeoverMs: 2_000,
  discoveryMs: 1_000,
  countsCrashRedelivery: true,
  unsupported: { crash: 'the bus lives inside the test process, so a consumer cannot be killed apart from it' },
});
