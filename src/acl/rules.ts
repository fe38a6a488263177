import type { AclConfig } from '../config/acl.js';
import { DLQ_SUFFIX, topicMatcher } from '../bus/topics.js';
import { OBSERVATIONS_TOPIC, observationsPattern } from '../events/wire.js';
import { FLIP_TOPIC } from '../flips/types.js';
import { PARITY_TOPIC } from '../parity/types.js';
import { REPLY_CHANNEL_PREFIX } from '../http/replay.js';

/**
 * A topic rule: a name or a `*` / `#` pattern, or (with `dlq`) the dead-letter topics of the topics it
 * matches. Dead letters need their own flag because `#` must stay the last level of a pattern.
 */
export interface TopicRule {
  pattern: string;
  dlq: boolean;
}

/** A consumer group rule: one group name, or every group whose name starts with `prefix`. */
export interface GroupRule {
  name: string;
  prefix: boolean;
}

/** What one identity may do on the bus, its own rules and cutover's implied ones together. */
export interface Permissions {
  /** Topics it may publish on. */
  publish: TopicRule[];
  /** Topics it may consume in consumer groups. */
  consume: TopicRule[];
  /** Topics it may read without a group (the flip log, parity records): never write. */
  read: TopicRule[];
  /** Consumer groups it may join (the Redis and Kafka exports). */
  groups: GroupRule[];
}

const rule = (pattern: string, dlq = false): TopicRule => ({ pattern, dlq });

/**
 * Where this installation's own topics are, when not at their defaults (`observationsTopic` in the config;
 * a shadow runtime's parity topic), and the Kafka client id its reader groups are named after.
 */
export interface InstallationTopics {
  observations?: string | undefined;
  parity?: string | undefined;
  clientId?: string | undefined;
}

/** The prefix of every reader group a Kafka full-log read makes (`<clientId>.read.<uuid>`). */
export function readerGroupPrefix(clientId: string): string {
  return `${clientId}.read.`;
}

/** The reply channels of one agent's sidecars: `cutover.replies.<agent>.<instance>`. */
export function replyChannels(agent: string): string {
  return `${REPLY_CHANNEL_PREFIX}${agent}.#`;
}

/**
 * Whether some topic matches both patterns. Levels are compared one by one: a `*` meets any one level,
 * `#` (last) meets whatever is left, including nothing.
 */
export function patternsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  const walk = (i: number, j: number): boolean => {
    if (x[i] === '#' || y[j] === '#') return true;
    if (i === x.length || j === y.length) return i === x.length && j === y.length;
    if (x[i] !== '*' && y[j] !== '*' && x[i] !== y[j]) return false;
    return walk(i + 1, j + 1);
  };
  return walk(0, 0);
}

/** A predicate for one rule: the topic itself, or for `dlq`, the topic it is the dead letter of. */
export function ruleMatcher(r: TopicRule): (topic: string) => boolean {
  const matches = topicMatcher(r.pattern);
  if (!r.dlq) return matches;
  return (topic) => topic.endsWith(DLQ_SUFFIX) && matches(topic.slice(0, -DLQ_SUFFIX.length));
}

function unique<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}

const ruleKey = (r: TopicRule): string => `${r.pattern}${r.dlq ? ' dlq' : ''}`;

/** Every identity the section names, in a stable order. */
export function identities(acl: AclConfig): string[] {
  return [...new Set([...Object.keys(acl.agents), ...acl.shadow, ...(acl.operators ?? [])])].sort();
}

/**
 * Identities that may write `cutover.control`: every agent and shadow identity (automatic rollbacks are
 * signed by the sidecar's own identity) and the operators. Which flips followers then apply is decided by
 * `trust.operators` (docs/security.md, Control plane); this only says who may write the log at all.
 */
export function flipWriters(acl: AclConfig): ReadonlySet<string> {
  return new Set([...Object.keys(acl.agents), ...acl.shadow, ...(acl.operators ?? [])]);
}

/** The `acl:` section with its defaults from the rest of the config: `operators` defaults to `trust.operators`. */
export function effectiveAcl(config: { acl?: AclConfig | undefined; trust?: { operators?: readonly string[] | undefined } | undefined }): AclConfig | undefined {
  const acl = config.acl;
  if (!acl || acl.operators !== undefined || config.trust?.operators === undefined) return acl;
  return { ...acl, operators: [...config.trust.operators] };
}

/**
 * The permissions of `identity` under `acl`: its own `publish` / `consume` lists plus what cutover's parts
 * need to run for each role it has (docs/security.md, Topic authorization, lists every implied rule):
 *
 * - an agent (its sidecar or SDK process): publish direct observations and bus replies in shadow mode
 *   (`cutover.observations.#`: every flow's observation topic, and the shared one of older sidecars), dead
 *   letters of what it consumes, and replies to the reply channels of the agents whose topics it consumes; consume its own reply channels; read the flip log and parity records;
 * - a shadow process: consume every agent's published topics and the observations, publish observations,
 *   parity records, dead letters of what it consumes and replies on any reply channel;
 * - every identity it names: publish flips (an agent's sidecar writes automatic rollbacks; `trust.operators`
 *   decides which flips are applied).
 */
export function permissionsOf(acl: AclConfig, identity: string, installation: InstallationTopics = {}): Permissions {
  // Flow F's observations are on `<observations>.F`; `#` also covers the shared topic older sidecars use.
  const observations = observationsPattern(installation.observations ?? OBSERVATIONS_TOPIC);
  const parity = installation.parity ?? PARITY_TOPIC;
  const publish: TopicRule[] = [];
  const consume: TopicRule[] = [];
  const read: TopicRule[] = [];
  const groups: GroupRule[] = [];
  const own = acl.agents[identity];
  const known = flipWriters(acl).has(identity);
  if (own) {
    consume.push(...own.consume.map((p) => rule(p)), rule(replyChannels(identity)));
    publish.push(...own.publish.map((p) => rule(p)), rule(observations), ...own.consume.map((p) => rule(p, true)));
    // Its deliver: side or SDK handlers answer bus-mode calls on the caller's reply channel.
    for (const [caller, grant] of Object.entries(acl.agents)) {
      if (grant.publish.some((p) => own.consume.some((c) => patternsOverlap(p, c)))) publish.push(rule(replyChannels(caller)));
    }
    groups.push({ name: `agent.${identity}`, prefix: false }, { name: `agent.${identity}.`, prefix: true }, { name: 'cutover.deliver.', prefix: true }, { name: `${REPLY_CHANNEL_PREFIX}${identity}.`, prefix: true });
  }
  if (acl.shadow.includes(identity)) {
    const flows = Object.values(acl.agents).flatMap((a) => a.publish);
    const consumed = [...flows, observations].map((p) => rule(p));
    consume.push(...consumed);
    publish.push(rule(observations), rule(parity), rule(`${REPLY_CHANNEL_PREFIX}#`), ...consumed.map((r) => rule(r.pattern, true)));
    groups.push({ name: 'cutover.shadow.', prefix: true }, { name: 'cutover.comparator', prefix: false }, { name: 'cutover.comparator.', prefix: true });
  }
  if (known) {
    publish.push(rule(FLIP_TOPIC));
    read.push(rule(FLIP_TOPIC), rule(parity));
    groups.push({ name: readerGroupPrefix(installation.clientId ?? 'cutover'), prefix: true });
  }
  return {
    publish: unique(publish, ruleKey),
    consume: unique(consume, ruleKey),
    read: unique(read, ruleKey),
    groups: unique(groups, (g) => `${g.name}${g.prefix ? '*' : ''}`),
  };
}

/**
 * The question cutover asks at run time: may `identity` publish on `topic`? Built once per process from
 * the config's `acl:` section.
 */
export class TopicAcl {
  readonly enforce: boolean;
  private readonly publishers = new Map<string, (topic: string) => boolean>();

  constructor(
    private readonly acl: AclConfig,
    private readonly installation: InstallationTopics = {},
  ) {
    this.enforce = acl.enforce;
  }

  /** Whether `identity` may publish on `topic`; an identity the section does not name may publish nothing. */
  mayPublish(identity: string, topic: string): boolean {
    let matches = this.publishers.get(identity);
    if (!matches) {
      const matchers = permissionsOf(this.acl, identity, this.installation).publish.map(ruleMatcher);
      matches = (t) => matchers.some((m) => m(t));
      this.publishers.set(identity, matches);
    }
    return matches(topic);
  }
}
