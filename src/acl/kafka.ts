import type { AclConfig } from '../config/acl.js';
import { exportIdentities, resourcesOf, unmatchedNote, type Resources } from './resources.js';
import { readerGroupPrefix, type TopicRule } from './rules.js';

export type KafkaOperation = 'Read' | 'Write' | 'Create' | 'Describe' | 'Delete';

/** One ALLOW binding of the standard authorizer, in kafka-acls.sh terms. */
export interface KafkaAclBinding {
  principal: string;
  resourceType: 'topic' | 'group';
  patternType: 'literal' | 'prefixed';
  /** `*` with `literal`: every resource of the type. */
  name: string;
  operations: KafkaOperation[];
}

/**
 * The Kafka ACL bindings of an `acl:` section: one principal `User:<identity>` per identity. The adapter
 * creates every topic it touches before producing, consuming or reading (CreateTopics), so each topic
 * grant carries Create and Describe besides Write (publish) or Read (consume, read). Groups: Read; the
 * throwaway groups of full-log reads (`<clientId>.read.`) also Delete, as the reader removes its own.
 */
export function kafkaBindings(acl: AclConfig, options: { clientId: string; known: readonly string[]; observations?: string }): { bindings: KafkaAclBinding[]; notes: string[] } {
  const merged = new Map<string, KafkaAclBinding>();
  const notes: string[] = [];
  const add = (b: Omit<KafkaAclBinding, 'operations'>, operations: KafkaOperation[]): void => {
    const key = `${b.principal}|${b.resourceType}|${b.patternType}|${b.name}`;
    const existing = merged.get(key);
    if (existing) existing.operations = [...new Set([...existing.operations, ...operations])];
    else merged.set(key, { ...b, operations: [...operations] });
  };
  for (const { identity, permissions } of exportIdentities(acl, { clientId: options.clientId, observations: options.observations })) {
    const principal = `User:${identity}`;
    const topics = (rules: TopicRule[], operations: KafkaOperation[]): void => {
      for (const r of rules) {
        const res: Resources = resourcesOf(r, options.known);
        const note = unmatchedNote(identity, res);
        if (note) notes.push(note);
        if (res.all) add({ principal, resourceType: 'topic', patternType: 'literal', name: '*' }, operations);
        for (const name of res.exact) add({ principal, resourceType: 'topic', patternType: 'literal', name }, operations);
        for (const name of res.prefixes) add({ principal, resourceType: 'topic', patternType: 'prefixed', name }, operations);
      }
    };
    topics(permissions.publish, ['Write', 'Create', 'Describe']);
    topics(permissions.consume, ['Read', 'Create', 'Describe']);
    topics(permissions.read, ['Read', 'Create', 'Describe']);
    for (const g of permissions.groups) {
      add({ principal, resourceType: 'group', patternType: g.prefix ? 'prefixed' : 'literal', name: g.name }, g.name === readerGroupPrefix(options.clientId) ? ['Read', 'Delete'] : ['Read']);
    }
  }
  return { bindings: [...merged.values()], notes: [...new Set(notes)] };
}

/** A binding as a `kafka-acls.sh --add` command line. */
export function kafkaAclsCommand(b: KafkaAclBinding, bootstrap: string): string {
  const ops = b.operations.map((o) => `--operation ${o}`).join(' ');
  const name = b.name === '*' ? "'*'" : b.name;
  return `kafka-acls.sh --bootstrap-server ${bootstrap} --command-config admin.properties --add --allow-principal ${b.principal} ${ops} --${b.resourceType} ${name} --resource-pattern-type ${b.patternType}`;
}
