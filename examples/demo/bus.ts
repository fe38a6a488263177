import path from 'node:path';
import { busConfigSchema, type BusConfig, type BusConfigInput } from '../../src/config/bus.js';
import { tcpReachable } from '../../src/net.js';
import type { DemoOptions } from './options.js';

/** The demo's bus: its config per `--bus`, a reachability check with a fix to print, and cleanup of Redis keys. */

/**
 * The bus config for this run. Embedded: a file in the run's temporary directory. Redis: a key prefix of
 * its own. Kafka: the brokers as they are (topics are shared; see run.ts for how runs stay apart).
 */
export function busConfigFor(options: DemoOptions, tmp: string, runId: string): { input: BusConfigInput; config: BusConfig; where: string } {
  const of = (input: BusConfigInput, where: string) => ({ input, config: busConfigSchema.parse(input), where });
  switch (options.bus) {
    case 'embedded':
      return of({ kind: 'embedded', path: path.join(tmp, 'bus.db'), pollInterval: '10ms' }, `one SQLite file, ${path.join(tmp, 'bus.db')}, removed at exit`);
    case 'redis':
      // A prefix of its own per run: runs never read each other's streams, and cleanup is one SCAN.
      return of({ kind: 'redis', url: options.redisUrl, prefix: `cutover-demo:${runId}:`, blockTime: '200ms' }, `Redis at ${redact(options.redisUrl)}`);
    case 'kafka':
      return of({ kind: 'kafka', brokers: options.kafkaBrokers, partitions: 6, sessionTimeout: '10s', connectionTimeout: '3s', topicRefreshInterval: '1s' }, `Kafka at ${options.kafkaBrokers.join(',')}`);
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** `host:port` of the server behind `config` when none answers a TCP connect (Kafka: none of the brokers). */
export async function firstUnreachable(config: BusConfig): Promise<string | undefined> {
  const targets =
    config.kind === 'redis'
      ? [(({ hostname, port }) => `${hostname.replace(/^\[|\]$/g, '')}:${port || '6379'}`)(new URL(config.url))]
      : config.kind === 'kafka'
        ? config.brokers
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
    default:
      return 'The embedded bus needs a writable temporary directory.';
  }
}

