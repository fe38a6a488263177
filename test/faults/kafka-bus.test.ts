import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OBSERVATIONS_TOPIC } from '../../src/events/wire.js';
import { startKafka, type OwnedBroker } from './helpers/brokers.js';
import { runBusFault, type BusReader } from './helpers/bus-fault.js';
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
      collector ??= collectKafka(kafka.brokers, [flow.topic, OBSERVATIONS_TOPIC]);
      return (await collector).events();
    },
    close: async () => void (await (await collector)?.close()),
  };
}

describe('sidecar on a Kafka bus that fails', () => {
  it('Kafka killed mid-traffic, then restarted: no direct call fails, every event arrives', async () => {
    const r = await runBusFault({
      scenario: 'kafka killed + restarted',
      broker: kafka,
      busYaml: `{ kind: kafka, brokers: [${kafka.brokers.join(', ')}] }`,
      reader: kafkaReader,
      fault: 'kill',
      holdMs: HOLD_MS,
      upstream,
      dir,
      defer,
      recoveryMs: 60_000,
    });
    expect(r.failed).toBe(0);
    expect(r.tally.missing, `missing events; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
    expect(r.lost).toBe(0);
  }, 180_000);

  it('Kafka paused (SIGSTOP) mid-traffic, then resumed: no direct call fails, every event arrives', async () => {
    const r = await runBusFault({
      scenario: 'kafka paused + resumed',
      broker: kafka,
      busYaml: `{ kind: kafka, brokers: [${kafka.brokers.join(', ')}] }`,
      reader: kafkaReader,
      fault: 'pause',
      holdMs: HOLD_MS,
      upstream,
      dir,
      defer,
      recoveryMs: 60_000,
    });
    expect(r.failed).toBe(0);
    expect(r.tally.missing, `missing events; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
    expect(r.lost).toBe(0);
  }, 180_000);
});
