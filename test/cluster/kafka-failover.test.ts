import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBus } from '../../src/bus/index.js';
import { observationsTopicOf } from '../../src/events/wire.js';
import { PARITY_TOPIC } from '../../src/parity/types.js';
import { waitFor } from '../helpers/wait-for.js';
import type { BusReader } from '../faults/helpers/bus-fault.js';
import { collectKafka, type KafkaCollector } from '../faults/helpers/count.js';
import type { FlowUnderTest } from '../faults/helpers/sidecar.js';
import { faultSuite } from '../faults/helpers/suite.js';
import { startKafkaCluster, type KafkaCluster } from './helpers/clusters.js';
import { expectParityUnharmed, FailoverTable, publishThrough, runFailover, type FailoverResult, type PublishRun } from './helpers/failover.js';

/**
 * A three-broker Kafka cluster losing a node under traffic, with a sidecar in shadow mode and one in bus
 * mode: the broker leading the flow topic's first partition is SIGKILLed and restarted later, and all three
 * brokers are restarted one by one. Topics have three replicas and min.insync.replicas=2, and publishes wait
 * for all in-sync replicas, so nothing the cluster acknowledged may be lost.
 */
const suite = faultSuite('kafka-cluster');
const table = new FailoverTable();
let cluster: KafkaCluster;

/** Longer than the controller's broker session timeout (9 s), so a new leader is elected while the old one is down. */
const HOLD_MS = 12_000;

/**
 * How long the counting reader may take to read every event back once a fault is over: its consumer group
 * joins a coordinator that may itself have just moved with the killed node.
 */
const READ_BACK_MS = 150_000;

beforeAll(async () => {
  cluster = await startKafkaCluster();
  process.stderr.write(`\nCLUSTER kafka: three nodes started in ${cluster.startSeconds.toFixed(1)} s\n`);
  // The first consumer group of a cluster creates the offsets topic (50 partitions, three replicas): done
  // here, and fully replicated, before any fault, so no test's groups join while it is still being set up.
  const admin = new Kafka({ clientId: 'cluster-warm-up', brokers: cluster.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  // Not waitForLeaders: on a cluster this fresh, its metadata check can fail before every broker knows the topic.
  await admin.createTopics({ topics: [{ topic: 'cluster.warm-up', numPartitions: 1, replicationFactor: 3 }], waitForLeaders: false });
  await admin.disconnect();
  await cluster.leaderOf('cluster.warm-up', 0);
  const warm = await collectKafka(cluster.brokers, ['cluster.warm-up']);
  await warm.close();
  await cluster.waitFullyReplicated(120_000);
}, 360_000);
afterAll(async () => {
  table.print('Kafka cluster failover (3 brokers, replicationFactor 3, minInsyncReplicas 2)');
  await cluster?.close();
});

/**
 * A counting consumer that fails to start, takes longer than this to, or reads nothing new for this long is
 * replaced by one in a fresh group reading the same topics from the start: after a node loss a group's join
 * can stall on the cluster, which is the reader's trouble, not a loss. A replacement cannot hide a loss: it
 * reads the same topics and its events replace the old reader's.
 */
const READER_STALL_MS = 30_000;

/**
 * collectKafka, rejected when it has not started within READER_STALL_MS (one timer, cleared once it settles);
 * a consumer that starts after that is closed at once, since nobody reads it.
 */
function startCollector(topics: string[]): Promise<KafkaCollector> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`the counting consumer did not start within ${READER_STALL_MS / 1000} s`));
    }, READER_STALL_MS);
    collectKafka(cluster.brokers, topics).then(
      (c) => {
        clearTimeout(timer);
        if (late) void c.close().catch(() => undefined);
        else resolve(c);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function reader(mode: 'shadow' | 'bus') {
  return (flow: FlowUnderTest): BusReader => {
    const topics = mode === 'shadow' ? [flow.topic, observationsTopicOf(flow.name), PARITY_TOPIC] : [flow.topic];
    let collector: Promise<KafkaCollector> | undefined;
    let seen = 0;
    let grewAt = 0;
    const replaced: Array<Promise<KafkaCollector>> = [];
    const replace = (why: string): void => {
      process.stderr.write(`counting reader: ${why}; reading ${topics.join(', ')} again in a fresh group\n`);
      replaced.push(collector!);
      collector = undefined;
    };
    return {
      async read() {
        if (!collector) {
          collector = startCollector(topics);
          seen = 0;
          grewAt = Date.now();
        }
        let current: KafkaCollector;
        try {
          current = await collector;
        } catch (err) {
          replace((err as Error).message);
          return [];
        }
        const events = current.events();
        if (events.length > seen) {
          seen = events.length;
          grewAt = Date.now();
        } else if (Date.now() - grewAt > READER_STALL_MS) {
          replace(`nothing new for ${READER_STALL_MS / 1000} s after ${seen} events`);
        }
        return events;
      },
      close: async () => {
        // A stalled consumer may not leave its group promptly either: each gets 10 s.
        await Promise.all([...replaced, ...(collector ? [collector] : [])].map((c) => Promise.race([c.then((x) => x.close()).catch(() => undefined), sleep(10_000)])));
      },
    };
  };
}

function busYaml(): string {
  return `{ kind: kafka, brokers: [${cluster.brokers.join(', ')}], replicationFactor: 3, minInsyncReplicas: 2, sessionTimeout: 10s, publishTimeout: 2s }`;
}

/** Stops (SIGTERM), restarts and waits for each broker in turn, as an operator upgrading the cluster does. */
async function rollingRestart(): Promise<void> {
  for (const node of cluster.nodes) {
    await node.stop();
    await node.restart();
    await cluster.waitFullyReplicated(120_000);
  }
}

function expectNothingLost(r: FailoverResult): void {
  expect(r.failed, `calls failed; sidecar stderr: ${r.stderr.slice(-1500)}`).toBe(0);
  expect(r.missing, `missing; sidecar stderr: ${r.stderr.slice(-1500)}`).toEqual([]);
  expect(r.lost).toBe(0);
  expectParityUnharmed(r);
}

describe('sidecar on a three-broker Kafka cluster', () => {
  it.each(['shadow', 'bus'] as const)(
    '%s mode: the partition leader SIGKILLed mid-traffic, restarted later: no call fails, nothing acknowledged is lost',
    async (mode) => {
      const r = await runFailover({
        scenario: `kafka leader killed (${mode})`,
        mode,
        busYaml: busYaml(),
        reader: reader(mode),
        async fault(flow) {
          const leader = await cluster.leaderOf(flow.topic, 0);
          await leader.kill();
          await sleep(HOLD_MS);
          await leader.restart();
          await cluster.waitFullyReplicated(120_000);
        },
        upstream: suite.upstream,
        dir: suite.dir,
        defer: suite.defer,
        recoveryMs: READ_BACK_MS,
      });
      table.add(r);
      expectNothingLost(r);
    },
    450_000,
  );

  it('rolling restart of all three brokers, under a sidecar in shadow mode, one in bus mode and the adapter publishing: nothing lost', async () => {
    // One rolling restart serves all three: a JVM restart costs more than the traffic it carries.
    const prefix = `cl-roll-${randomUUID().slice(0, 6)}`;
    const topic = `events.cluster.${prefix}`;
    const bus = await openBus({ kind: 'kafka', brokers: cluster.brokers, replicationFactor: 3, minInsyncReplicas: 2, publishTimeout: '2s' });
    suite.defer(() => bus.close());
    let run: PublishRun | undefined;
    let busMode: FailoverResult | undefined;
    const shadow = await runFailover({
      scenario: 'kafka rolling restart (shadow)',
      mode: 'shadow',
      busYaml: busYaml(),
      reader: reader('shadow'),
      fault: async () => {
        busMode = await runFailover({
          scenario: 'kafka rolling restart (bus)',
          mode: 'bus',
          busYaml: busYaml(),
          reader: reader('bus'),
          fault: async () => void (run = await publishThrough(bus, topic, prefix, rollingRestart)),
          upstream: suite.upstream,
          dir: suite.dir,
          defer: suite.defer,
          recoveryMs: READ_BACK_MS,
        });
      },
      upstream: suite.upstream,
      dir: suite.dir,
      defer: suite.defer,
      recoveryMs: READ_BACK_MS,
    });
    table.add(shadow);
    table.add(busMode!);
    await bus.close();

    const collector = await collectKafka(cluster.brokers, [topic]);
    suite.defer(() => collector.close());
    const acked = run!.acked;
    let lost = acked.length;
    await waitFor(
      () => {
        const held = new Set(collector.events().map((e) => e.callId));
        lost = acked.filter((id) => !held.has(id)).length;
        return lost === 0;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'every acknowledged publish read back' },
    ).catch(() => undefined);
    const events = collector.events();
    table.add({ scenario: 'kafka adapter, rolling restart', calls: acked.length + run!.failed, failed: run!.failed, fallback: '-', lost, duplicated: events.length - new Set(events.map((e) => e.callId)).size, recoveryMs: run!.longestGapMs });

    expectNothingLost(shadow);
    expectNothingLost(busMode!);
    expect(acked.length).toBeGreaterThan(0);
    expect(lost).toBe(0);
  }, 700_000);
});
