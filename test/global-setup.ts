import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { tcpReachable } from '../src/net.js';

/**
 * Makes the real brokers the integration tests need available:
 * - Redis at REDIS_URL (default redis://127.0.0.1:6379), which our machines run already;
 * - Kafka at KAFKA_BROKERS, or a single-node KRaft broker that test/brokers/kafka.sh starts from Maven
 *   Central jars and that this file stops again after the run;
 * - RabbitMQ at RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/), which our machines run already
 *   (.ci/run starts one when it is not answering).
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
    rabbitmqUrl: string | null;
    brokersSkipReason: string;
  }
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
  const redisOk = await tcpReachable(u.hostname, Number(u.port || 6379));
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
    if (!(await tcpReachable(host!, Number(port)))) {
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

  const rabbitmqUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672/';
  const r = new URL(rabbitmqUrl);
  const rabbitOk = await tcpReachable(r.hostname, Number(r.port || 5672));
  if (!rabbitOk) {
    const why = `RabbitMQ is not reachable at ${r.hostname}:${r.port || 5672}`;
    if (ci) throw new Error(`${why} (CI=true: the RabbitMQ suites cannot be skipped)`);
    loud(`SKIPPING the RabbitMQ suites: ${why}. Start rabbitmq-server or set RABBITMQ_URL.`);
    reasons.push(why);
  }
  project.provide('rabbitmqUrl', rabbitOk ? rabbitmqUrl : null);
  project.provide('brokersSkipReason', reasons.join('; '));
}

export async function teardown(): Promise<void> {
  if (startedKafka) await run('bash', [kafkaScript, 'stop']).catch(() => undefined);
}
