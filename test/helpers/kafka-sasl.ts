import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A single-node Kafka with a SASL/SCRAM-SHA-512 listener and the standard authorizer, for tests that need
 * the broker itself to enforce ACLs. Started by test/brokers/kafka.sh on ports of its own (default
 * 28192/28193: away from CI's 19092, and below the ephemeral port range, where no outgoing connection can
 * hold them); SCRAM users are created at format time.
 * `admin` is the super user; a client with no ACL is refused everything (`allow.everyone.if.no.acl.found=false`).
 * The controller listener stays PLAINTEXT on loopback, and its principal (ANONYMOUS) is a super user so the
 * broker can talk to its own controller: tests connect to the SASL port only.
 */
const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const script = path.join(root, 'test/brokers/kafka.sh');

export interface SaslKafka {
  brokers: string[];
  /** SASL settings of `user` for a kafka bus config. */
  sasl(user: string): { mechanism: 'scram-sha-512'; username: string; password: string };
  /** Stops the broker by its pid file and removes its files; idempotent. */
  close(): Promise<void>;
}

/** Why a SASL broker cannot be started here (no java), or undefined when it can. */
export function saslKafkaUnavailable(): string | undefined {
  try {
    execFileSync('java', ['-version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'java is not installed: the SASL/ACL Kafka broker cannot run';
  }
}

/** Starts the broker with `users` (name -> password; `admin` is added) and waits until it serves. */
export async function startSaslKafka(users: Record<string, string>, ports: { port?: number; controllerPort?: number } = {}): Promise<SaslKafka> {
  const port = ports.port ?? 28192;
  const cport = ports.controllerPort ?? 28193;
  const passwords: Record<string, string> = { admin: 'admin-secret', ...users };
  for (const [name, password] of Object.entries(passwords)) {
    // kafka.sh splits KAFKA_FORMAT_ARGS on spaces, and the SCRAM syntax uses , ] and =.
    if (!/^[A-Za-z0-9_-]+$/.test(name) || !/^[A-Za-z0-9_-]+$/.test(password)) throw new Error(`SCRAM user ${name}: use letters, digits, _ and - only`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-sasl-kafka-'));
  const properties = path.join(dir, 'sasl.properties');
  await writeFile(
    properties,
    [
      `listeners=SASL_PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}`,
      `advertised.listeners=SASL_PLAINTEXT://127.0.0.1:${port}`,
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT',
      'inter.broker.listener.name=SASL_PLAINTEXT',
      'sasl.enabled.mechanisms=SCRAM-SHA-512',
      'sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512',
      `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${passwords.admin}";`,
      'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
      'super.users=User:admin;User:ANONYMOUS',
      'allow.everyone.if.no.acl.found=false',
      '',
    ].join('\n'),
  );
  const env = {
    ...process.env,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(cport),
    CUTOVER_CACHE: process.env.CUTOVER_CACHE ?? path.join(root, '.cache'),
    KAFKA_EXTRA_PROPERTIES: properties,
    KAFKA_FORMAT_ARGS: Object.entries(passwords)
      .map(([name, password]) => `--add-scram SCRAM-SHA-512=[name=${name},password=${password}]`)
      .join(' '),
  };
  const stop = async (): Promise<void> => {
    await run('bash', [script, 'stop'], { env }).catch(() => undefined);
    await rm(path.join(env.CUTOVER_CACHE, `kafka-run-${port}`), { recursive: true, force: true });
  };
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await stop();
    await rm(dir, { recursive: true, force: true });
  };
  // One more attempt after a failed start: on a loaded 2-core machine the JVM has been seen to fail its first
  // start; both attempts' output is kept for the error.
  const failures: string[] = [];
  for (let attempt = 1; attempt <= 2 && failures.length === attempt - 1; attempt++) {
    try {
      await run('bash', [script, 'start'], { env, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      failures.push(`attempt ${attempt}: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
      await stop();
    }
  }
  if (failures.length === 2) {
    await close();
    throw new Error(`could not start the SASL Kafka on ${port}:\n${failures.join('\n')}`);
  }
  return {
    brokers: [`127.0.0.1:${port}`],
    sasl: (user) => {
      const password = passwords[user];
      if (password === undefined) throw new Error(`no SCRAM user ${user} on this broker`);
      return { mechanism: 'scram-sha-512', username: user, password };
    },
    close,
  };
}
