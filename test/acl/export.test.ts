import { describe, expect, it } from 'vitest';
import { kafkaAclsCommand, kafkaBindings } from '../../src/acl/kafka.js';
import { bindingKeyRegex, rabbitmqLines, rabbitmqPermissions, routingKeyRegex, vhostOf } from '../../src/acl/rabbitmq.js';
import { rabbitNames } from '../../src/bus/rabbitmq/names.js';
import { redisAclLine, redisAclUsers } from '../../src/acl/redis.js';
import { knownTopics, resourcesOf } from '../../src/acl/resources.js';
import { ruleMatcher, type TopicRule } from '../../src/acl/rules.js';
import { aclSchema } from '../../src/config/acl.js';

const acl = aclSchema.parse({
  agents: {
    checkout: { publish: ['commands.agent.inventory.*'], consume: ['events.order.#'] },
    inventory: { publish: ['events.inventory.#'], consume: ['commands.agent.inventory.#'] },
  },
  operators: ['ops'],
  topics: ['commands.agent.inventory.reserve', 'commands.agent.inventory.release', 'events.order.created'],
});
const known = knownTopics(acl, ['commands.agent.inventory.reserve']);

describe('resourcesOf: what a broker can be told, never more than the rule', () => {
  it.each<[TopicRule, ReturnType<typeof resourcesOf>]>([
    [{ pattern: 'events.order.created', dlq: false }, { all: false, exact: ['events.order.created'], prefixes: [] }],
    [{ pattern: 'events.order.created', dlq: true }, { all: false, exact: ['events.order.created.dlq'], prefixes: [] }],
    [{ pattern: 'events.order.#', dlq: false }, { all: false, exact: ['events.order'], prefixes: ['events.order.'] }],
    [{ pattern: '#', dlq: false }, { all: true, exact: [], prefixes: [] }],
    // A `*` level, or dead letters of a wildcard: expanded against the named topics.
    [{ pattern: 'commands.agent.inventory.*', dlq: false }, { all: false, exact: ['commands.agent.inventory.release', 'commands.agent.inventory.reserve'], prefixes: [] }],
    [{ pattern: 'events.order.#', dlq: true }, { all: false, exact: ['events.order.created.dlq'], prefixes: [] }],
    [{ pattern: 'commands.*.pricing', dlq: false }, { all: false, exact: [], prefixes: [], unmatched: 'commands.*.pricing' }],
  ])('%o', (rule, expected) => {
    const res = resourcesOf(rule, known);
    expect(res).toEqual(expected);
    // Every exact name granted is one the rule itself allows.
    for (const topic of res.exact) if (topic !== rule.pattern.replace(/\.#$/, '')) expect(ruleMatcher(rule)(topic)).toBe(true);
  });
});

describe('kafkaBindings', () => {
  const { bindings, notes } = kafkaBindings(acl, { clientId: 'cutover', known });
  const of = (principal: string) => bindings.filter((b) => b.principal === principal).map((b) => `${b.resourceType}:${b.patternType}:${b.name}=${b.operations.join('+')}`);

  it('one principal per identity; publish = Write, consume = Read, Create and Describe on both; groups Read', () => {
    expect(new Set(bindings.map((b) => b.principal))).toEqual(new Set(['User:checkout', 'User:inventory', 'User:ops']));
    expect(of('User:inventory')).toEqual(
      expect.arrayContaining([
        'topic:literal:events.inventory=Write+Create+Describe',
        'topic:prefixed:events.inventory.=Write+Create+Describe',
        'topic:literal:commands.agent.inventory.reserve.dlq=Write+Create+Describe',
        'topic:prefixed:commands.agent.inventory.=Read+Create+Describe',
        'topic:prefixed:cutover.replies.checkout.=Write+Create+Describe',
        'topic:prefixed:cutover.replies.inventory.=Read+Create+Describe',
        'topic:literal:cutover.control=Write+Create+Describe+Read',
        'topic:literal:cutover.parity=Read+Create+Describe',
        'group:literal:agent.inventory=Read',
        'group:prefixed:cutover.read.=Read+Delete',
      ]),
    );
    expect(of('User:checkout')).toEqual(expect.arrayContaining(['topic:literal:commands.agent.inventory.reserve=Write+Create+Describe', 'topic:literal:commands.agent.inventory.release=Write+Create+Describe']));
    expect(of('User:checkout').some((b) => b.startsWith('topic:prefixed:commands.agent.inventory.'))).toBe(false);
    expect(of('User:ops')).toContain('topic:literal:cutover.control=Write+Create+Describe+Read');
    expect(notes).toEqual([]);
  });

  it('prints kafka-acls.sh lines', () => {
    expect(kafkaAclsCommand(bindings.find((b) => b.name === 'events.inventory.')!, 'k:9093')).toBe(
      'kafka-acls.sh --bootstrap-server k:9093 --command-config admin.properties --add --allow-principal User:inventory --operation Write --operation Create --operation Describe --topic events.inventory. --resource-pattern-type prefixed',
    );
  });

  it('notes a wildcard rule that matches no named topic, and grants nothing for it', () => {
    const bare = aclSchema.parse({ agents: { checkout: { publish: ['commands.agent.*.reserve'] } } });
    const out = kafkaBindings(bare, { clientId: 'cutover', known: knownTopics(bare, []) });
    expect(out.notes).toEqual([expect.stringContaining('checkout: commands.agent.*.reserve matches none of the topics the config names')]);
    expect(out.bindings.some((b) => b.name.includes('reserve'))).toBe(false);
  });
});

describe('redisAclUsers', () => {
  it('read-write key patterns for published and consumed topics, read-only for the parity records of non-shadow identities, groups and dedupe by group', () => {
    const { users } = redisAclUsers(acl, { prefix: 'cutover:', known });
    const inventory = users.find((u) => u.identity === 'inventory')!;
    expect(inventory.passwordVariable).toBe('CUTOVER_REDIS_PASSWORD_INVENTORY');
    expect(inventory.rules).toEqual(
      expect.arrayContaining([
        '~cutover:topics',
        '~cutover:t:events.inventory:*',
        '~cutover:t:events.inventory.*',
        '~cutover:t:commands.agent.inventory.*',
        '~cutover:t:commands.agent.inventory.reserve.dlq:*',
        '~cutover:t:cutover.control:*',
        '%R~cutover:t:cutover.parity:*',
        '%R~cutover:id:cutover.parity',
        '~cutover:g:agent.inventory:*',
        '~cutover:dedupe:agent.inventory:*',
        '+xadd',
      ]),
    );
    expect(inventory.rules).not.toContain('~cutover:t:cutover.parity:*');
    expect(users.find((u) => u.identity === 'ops')!.rules).toContain('~cutover:t:cutover.control:*');
    expect(redisAclLine(inventory)).toMatch(/^ACL SETUSER inventory reset on >\$\{CUTOVER_REDIS_PASSWORD_INVENTORY\} resetchannels -@all \+ping /);
  });

  it('escapes glob characters of the prefix', () => {
    const { users } = redisAclUsers(acl, { prefix: 'team[1]*:', known });
    expect(users[0]!.rules).toContain('~team\\[1\\]\\*:topics');
  });
});

describe('rabbitmqPermissions', () => {
  const rules: TopicRule[] = [
    { pattern: 'commands.agent.inventory.*', dlq: false },
    { pattern: 'events.order.#', dlq: false },
    { pattern: 'events.order.#', dlq: true },
    { pattern: 'events.order', dlq: false },
    { pattern: '#', dlq: false },
  ];
  const full = (re: string): RegExp => new RegExp(`^(${re})$`);

  it('routing-key regexes accept exactly the topic names cutover matches', () => {
    const topics = ['commands.agent.inventory.reserve', 'commands.agent.inventory.reserve.now', 'commands.agent.inventory.reserve.dlq', 'events.order', 'events.order.created', 'events.order.created.dlq', 'events.orders'];
    for (const rule of rules) for (const t of topics) expect(full(routingKeyRegex(rule)).test(t), `${rule.pattern}${rule.dlq ? ' dlq' : ''} vs ${t}`).toBe(ruleMatcher(rule)(t));
    // A routing key is a name: a pattern in its place (a binding key) is not accepted.
    expect(full(routingKeyRegex(rules[1]!)).test('events.order.#')).toBe(false);
  });

  it('binding-key regexes accept the rule and narrower patterns, never wider ones', () => {
    const star = bindingKeyRegex(rules[0]!);
    expect(['commands.agent.inventory.*', 'commands.agent.inventory.reserve'].map((k) => full(star).test(k))).toEqual([true, true]);
    expect(['commands.agent.inventory.#', 'commands.agent.*.reserve', 'commands.agent.inventory.a.b', 'commands.agent.inventory.reserve.dlq'].map((k) => full(star).test(k))).toEqual([false, false, false, false]);
    const hash = bindingKeyRegex(rules[1]!);
    expect(['events.order.#', 'events.order.*', 'events.order', 'events.order.a.#'].map((k) => full(hash).test(k))).toEqual([true, true, true, true]);
    expect(['events.#', '#', 'events.orders.#', 'events.order.created.dlq'].map((k) => full(hash).test(k))).toEqual([false, false, false, false]);
  });

  it('names the objects of the adapter under the bus prefix, in the vhost of the URL', () => {
    const ops = rabbitmqPermissions(acl, { prefix: 'shop', vhost: 'prod' }).find((p) => p.identity === 'ops')!;
    expect(ops).toEqual({
      identity: 'ops',
      vhost: 'prod',
      configure: '^(shop\\.topics|shop\\.partitions|shop\\.registry|shop\\.log\\.cutover\\.control|shop\\.log\\.cutover\\.parity)$',
      write: '^(shop\\.topics|amq\\.default|shop\\.log\\.cutover\\.control|shop\\.log\\.cutover\\.parity)$',
      read: '^(shop\\.topics|shop\\.registry|shop\\.log\\.cutover\\.control|shop\\.log\\.cutover\\.parity)$',
      exchange: 'shop.topics',
      topicWrite: '^(cutover\\.control)$',
      topicRead: '^(cutover\\.control|cutover\\.parity)$',
    });
    expect([vhostOf('amqp://u:p@h:5672/'), vhostOf('amqp://h'), vhostOf('amqps://h/prod%2Fa')]).toEqual(['/', '/', 'prod/a']);
  });

  it("an agent's regexes: its groups' objects and log streams, not another agent's", () => {
    const inventory = rabbitmqPermissions(acl).find((p) => p.identity === 'inventory')!;
    const names = rabbitNames('cutover');
    const may = (re: string, name: string): boolean => new RegExp(re).test(name);
    for (const q of [names.partition('agent.inventory', 3), names.lock('agent.inventory', 0), names.members('agent.inventory'), names.groupExchange('agent.inventory')]) expect(may(inventory.configure, q), q).toBe(true);
    for (const q of [names.partition('agent.checkout', 0), names.members('agent.checkout'), names.log('events.order.created')]) expect(may(inventory.configure, q) || may(inventory.write, q) || may(inventory.read, q), q).toBe(false);
    // Write on partition queues (queue.bind) and read on them and the members queue (consume).
    expect([may(inventory.write, names.partition('agent.inventory', 0)), may(inventory.read, names.members('agent.inventory'))]).toEqual([true, true]);
    // Its published topics' log streams: declared and bound, not consumed; the flip log is consumed.
    expect([may(inventory.write, names.log('events.inventory.reserved')), may(inventory.read, names.log('events.inventory.reserved')), may(inventory.read, names.log('cutover.control'))]).toEqual([true, false, true]);
    // Binds its group to what it consumes, publishes its own topics only.
    expect([may(inventory.topicRead, 'commands.agent.inventory.#'), may(inventory.topicRead, 'events.order.#'), may(inventory.topicWrite, 'events.inventory.reserved'), may(inventory.topicWrite, 'commands.agent.inventory.reserve')]).toEqual([true, false, true, false]);
  });

  it('a topic whose log stream name the adapter hashes to fit 255 bytes is granted by that name', () => {
    const long = `events.order.${'x'.repeat(230)}`;
    const prefix = 'p'.repeat(30);
    const grants = rabbitmqPermissions(aclSchema.parse({ agents: { a: { publish: [long] } } }), { prefix })[0]!;
    expect(rabbitNames(prefix).log(long)).toContain('~');
    expect(new RegExp(grants.configure).test(rabbitNames(prefix).log(long))).toBe(true);
  });

  it('two lines per identity, quoted for a shell', () => {
    const lines = rabbitmqLines(acl);
    expect(lines).toHaveLength(6);
    expect(lines.find((l) => l.startsWith('rabbitmqctl set_topic_permissions -p / ops'))).toBe("rabbitmqctl set_topic_permissions -p / ops cutover.topics '^(cutover\\.control)$' '^(cutover\\.control|cutover\\.parity)$'");
  });
});
