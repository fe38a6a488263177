import path from 'node:path';
import { busConfigSchema, type BusConfig, type BusConfigInput } from '../../src/config/bus.js';
import { tcpReachable } from '../../src/net.js';
import type { DemoOptions } from './options.js';

/** The demo's bus: its config per `--bus`, a reachability check with a fix to print, and cleanup of what a run made. */

/**
 * The bus config for this run. Embedded: a file in the run's temporary directory. Redis: a key prefix of
 * its own. Kafka: the brokers as they are (topics are shared; see run.ts for how runs stay apart). RabbitMQ:
 * a name prefix of its own per run, whose exchanges and queues are deleted at the end.
 */
export function busConfigFor(options: DemoOptions, tmp: string, runId: string): { input: BusConfigInput; config: BusConfig; where: string } {
  const of = (input: BusConfigInput, where: string) => ({ input, config: busConfigSchema.parse(input), where });
  switch (options.bus) {
    case 'embedded':
      // Every subscription polls the file: with the checkout saga's (its participants' topics, the saga topic)
      // a 10 ms poll took more of the demo's one core than the traffic did; 25 ms keeps the run near its old length.
      return of({ kind: 'embedded', path: path.join(tmp, 'bus.db'), pollInterval: '25ms' }, `one SQLite file, ${path.join(tmp, 'bus.db')}, removed at exit`);
    case 'redis':
      // A prefix of its own per run: runs never read each other's streams, and cleanup is one SCAN.
      return of({ kind: 'redis', url: options.redisUrl, prefix: `cutover-demo:${runId}:`, blockTime: '200ms' }, `Redis at ${redact(options.redisUrl)}`);
    case 'kafka':
      return of({ kind: 'kafka', brokers: options.kafkaBrokers, partitions: 6, sessionTimeout: '10s', connectionTimeout: '3s', topicRefreshInterval: '1s' }, `Kafka at ${options.kafkaBrokers.join(',')}`);
    case 'rabbitmq':
      return of({ kind: 'rabbitmq', url: options.rabbitmqUrl, prefix: `cutover-demo-${runId}`, partitions: 2, rebalanceInterval: '200ms', connectionTimeout: '3s' }, `RabbitMQ at ${redact(options.rabbitmqUrl)}`);
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** `host:port` of a URL's server, with the scheme's default port. */
function hostPort(url: string, defaultPort: string): string {
  const { hostname, port } = new URL(url);
  return `${hostname.replace(/^\[|\]$/g, '')}:${port || defaultPort}`;
}

/** `host:port` of the server behind `config` when none answers a TCP connect (Kafka: none of the brokers). */
export async function firstUnreachable(config: BusConfig): Promise<string | undefined> {
  const targets =
    config.kind === 'redis'
      ? [hostPort(config.url, '6379')]
      : config.kind === 'kafka'
        ? config.brokers
        : config.kind === 'rabbitmq'
          ? [hostPort(config.url, config.url.startsWith('amqps:') ? '5671' : '5672')]
          : [];
  if (targets.length === 0) return undefined;
  const results = await Promise.all(
    targets.map((t) => {
      const i = t.lastIndexOf(':');
      return tcpReachable(t.slice(0, i), Number(t.slice(i + 1)));
    }),
  );
  return results.some(Boolean) ? undefined : targets.join(', ');
}

/** The fix to print when the bus the user asked for is not there. */
export function busHelp(options: DemoOptions): string {
  switch (options.bus) {
    case 'redis':
      return `Start Redis (for example: redis-server --daemonize yes, or docker run -d -p 6379:6379 redis:7) or point REDIS_URL at one, then run npm start -- --bus redis again. Or run the demo without a server: npm start`;
    case 'kafka':
      return `Start one with: npm run kafka:start (a single-node KRaft broker on 127.0.0.1:19092), or point KAFKA_BROKERS at yours (host:port[,host:port]), then run npm start -- --bus kafka again. Or run the demo without a server: npm start`;
    case 'rabbitmq':
      return `Start RabbitMQ 3.10 or later (for example: docker run -d -p 5672:5672 rabbitmq:3.13, or systemctl start rabbitmq-server) or point RABBITMQ_URL at one (amqp://user:password@host:5672/vhost), then run npm start -- --bus rabbitmq again. Or run the demo without a server: npm start`;
    default:
      return 'The embedded bus needs a writable temporary directory.';
  }
}

