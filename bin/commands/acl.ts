import { kafkaAclsCommand, kafkaBindings } from '../../src/acl/kafka.js';
import { rabbitmqctlLines, rabbitmqPermissions, vhostOf } from '../../src/acl/rabbitmq.js';
import { redisAclLine, redisAclUsers } from '../../src/acl/redis.js';
import { knownTopics } from '../../src/acl/resources.js';
import { effectiveAcl } from '../../src/acl/rules.js';
import { applyKafkaAcls } from '../../src/bus/kafka/acls.js';
import { applyRabbitmqPermissions } from '../../src/bus/rabbitmq/acls.js';
import { rabbitNames } from '../../src/bus/rabbitmq/names.js';
import { applyRedisAcls } from '../../src/bus/redis/acls.js';
import { ConfigError, ErrorCodes } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { ExitCode, loadConfig, parseCommandArgs, usageError, type CliIo, type CommandDeps } from '../io.js';

export const ACL_USAGE = `usage: cutover acl --config FILE --bus kafka|redis|rabbitmq [--apply] [--node NODE]

  prints the broker's own access rules for the config's acl: section, cutover's implied topics included
  (docs/security.md, Topic authorization):
    kafka     kafka-acls.sh lines, one principal User:<agent> per identity
    redis     ACL SETUSER lines, one user per identity; passwords from CUTOVER_REDIS_PASSWORD_<AGENT>
    rabbitmq  rabbitmqctl set_permissions / set_topic_permissions lines, one user per identity, for the
              adapter's exchanges and queues under the bus prefix, in the vhost of the bus URL
  --bus defaults to the config's bus kind.
  --apply   create the rules on the config's bus instead of printing them, with the bus's own credentials
            (Kafka: a user allowed to alter ACLs; Redis: one allowed to run ACL SETUSER; RabbitMQ: runs
            rabbitmqctl from PATH, so on the broker's host or with --node; the users must exist). Applying
            twice is safe. Exit 0 when applied, 1 when the broker refused, 2 on a usage or config error.
  --node    RabbitMQ node for rabbitmqctl -n (default: rabbitmqctl's own, RABBITMQ_NODENAME).`;

const BUSES = ['kafka', 'redis', 'rabbitmq'] as const;
type AclBus = (typeof BUSES)[number];

/** `cutover acl`: the broker-side rules of the `acl:` section, printed or applied. */
export async function aclCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, bus: { type: 'string' }, apply: { type: 'boolean' }, node: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, ACL_USAGE);
  if (values.help) {
    io.out(ACL_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('acl needs --config FILE', ACL_USAGE);
  const config = loadConfig(values.config, deps);
  const bus = (values.bus ?? (config.bus.kind === 'embedded' ? undefined : config.bus.kind)) as AclBus | undefined;
  if (bus === undefined) throw usageError('acl needs --bus kafka|redis|rabbitmq (the config uses the embedded bus, which has no access rules)', ACL_USAGE);
  if (!BUSES.includes(bus)) throw usageError(`--bus ${bus}: expected kafka, redis or rabbitmq`, ACL_USAGE);
  const acl = effectiveAcl(config);
  if (!acl) throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${values.config}: acl: no acl: section to export (docs/security.md, Topic authorization)`, ['acl']);
  if (values.node !== undefined && bus !== 'rabbitmq') throw usageError(`--node is for --bus rabbitmq, not ${bus}`, ACL_USAGE);
  if (values.apply && bus !== config.bus.kind) {
    throw usageError(`--apply --bus ${bus} applies with the config's own bus connection, but its bus is ${config.bus.kind}`, ACL_USAGE);
  }
  const known = knownTopics(acl, config.flows.map((f) => f.topic));
  const logger = deps.logger ?? createLogger({ level: config.log.level });
  const warn = (notes: readonly string[]): void => notes.forEach((n) => io.err(`warning: ${n}`));

  if (bus === 'kafka') {
    const clientId = config.bus.kind === 'kafka' ? config.bus.clientId : 'cutover';
    const { bindings, notes } = kafkaBindings(acl, { clientId, known, observations: config.observationsTopic });
    warn(notes);
    if (values.apply && config.bus.kind === 'kafka') {
      const entries = await applyKafkaAcls(config.bus, bindings, logger);
      io.out(`applied ${entries} ACL entries (${bindings.length} bindings) for ${new Set(bindings.map((b) => b.principal)).size} principals`);
      return ExitCode.OK;
    }
    const bootstrap = config.bus.kind === 'kafka' ? config.bus.brokers.join(',') : 'BROKERS';
    io.out(`# Kafka ACLs from the acl: section of ${values.config} (standard authorizer; admin.properties holds the admin client's SASL/TLS settings)`);
    for (const b of bindings) io.out(kafkaAclsCommand(b, bootstrap));
    return ExitCode.OK;
  }

  if (bus === 'redis') {
    const prefix = config.bus.kind === 'redis' ? config.bus.prefix : 'cutover:';
    const { users, notes } = redisAclUsers(acl, { prefix, known, observations: config.observationsTopic });
    warn(notes);
    if (values.apply && config.bus.kind === 'redis') {
      const env = deps.env ?? process.env;
      const missing = users.filter((u) => !env[u.passwordVariable]).map((u) => u.passwordVariable);
      if (missing.length > 0) throw usageError(`--apply needs each user's password in the environment: ${missing.join(', ')} not set`, ACL_USAGE);
      const applied = await applyRedisAcls(config.bus, users.map((u) => ({ identity: u.identity, password: env[u.passwordVariable]!, rules: u.rules })), logger);
      io.out(`applied ACL SETUSER for ${applied} users: ${users.map((u) => u.identity).join(', ')}`);
      return ExitCode.OK;
    }
    io.out(`# Redis ACL users from the acl: section of ${values.config} (key prefix ${prefix}); set each \${CUTOVER_REDIS_PASSWORD_<AGENT>} before running`);
    for (const u of users) io.out(redisAclLine(u));
    return ExitCode.OK;
  }

  const rabbit = config.bus.kind === 'rabbitmq' ? config.bus : undefined;
  const permissions = rabbitmqPermissions(acl, { prefix: rabbit?.prefix, vhost: rabbit ? vhostOf(rabbit.url) : undefined, observations: config.observationsTopic });
  if (values.apply) {
    const applied = await applyRabbitmqPermissions(permissions, { node: values.node });
    io.out(`applied permissions and topic permissions for ${applied} users: ${permissions.map((p) => p.identity).join(', ')}`);
    return ExitCode.OK;
  }
  io.out(`# RabbitMQ permissions from the acl: section of ${values.config} (users must exist; topic exchange ${rabbitNames(rabbit?.prefix ?? 'cutover').exchange}, routing key = topic)`);
  for (const p of permissions) for (const line of rabbitmqctlLines(p)) io.out(line);
  return ExitCode.OK;
}
