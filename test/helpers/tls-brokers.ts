import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { tcpReachable } from '../../src/net.js';
import type { TestPki } from './certs.js';
import { freePort } from '../faults/helpers/brokers.js';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const kafkaScript = path.join(root, 'test/brokers/kafka.sh');

/** Why Kafka-over-TLS tests cannot run here, or undefined when they can (a broker needs java). */
export function kafkaUnavailableReason(): string | undefined {
  return spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0 ? undefined : 'java is not installed: the test starts a Kafka broker of its own';
}

export interface TlsKafka {
  /** TLS listener, no client certificate asked for. */
  tlsBrokers: string[];
  /** TLS listener that requires a client certificate signed by the test CA (mutual TLS). */
  mtlsBrokers: string[];
  /** Stops the broker (by its pid file, through kafka.sh) and removes its run directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A single-node Kafka with two TLS listeners and no plaintext one for clients: `port` without client
 * authentication, `port + 2` requiring a client certificate (a per-listener `ssl.client.auth` override),
 * the KRaft controller on `port + 1`. Key store and trust store are the test PKI's PEM files. The broker
 * talks to itself over the first listener with its server certificate.
 */
export async function startTlsKafka(pki: TestPki, port = 28092): Promise<TlsKafka> {
  const cport = port + 1;
  const mport = port + 2;
  const keystore = path.join(pki.dir, 'broker-keystore.pem');
  writeFileSync(keystore, readFileSync(pki.server.key, 'utf8') + readFileSync(pki.server.cert, 'utf8'));
  const props = path.join(pki.dir, `kafka-${port}.properties`);
  writeFileSync(
    props,
    [
      `listeners=SSL://127.0.0.1:${port},MTLS://127.0.0.1:${mport},CONTROLLER://127.0.0.1:${cport}`,
      `advertised.listeners=SSL://127.0.0.1:${port},MTLS://127.0.0.1:${mport}`,
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,SSL:SSL,MTLS:SSL',
      'inter.broker.listener.name=SSL',
      'ssl.keystore.type=PEM',
      `ssl.keystore.location=${keystore}`,
      'ssl.truststore.type=PEM',
      `ssl.truststore.location=${pki.ca.cert}`,
      'ssl.client.auth=none',
      'listener.name.mtls.ssl.client.auth=required',
      '',
    ].join('\n'),
  );
  const cache = process.env.CUTOVER_CACHE ?? path.join(root, '.cache');
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(cport), CUTOVER_CACHE: cache, KAFKA_EXTRA_PROPERTIES: props };
  const runDir = path.join(cache, `kafka-run-${port}`);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await run('bash', [kafkaScript, 'stop'], { env }).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
  };
  try {
    await run('bash', [kafkaScript, 'start'], { env, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    await stop();
    const e = err as { stderr?: string; message: string };
    throw new Error(`could not start a TLS Kafka on 127.0.0.1:${port}: ${e.stderr ?? e.message}`);
  }
  return { tlsBrokers: [`127.0.0.1:${port}`], mtlsBrokers: [`127.0.0.1:${mport}`], stop };
}

export interface TlsRedis {
  port: number;
  /** `redis://127.0.0.1:<tls port>`: TLS comes from the bus's `tls` setting. */
  url: string;
  /** Kills the server (by its pid) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A `redis-server` of this test's own that speaks only TLS (`--port 0`), with the test PKI's server
 * certificate, on a free port; `authClients` requires a client certificate signed by the test CA.
 */
export async function startTlsRedis(pki: TestPki, options: { authClients: boolean }): Promise<TlsRedis> {
  const port = await freePort();
  const args = [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', pki.server.cert, '--tls-key-file', pki.server.key, '--tls-ca-cert-file', pki.ca.cert,
    '--tls-auth-clients', options.authClients ? 'yes' : 'no',
    '--save', '', '--appendonly', 'no', '--daemonize', 'no',
  ];
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    await waitFor(() => (child.exitCode !== null ? Promise.reject(new Error(`redis-server exited: ${stderr}`)) : tcpReachable('127.0.0.1', port, 500)), { timeoutMs: 15_000, what: `redis-server TLS on ${port}` });
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop };
}

/** Why RabbitMQ-over-TLS tests cannot run here, or undefined when they can (a node of the test's own needs the server). */
export function rabbitmqUnavailableReason(): string | undefined {
  return existsSync(RABBITMQ_SERVER) ? undefined : `${RABBITMQ_SERVER} is not installed: the test starts a RabbitMQ node of its own`;
}

/** The server script itself, not the /usr/sbin wrapper: the wrapper would switch to the rabbitmq user, who cannot read the test's key files. */
const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface TlsRabbit {
  /** `amqps://guest:guest@127.0.0.1:<port>/`: a listener that requires a client certificate from the test CA. */
  url: string;
  /** Stops the node (by its pid) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A RabbitMQ node of this test's own beside the machine's (its own node name, ports, data and log
 * directories), listening only on TLS with the test PKI's server certificate and requiring client
 * certificates signed by the test CA (`verify_peer`, `fail_if_no_peer_cert`).
 */
export async function startTlsRabbit(pki: TestPki): Promise<TlsRabbit> {
  const [port, distPort] = [await freePort(), await freePort()];
  const dir = path.join(pki.dir, `rabbitmq-${port}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'rabbitmq.conf'),
    [
      'listeners.tcp = none',
      `listeners.ssl.default = ${port}`,
      `ssl_options.cacertfile = ${pki.ca.cert}`,
      `ssl_options.certfile = ${pki.server.cert}`,
      `ssl_options.keyfile = ${pki.server.key}`,
      'ssl_options.verify = verify_peer',
      'ssl_options.fail_if_no_peer_cert = true',
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(dir, 'enabled_plugins'), '[].\n');
  const pidFile = path.join(dir, 'pid');
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: `cutover-tls-${port}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: pidFile,
  };
  const child: ChildProcess = spawn(RABBITMQ_SERVER, [], { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // The script execs the Erlang VM, whose pid RabbitMQ also writes to the pid file.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => (child.exitCode !== null ? Promise.reject(new Error(`rabbitmq-server exited: ${output.slice(-2_000)}`)) : tcpReachable('127.0.0.1', port, 500)), { timeoutMs: 60_000, what: `RabbitMQ TLS listener on ${port}` });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `amqps://guest:guest@127.0.0.1:${port}/`, stop };
}
