import type { AclConfig } from '../config/acl.js';
import { DLQ_SUFFIX, isPattern } from '../bus/topics.js';
import { rabbitNames } from '../bus/rabbitmq/names.js';
import { exportIdentities } from './resources.js';
import { readerGroupPrefix, type GroupRule, type TopicRule } from './rules.js';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, (c) => `\\${c}`);

/** One level of a topic name (docs/bus.md, Topics). */
const LEVEL = '[A-Za-z0-9_-]+';

/**
 * A rule as a regular expression (RabbitMQ matches permissions as PCRE): `word` is what one `*` level of
 * the rule stands for, `rest` what a `#` after the first level stands for and `all` a `#` alone. A
 * wildcard rule does not match dead-letter topics, the way cutover's own matcher does not.
 */
function ruleRegex(r: TopicRule, word: string, rest: string, all: string): string {
  const levels = r.pattern.split('.');
  const body = levels
    .map((level, i) => {
      const dot = i === 0 ? '' : '\\.';
      if (level === '*') return `${dot}${word}`;
      if (level === '#') return i === 0 ? all : rest;
      return dot + escape(level);
    })
    .join('');
  if (r.dlq) return `${body}${escape(DLQ_SUFFIX)}`;
  return isPattern(r.pattern) ? `(?!.*${escape(DLQ_SUFFIX)}$)${body}` : body;
}

/** The topic names a rule matches, as a regular expression over routing keys: names only, no `*` or `#`. */
export function routingKeyRegex(r: TopicRule): string {
  return ruleRegex(r, LEVEL, `(\\.${LEVEL})*`, `${LEVEL}(\\.${LEVEL})*`);
}

/**
 * The binding keys a consume rule allows: the rule's own pattern and every narrower one (a `*` level of
 * the rule accepts a name or `*`; a `#` anything). A regex over topic names would not do: its `[^.]+`
 * would let `orders.*` bind `orders.#`.
 */
export function bindingKeyRegex(r: TopicRule): string {
  return ruleRegex(r, `(${LEVEL}|\\*)`, '(\\..+)?', '.*');
}

const anyOf = (parts: string[]): string => (parts.length === 0 ? '^$' : `^(${[...new Set(parts)].join('|')})$`);

/** RabbitMQ's permissions of one identity: vhost regexes over exchange and queue names, topic regexes over routing keys. */
export interface RabbitPermissions {
  identity: string;
  vhost: string;
  configure: string;
  write: string;
  read: string;
  /** The topic exchange the topic permissions are set on. */
  exchange: string;
  topicWrite: string;
  topicRead: string;
}

/** The installation the permissions are for: bus prefix (default `cutover`), vhost (default `/`), observations topic. */
export interface RabbitOptions {
  prefix?: string | undefined;
  vhost?: string | undefined;
  observations?: string | undefined;
}

/** The vhost a bus URL names: amqplib's reading (no path or `/` is vhost `/`). */
export function vhostOf(url: string): string {
  const path = new URL(url).pathname.slice(1);
  return path === '' ? '/' : decodeURIComponent(path);
}

/**
 * What each identity needs with the RabbitMQ adapter (src/bus/rabbitmq), and no more:
 *
 * - every process declares the topic exchange `<prefix>.topics` and the settings queue `<prefix>.partitions`;
 * - publishing on a topic declares its log stream `<prefix>.log.<topic>` and binds it to the exchange by the
 *   topic name (configure and write on the stream, read on the exchange, topic read of the topic name),
 *   then publishes with the topic as routing key (write on the exchange, topic write);
 * - reading a topic (the flip log, parity records) declares and binds its log stream the same way, appends
 *   the end marker through the default exchange (write on `amq.default`) and consumes the stream (read);
 * - every process declares the registry stream `<prefix>.registry` and appends the topics it uses to it
 *   through the default exchange; a new group's setup reads it (read);
 * - joining a group declares the group's headers exchange, binds it to the topic exchange by each consumed
 *   pattern (write on the group exchange, read on the topic exchange, topic read of the pattern), declares
 *   and binds its partition queues (configure, write; read on the group exchange), consumes them and the
 *   members queue (read), and declares and deletes the partition locks (configure);
 * - the first member of a new group reading `from: 'start'` holds its setup lock, declares its history
 *   exchange and queues (configure, write, read), declares, binds and reads the log streams of the topics
 *   it consumes, and copies them into the history queues (write on the history exchange).
 *
 * Names the adapter hashes to fit 255 bytes are covered for plain topic names; a wildcard rule covers the
 * unhashed names only.
 */
export function rabbitmqPermissions(acl: AclConfig, options: RabbitOptions = {}): RabbitPermissions[] {
  const prefix = options.prefix ?? 'cutover';
  const names = rabbitNames(prefix);
  const p = escape(prefix);
  const exchange = escape(names.exchange);
  const logQueue = (r: TopicRule): string => (!isPattern(r.pattern) ? escape(names.log(r.pattern + (r.dlq ? DLQ_SUFFIX : ''))) : `${p}\\.log\\.${routingKeyRegex(r)}`);
  const group = (g: GroupRule, objects: string): string => `${p}\\.group\\.${escape(g.name)}${g.prefix ? '.+' : ''}(${objects})?`;
  return exportIdentities(acl, { observations: options.observations }).map(({ identity, permissions }) => {
    // A full-log read is a stream consumer on RabbitMQ, not a consumer group (that prefix is Kafka's).
    const groups = permissions.groups.filter((g) => !(g.prefix && g.name === readerGroupPrefix('cutover')));
    // A new group's setup copies the logs of the topics it consumes (backfill.ts), so consumers declare,
    // bind and read those streams too.
    const logged = [...permissions.publish, ...permissions.read, ...permissions.consume].map(logQueue);
    const readLogs = [...permissions.read, ...permissions.consume].map(logQueue);
    return {
      identity,
      vhost: options.vhost ?? '/',
      configure: anyOf([exchange, escape(names.settings), escape(names.registry), ...logged, ...groups.map((g) => group(g, '\\.p[0-9]+(\\.lock|\\.history)?|\\.members|\\.history|\\.setup\\.lock'))]),
      write: anyOf([exchange, 'amq\\.default', ...logged, ...groups.map((g) => group(g, '\\.p[0-9]+(\\.history)?|\\.history'))]),
      read: anyOf([exchange, escape(names.registry), ...readLogs, ...groups.map((g) => group(g, '\\.p[0-9]+(\\.history)?|\\.members|\\.history'))]),
      exchange: names.exchange,
      topicWrite: anyOf(permissions.publish.map(routingKeyRegex)),
      topicRead: anyOf([...[...permissions.publish, ...permissions.read].map(routingKeyRegex), ...permissions.consume.map(bindingKeyRegex)]),
    };
  });
}

/** The `rabbitmqctl` arguments that set one identity's permissions: vhost permissions, then topic permissions. */
export function rabbitmqctlArgs(p: RabbitPermissions): string[][] {
  return [
    ['set_permissions', '-p', p.vhost, p.identity, p.configure, p.write, p.read],
    ['set_topic_permissions', '-p', p.vhost, p.identity, p.exchange, p.topicWrite, p.topicRead],
  ];
}

const quote = (s: string): string => (/^[A-Za-z0-9_./-]+$/.test(s) && s !== '' ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The `rabbitmqctl` lines of one identity, quoted for a POSIX shell. */
export function rabbitmqctlLines(p: RabbitPermissions): string[] {
  return rabbitmqctlArgs(p).map((args) => ['rabbitmqctl', ...args.map(quote)].join(' '));
}

/** `rabbitmqctl` lines for every identity of the section. */
export function rabbitmqLines(acl: AclConfig, options: RabbitOptions = {}): string[] {
  return rabbitmqPermissions(acl, options).flatMap(rabbitmqctlLines);
}
