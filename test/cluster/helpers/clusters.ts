import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from '../../helpers/wait-for.js';
import { kafkaCache, ownedJvm, startRedis, type OwnedBroker } from '../../faults/helpers/brokers.js';

/**
 * The clusters the failover suites own and break: a three-node Kafka (test/brokers/kafka-cluster.sh) and a
 * Redis primary with one replica and three Sentinels. Their ports are fixed (below the ephemeral range, so
 * no outgoing connection holds them): Kafka 27092-27094 with controllers 27192-27194, Redis 26400/26401,
 * Sentinels 26500-26502. The machine's shared brokers are never touched.
 */
const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../../..');
const clusterScript = path.join(root, 'test/brokers/kafka-cluster.sh');

export const KAFKA_CLUSTER_PORTS = [27092, 27093, 27094];
const KAFKA_CLUSTER_CONTROLLER_PORTS = [27192, 27193, 27194];

export interface KafkaNode extends OwnedBroker {
  readonly id: number;
  /** SIGTERM (a controlled shutdown: leadership moves first), then wait for the exit. */
  stop(): Promise<void>;
}

export interface KafkaCluster {
  readonly nodes: KafkaNode[];
  readonly brokers: string[];
  /** Seconds the three nodes took to start. */
  readonly startSeconds: number;
  /** The node leading `partition` of `topic` now. */
  leaderOf(topic: string, partition: number): Promise<KafkaNode>;
  /** Waits until every partition of every topic has all its replicas in sync (nothing under-replicated). */
  waitFullyReplicated(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startKafkaCluster(): Promise<KafkaCluster> {
  const env = {
    ...process.env,
    CUTOVER_CACHE: kafkaCache(),
    KAFKA_CLUSTER_PORTS: KAFKA_CLUSTER_PORTS.join(','),
    KAFKA_CLUSTER_CONTROLLER_PORTS: KAFKA_CLUSTER_CONTROLLER_PORTS.join(','),
  };
  const began = Date.now();
  const started = await run('bash', [clusterScript, 'start'], { env, maxBuffer: 16 * 1024 * 1024 }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`could not start the Kafka cluster: ${err.stderr ?? err.message}`);
  });
  const startSeconds = (Date.now() - began) / 1000;
  const nodes: KafkaNode[] = started.stdout
    .trim()
    .split('\n')
    .map((line) => line.split(' ').map(Number))
    .map(([id, port, pid]) => {
      const jvm = ownedJvm(pid!, port!);
      return {
        ...jvm,
        id: id!,
        async stop() {
          await jvm.terminate();
        },
      };
    });
  const brokers = nodes.map((n) => `127.0.0.1:${n.port}`);
  const kafka = new Kafka({ clientId: 'cluster-test-admin', brokers, logLevel: logLevel.NOTHING, connectionTimeout: 2_000, requestTimeout: 5_000, retry: { retries: 2 } });
  const admin = kafka.admin();
  const withAdmin = async <T>(fn: () => Promise<T>): Promise<T> => {
    await admin.connect();
    return fn();
  };
  return {
    nodes,
    brokers,
    startSeconds,
    async leaderOf(topic, partition) {
      // The topic may be brand new: wait until its metadata names a leader. A fresh client for each look: one
      // that knew a broker before it was killed and restarted can keep failing on its old connection.
      let last = 'no answer yet';
      const leader = await waitFor(
        async () => {
          const probe = kafka.admin();
          try {
            await probe.connect();
            const { topics } = await probe.fetchTopicMetadata({ topics: [topic] });
            const id = topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader;
            last = `metadata names leader ${String(id)}`;
            return nodes.find((n) => n.id === id);
          } catch (err) {
            last = (err as Error).message;
            return undefined;
          } finally {
            await probe.disconnect().catch(() => undefined);
          }
        },
        { timeoutMs: 60_000, intervalMs: 250, what: `a leader of ${topic}[${partition}]` },
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last look: ${last}`);
      });
      return leader;
    },
    async waitFullyReplicated(timeoutMs) {
      await waitFor(
        async () => {
          try {
            const { topics } = await withAdmin(() => admin.fetchTopicMetadata());
            return topics.every((t) => t.partitions.every((p) => p.isr.length === p.replicas.length));
          } catch {
            return false;
          }
        },
        { timeoutMs, intervalMs: 500, what: 'every partition fully replicated' },
      );
    },
    async close() {
      await admin.disconnect().catch(() => undefined);
      await Promise.all(nodes.map((n) => n.close()));
      await Promise.all(KAFKA_CLUSTER_PORTS.map((p) => rm(path.join(kafkaCache(), `kafka-run-${p}`), { recursive: true, force: true })));
    },
  };
}

export const REDIS_PRIMARY_PORT = 26400;
export const REDIS_REPLICA_PORT = 26401;
export const SENTINEL_PORTS = [26500, 26501, 26502];
export const SENTINEL_MASTER = 'mymaster';

export interface RedisSentinelSetup {
  /** The two data nodes by port; which one is the primary changes with failovers. */
  readonly nodes: Map<number, OwnedBroker>;
  readonly sentinels: string[];
  /** The port of the primary the sentinels name now. */
  primaryPort(): Promise<number>;
  /** Waits until the sentinels name a primary other than `port` and it accepts writes. */
  waitFailover(port: number, timeoutMs: number): Promise<number>;
  /** Restarts the node on `port` (a former primary, killed) and waits until it is the primary's replica, in sync. */
  rejoin(port: number, timeoutMs: number): Promise<void>;
  /**
   * Every primary switch the sentinels made so far, oldest first, as logged ("+switch-master mymaster
   * 127.0.0.1 26400 127.0.0.1 26401" with its time), from the sentinel that logged the most.
   */
  switches(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * One primary, one replica and three Sentinels (quorum 2) watching it. A primary silent for a second is
 * down (`down-after-milliseconds 1000`), so a failover takes a few seconds. No persistence: the replica is
 * what keeps the data, as in a Sentinel deployment.
 *
 * A restarted node syncs at once (`repl-diskless-sync-delay 0`; the default waits 5 s for more replicas):
 * until its first sync it is empty, and Sentinel (7.0) takes a replica that never synced for one in sync,
 * so a primary that stalls past down-after in that window can get the empty node promoted over it (and,
 * turned into its replica, resync from it). Each sentinel logs its switches (`switches()`), so a test can
 * tell a failover it made from one the machine's load made.
 */
export async function startRedisSentinel(dir: string): Promise<RedisSentinelSetup> {
  const started: OwnedBroker[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(started.map((b) => b.close()));
  };
  const sentinelLog = (port: number): string => path.join(dir, `sentinel-${port}.log`);
  try {
    const sync = ['--repl-diskless-sync-delay', '0'];
    const primary = await startRedis({ port: REDIS_PRIMARY_PORT, dir: await mkdtemp(path.join(dir, 'primary-')), args: sync });
    started.push(primary);
    const replica = await startRedis({ port: REDIS_REPLICA_PORT, dir: await mkdtemp(path.join(dir, 'replica-')), args: [...sync, '--replicaof', '127.0.0.1', String(REDIS_PRIMARY_PORT)] });
    started.push(replica);
    for (const port of SENTINEL_PORTS) {
      // Sentinel rewrites its config file: each gets its own, fresh.
      const conf = path.join(dir, `sentinel-${port}.conf`);
      await writeFile(
        conf,
        [
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${REDIS_PRIMARY_PORT} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
        ].join('\n'),
      );
      started.push(await startRedis({ port, dir, args: [conf, '--sentinel', '--logfile', sentinelLog(port)] }));
    }
    /** Runs `fn` on a short-lived connection to 127.0.0.1:`port`; false when it does not answer. */
    const on = async <T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T | false> => {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1_000 });
      try {
        await r.connect();
        return await fn(r);
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    };
    const ask = async (): Promise<number> => {
      for (const port of SENTINEL_PORTS) {
        const addr = await on(port, (s) => s.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER) as Promise<[string, string] | null>);
        if (addr) return Number(addr[1]);
      }
      throw new Error('no sentinel named a primary');
    };
    const isWritablePrimary = async (port: number): Promise<boolean> => (await on(port, async (r) => /role:master/.test(await r.info('replication')))) === true;
    /**
     * A failover can happen only once the primary has a replica in sync and every sentinel knows the other
     * two and the replica (sentinels find replicas in the primary's INFO, every 10 s).
     */
    const failoverReady = async (): Promise<boolean> => {
      const primaryPort = await ask().catch(() => 0);
      if (!(await on(primaryPort, async (r) => /slave0:.*state=online/.test(await r.info('replication'))))) return false;
      for (const port of SENTINEL_PORTS) {
        const ready = await on(port, async (s) => {
          const master = (await s.call('SENTINEL', 'master', SENTINEL_MASTER)) as string[];
          const field = (name: string): number => Number(master[master.indexOf(name) + 1]);
          return field('num-other-sentinels') === SENTINEL_PORTS.length - 1 && field('num-slaves') >= 1;
        });
        if (!ready) return false;
      }
      return true;
    };
    await waitFor(failoverReady, { timeoutMs: 30_000, intervalMs: 250, what: 'replica in sync, known to every sentinel' });
    const nodes = new Map([
      [REDIS_PRIMARY_PORT, primary],
      [REDIS_REPLICA_PORT, replica],
    ]);
    return {
      nodes,
      sentinels: SENTINEL_PORTS.map((p) => `127.0.0.1:${p}`),
      primaryPort: ask,
      async waitFailover(port, timeoutMs) {
        let now = port;
        await waitFor(
          async () => {
            now = await ask().catch(() => port);
            return now !== port && (await isWritablePrimary(now));
          },
          { timeoutMs, intervalMs: 200, what: `a primary other than ${port}` },
        );
        return now;
      },
      async rejoin(port, timeoutMs) {
        await nodes.get(port)!.restart();
        // Sentinel turns the returning former primary into a replica of the new one; it then syncs.
        await waitFor(failoverReady, { timeoutMs, intervalMs: 250, what: `127.0.0.1:${port} back as an in-sync replica` });
      },
      async switches() {
        const logs = await Promise.all(SENTINEL_PORTS.map((port) => readFile(sentinelLog(port), 'utf8').catch(() => '')));
        const each = logs.map((log) => log.split('\n').filter((line) => line.includes('+switch-master')).map((line) => line.replace(/^\d+:X /, '')));
        return each.reduce((most, list) => (list.length > most.length ? list : most), [] as string[]);
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
