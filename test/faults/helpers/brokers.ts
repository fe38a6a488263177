import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { tcpReachable } from '../../../src/net.js';
import { waitFor } from '../../helpers/wait-for.js';

/**
 * Brokers a fault test owns: it kills, pauses and restarts these by pid. The machine's shared Redis and
 * Kafka are never touched; other tests and agents are using them.
 */
const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../../..');
const kafkaScript = path.join(root, 'test/brokers/kafka.sh');

/** A loopback port nobody listens on right now (the OS picks it; free again once closed). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to `pid` when it still runs; a process already gone is not an error in cleanup. */
function signalPid(pid: number, signal: NodeJS.Signals): void {
  if (alive(pid)) process.kill(pid, signal);
}

export interface OwnedBroker {
  readonly host: string;
  readonly port: number;
  /** SIGKILL, then wait until nothing answers on the port. */
  kill(): Promise<void>;
  /** Starts the same broker again on the same port (Kafka: on the same data directory). */
  restart(): Promise<void>;
  /** SIGSTOP: the port still accepts connections, nothing answers. */
  pause(): void;
  resume(): void;
  /** Kills whatever this broker runs now and removes what it left on disk; idempotent. */
  close(): Promise<void>;
}

/**
 * A `redis-server` child on a free port (or `port`), without snapshots. With `aofDir`, every write is fsynced
 * to an append-only file there before Redis answers it, so a SIGKILL loses nothing Redis acknowledged:
 * without it, a killed Redis would come back empty and a kill test would count the broker's loss as the
 * sidecar's. `args` are more command-line options (`--replicaof`, `--sentinel`, a config file first).
 */
export async function startRedis(options: { aofDir?: string; dir?: string; port?: number; args?: string[] } = {}): Promise<OwnedBroker & { url: string }> {
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  // `dir`: where a replica's full sync puts its RDB file (otherwise the working directory).
  const dir = options.aofDir ?? options.dir;
  const persistence = [...(options.aofDir ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']), ...(dir ? ['--dir', dir] : [])];
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', [...(options.args ?? []), '--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--daemonize', 'no'], { stdio: 'ignore' });
    await waitFor(() => tcpReachable('127.0.0.1', port, 500), { timeoutMs: 15_000, what: `redis-server on ${port}` });
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    // A stopped process must be continued for the kill to be reaped promptly.
    c.kill('SIGKILL');
    c.kill('SIGCONT');
    await exited;
  };
  await launch();
  return {
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    close: kill,
  };
}

/** Where kafka.sh keeps its jars: the repo's .cache (fetched by the global setup) unless CUTOVER_CACHE says otherwise. */
export function kafkaCache(): string {
  return process.env.CUTOVER_CACHE ?? path.join(root, '.cache');
}

/** A single-node Kafka of this test's own, started by test/brokers/kafka.sh on free ports (see {@link ownedJvm}). */
export async function startKafka(): Promise<OwnedBroker & { brokers: string[] }> {
  const port = await freePort();
  const cport = await freePort();
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(cport), CUTOVER_CACHE: kafkaCache() };
  const runDir = path.join(kafkaCache(), `kafka-run-${port}`);
  const started = await run('bash', [kafkaScript, 'start'], { env, maxBuffer: 16 * 1024 * 1024 }).catch(async (err: { stderr?: string; message: string }) => {
    await rm(runDir, { recursive: true, force: true });
    throw new Error(`could not start a Kafka of our own on ${port}: ${err.stderr ?? err.message}`);
  });
  const jvm = ownedJvm(Number(started.stdout.trim().split('\n').pop()), port);
  return {
    ...jvm,
    brokers: [`127.0.0.1:${port}`],
    async close() {
      await jvm.close();
      await rm(runDir, { recursive: true, force: true });
    },
  };
}

/**
 * A broker JVM that kafka.sh started, as an OwnedBroker. kafka.sh formats fresh storage on every start, so
 * a restart relaunches the killed JVM with its own command line: the topics and records written before the
 * kill survive it, as on a real broker. `close` only kills.
 */
export function ownedJvm(startedPid: number, port: number): OwnedBroker & { terminate(): Promise<void> } {
  let pid: number | undefined = startedPid;
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const kill = async (): Promise<void> => {
    const p = pid;
    if (p === undefined || !alive(p)) return;
    signalPid(p, 'SIGKILL');
    signalPid(p, 'SIGCONT');
    await waitFor(() => !alive(p), { timeoutMs: 15_000, what: `kafka pid ${p} gone` });
    await waitFor(async () => !(await tcpReachable('127.0.0.1', port, 500)), { timeoutMs: 15_000, what: `nothing on ${port}` });
  };
  return {
    host: '127.0.0.1',
    port,
    kill,
    async restart() {
      // detached: its own process group, like kafka.sh's setsid, so vitest's signals do not reach it.
      const child = spawn(cmdline[0]!, cmdline.slice(1), { detached: true, stdio: 'ignore' });
      child.unref();
      pid = child.pid;
      await waitFor(() => tcpReachable('127.0.0.1', port, 500), { timeoutMs: 90_000, intervalMs: 250, what: `restarted kafka on ${port}` });
    },
    /** SIGTERM: the broker shuts down in a controlled way (leadership moves away first). */
    async terminate() {
      const p = pid;
      if (p === undefined || !alive(p)) return;
      signalPid(p, 'SIGTERM');
      await waitFor(() => !alive(p), { timeoutMs: 60_000, intervalMs: 200, what: `kafka pid ${p} shut down` });
    },
    pause: () => pid !== undefined && signalPid(pid, 'SIGSTOP'),
    resume: () => pid !== undefined && signalPid(pid, 'SIGCONT'),
    close: () => kill().catch(() => undefined),
  };
}
