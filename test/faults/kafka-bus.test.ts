import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { observationsTopicOf } from '../../src/events/wire.js';
import { startKafka, type OwnedBroker } from './helpers/brokers.js';
import { expectNothingLost, runBusFault, type BusReader } from './helpers/bus-fault.js';
import { collectKafka, type KafkaCollector } from './helpers/count.js';
import type { FlowUnderTest } from './helpers/sidecar.js';
import { startCountingUpstream, type CountingUpstream } from './helpers/traffic.js';

const HOLD_MS = 3_000;

let dir: string;
let upstream: CountingUpstream;
let kafka: OwnedBroker & { brokers: string[] };
const cleanups: Array<() => Promise<unknown>> = [];
const defer = (fn: () => Promise<unknown>): void => void cleanups.push(fn);

// One broker for both scenarios: a JVM start costs more than both faults together on two shared cores.
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-faults-kafka-'));
  upstream = await startCountingUpstream();
  kafka = await startKafka();
}, 180_000);
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
afterAll(async () => {
  await kafka?.close();
  await upstream?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Started only once the fault is over: by then the sidecar has created the flow's topic. */
function kafkaReader(flow: FlowUnderTest): BusReader {
  let collector: Promise<KafkaCollector> | undefined;
  return {
    async read() {
      collector ??= collectKafka(kafka.brokers, [flow.topic, observationsTopicOf(flow.name)]);
      return (await collector).events();
    },
    close: async () => void (await (await collector)?.close()),
  };
}

const FAULTS = [
  { fault: 'kill', what: 'killed mid-traffic, then restarted', scenario: 'kafka killed + restarted' },
  { fault: 'pause', what: 'paused (SIGSTOP) mid-traffic, then resumed', scenario: 'kafka paused + resumed' },
] as const;

describe('sidecar on a Kafka bus that fails', () => {
  // Each fault under each producer client (bus.client.producer); consumers are kafkajs in both.
  it.each((['kafkajs', 'platformatic'] as const).flatMap((producer) => FAULTS.map((f) => ({ ...f, producer }))))(
    'Kafka $what, $producer producer: no direct call fails, every event arrives',
    async ({ fault, scenario, producer }) => {
      const r = await runBusFault({
        scenario: `${scenario} (${producer} producer)`,
        broker: kafka,
        busYaml: `{ kind: kafka, brokers: [${kafka.brokers.join(', ')}], client: { producer: ${producer} } }`,
        reader: kafkaReader,
        fault,
        holdMs: HOLD_MS,
        upstream,
        dir,
        defer,
        recoveryMs: 60_000,
      });
      expectNothingLost(r);
    },
    180_000,
  );
});
