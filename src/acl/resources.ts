import type { AclConfig } from '../config/acl.js';
import { DLQ_SUFFIX, isPattern } from '../bus/topics.js';
import { identities, permissionsOf, ruleMatcher, type InstallationTopics, type Permissions, type TopicRule } from './rules.js';

/**
 * What a broker can be told about one topic rule. Brokers know exact names and name prefixes only, so a
 * rule becomes: every topic (`all`), exact names, and prefixes; a rule that cannot be said that way is
 * expanded against the topics the config names, never widened.
 */
export interface Resources {
  all: boolean;
  exact: string[];
  prefixes: string[];
  /** Set when the rule had to be expanded and no known topic matched it: nothing is granted for it. */
  unmatched?: string;
}

/** A rule as text, for messages: `events.order.#`, or `events.order.# (dead letters)`. */
export function describeRule(r: TopicRule): string {
  return r.dlq ? `${r.pattern} (dead letters)` : r.pattern;
}

/**
 * The broker resources of `rule`. A name is itself; `a.b.#` is the topic `a.b` plus the prefix `a.b.`
 * (which also covers the dead-letter topics below `a.b`); `#` alone is every topic. Patterns with `*`, and
 * the dead letters of any wildcard pattern, are expanded against `known` topics.
 */
export function resourcesOf(rule: TopicRule, known: readonly string[]): Resources {
  const suffix = rule.dlq ? DLQ_SUFFIX : '';
  if (!isPattern(rule.pattern)) return { all: false, exact: [rule.pattern + suffix], prefixes: [] };
  const levels = rule.pattern.split('.');
  const trailingHashOnly = levels.at(-1) === '#' && !levels.includes('*');
  if (trailingHashOnly && !rule.dlq) {
    const base = levels.slice(0, -1).join('.');
    return base === '' ? { all: true, exact: [], prefixes: [] } : { all: false, exact: [base], prefixes: [`${base}.`] };
  }
  const matches = ruleMatcher(rule);
  const exact = [...new Set(known.flatMap((t) => [t, t + DLQ_SUFFIX]))].filter(matches).sort();
  return exact.length > 0 ? { all: false, exact, prefixes: [] } : { all: false, exact: [], prefixes: [], unmatched: describeRule(rule) };
}

/** The concrete topics the config names: its flows' topics, `acl.topics`, and every plain name in `acl:`. */
export function knownTopics(acl: AclConfig, flowTopics: readonly string[]): string[] {
  const named = Object.values(acl.agents).flatMap((a) => [...a.publish, ...a.consume]).filter((p) => !isPattern(p));
  return [...new Set([...flowTopics, ...acl.topics, ...named])].sort();
}

/** One identity's permissions, for an export. */
export interface IdentityExport {
  identity: string;
  permissions: Permissions;
}

/** Every identity the section names with its permissions. */
export function exportIdentities(acl: AclConfig, installation: InstallationTopics = {}): IdentityExport[] {
  return identities(acl).map((identity) => ({ identity, permissions: permissionsOf(acl, identity, installation) }));
}

/** Notes about rules that grant nothing on a broker (no known topic matched their expansion). */
export function unmatchedNote(identity: string, resources: Resources): string | undefined {
  return resources.unmatched === undefined
    ? undefined
    : `${identity}: ${resources.unmatched} matches none of the topics the config names (flows, acl.topics, plain names under acl.agents); nothing is granted for it: list the topics it should cover under acl.topics`;
}
