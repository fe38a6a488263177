import { execFile, execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

/**
 * Makes the real brokers the integration tests need available:
 * - Redis at REDIS_URL (default redis://127.0.0.1:6379), which our machines run already;
 * - Kafka at KAFKA_BROKERS, or a single-node KRaft broker that test/brokers/kafka.sh starts from Maven
 *   Central jars and that this file stops again after the run.
 * With CI set, a missing broker fails the run. Without it, the suites that need it are skipped and one loud
 * line says why.
 */
const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const kafkaScript = path.join(root, 'test/brokers/kafka.sh');

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string | null;
    kafkaBrokers: string | null;
    brokersSkipReason: string;
  }
}

function reachable(host: string, port: number, timeoutMs = 1_500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const ci = Boolean(process.env.CI) && process.env.CI !== 'false';
let startedKafka = false;

function loud(line: string): void {
  process.stderr.write(`\n!!! ${line}\n\n`);
}

export async function setup(project: TestProject): Promise<void> {
  const reasons: string[] = [];

  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const u = new URL(redisUrl);
  const redisOk = await reachable(u.hostname, Number(u.port || 6379));
  if (!redisOk) {
    const why = `Redis is not reachable at ${redisUrl}`;
    if (ci) throw new Error(`${why} (CI=true: the Redis suites cannot be skipped)`);
    loud(`SKIPPING the Redis suites: ${why}. Start redis-server or set REDIS_URL.`);
    reasons.push(why);
  }
  project.provide('redisUrl', redisOk ? redisUrl : null);

  let kafkaBrokers: string | null = process.env.KAFKA_BROKERS ?? null;
  if (kafkaBrokers) {
    const [host, port] = kafkaBrokers.split(',')[0]!.split(':');
    if (!(await reachable(host!, Number(port)))) {
      const why = `KAFKA_BROKERS=${kafkaBrokers} is set but does not answer`;
      if (ci) throw new Error(why);
      loud(`SKIPPING the Kafka suites: ${why}.`);
      reasons.push(why);
      kafkaBrokers = null;
    }
  } else if (!has('java') || !has('mvn')) {
    const why = 'java and mvn are needed to fetch and run the test Kafka broker (test/brokers/kafka.sh)';
    if (ci) throw new Error(`${why} (CI=true: the Kafka suites cannot be skipped)`);
    loud(`SKIPPING the Kafka suites: ${why}. Install a JDK 17 and Maven, or set KAFKA_BROKERS.`);
    reasons.push(why);
  } else {
    const port = process.env.KAFKA_PORT ?? '19092';
    const wasRunning = await run('bash', [kafkaScript, 'status']).then(() => true, () => false);
    try {
      await run('bash', [kafkaScript, 'start'], { env: { ...process.env, KAFKA_PORT: port }, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`could not start the test Kafka broker: ${e.stderr ?? e.message}`);
    }
    startedKafka = !wasRunning && !process.env.CUTOVER_KEEP_KAFKA;
    kafkaBrokers = `127.0.0.1:${port}`;
  }
  project.provide('kafkaBrokers', kafkaBrokers);
  project.provide('brokersSkipReason', reasons.join('; '));
}

export async function teardown(): Promise<void> {
  if (startedKafka) await run('bash', [kafkaScript, 'stop']).catch(() => undefined);
}
