import { describe, expect, it } from 'vitest';
import { effectiveAcl, patternsOverlap, permissionsOf, ruleMatcher, TopicAcl, type TopicRule } from '../../src/acl/rules.js';
import { aclSchema } from '../../src/config/acl.js';

const acl = aclSchema.parse({
  agents: {
    checkout: { publish: ['commands.agent.inventory.*'], consume: ['events.order.#'] },
    inventory: { publish: ['events.inventory.#'], consume: ['commands.agent.inventory.#'] },
    pricing: { publish: ['events.pricing.#'] },
  },
  shadow: ['cutover-shadow'],
});

const texts = (rules: TopicRule[]): string[] => rules.map((r) => (r.dlq ? `${r.pattern} dlq` : r.pattern));

describe('patternsOverlap', () => {
  it.each([
    ['commands.agent.inventory.*', 'commands.agent.inventory.#', true],
    ['commands.agent.*.reserve', 'commands.agent.inventory.reserve', true],
    ['a.b', 'a.b.#', true],
    ['a.*', 'a', false],
    ['a.*.c', 'a.b.d', false],
    ['events.order.#', 'events.inventory.#', false],
    ['#', 'x.y.z', true],
    ['a.b.c', 'a.b', false],
  ])('%s and %s: %s', (a, b, expected) => {
    expect(patternsOverlap(a, b)).toBe(expected);
    expect(patternsOverlap(b, a)).toBe(expected);
  });
});

describe('permissionsOf: own rules plus what cutover implies per role', () => {
  it('an agent: its topics, observations, dead letters of what it consumes, replies to the agents whose topics it consumes', () => {
    const p = permissionsOf(acl, 'inventory');
    // cutover.control last: every agent may write the flip log (its sidecar's automatic rollbacks).
    expect(texts(p.publish)).toEqual(['events.inventory.#', 'cutover.observations.#', 'commands.agent.inventory.# dlq', 'cutover.replies.checkout.#', 'cutover.control']);
    expect(texts(p.consume)).toEqual(['commands.agent.inventory.#', 'cutover.replies.inventory.#']);
    expect(texts(p.read)).toEqual(['cutover.control', 'cutover.parity']);
    expect(texts(permissionsOf(acl, 'pricing').publish)).toContain('cutover.control');
  });

  it('a shadow identity consumes every agent topic and writes observations, parity, replies and dead letters', () => {
    const p = permissionsOf(acl, 'cutover-shadow', { observations: 'cutover.observations.staging' });
    expect(texts(p.consume)).toEqual(['commands.agent.inventory.*', 'events.inventory.#', 'events.pricing.#', 'cutover.observations.staging.#']);
    expect(texts(p.publish)).toEqual(expect.arrayContaining(['cutover.observations.staging.#', 'cutover.parity', 'cutover.replies.#', 'events.pricing.# dlq']));
  });

  it('every named identity writes flips (rollbacks), operators only that; an unknown identity gets nothing', () => {
    const withOps = aclSchema.parse({ ...acl, operators: ['ops'] });
    expect(texts(permissionsOf(withOps, 'ops').publish)).toEqual(['cutover.control']);
    expect(texts(permissionsOf(withOps, 'cutover-shadow').publish)).toContain('cutover.control');
    expect(permissionsOf(withOps, 'mallory')).toEqual({ publish: [], consume: [], read: [], groups: [] });
  });

  it('operators default to trust.operators', () => {
    expect(effectiveAcl({ acl, trust: { operators: ['alice'] } })?.operators).toEqual(['alice']);
    expect(effectiveAcl({ acl: { ...acl, operators: ['ops'] }, trust: { operators: ['alice'] } })?.operators).toEqual(['ops']);
    expect(effectiveAcl({ acl })?.operators).toBeUndefined();
    expect(effectiveAcl({ trust: { operators: ['alice'] } })).toBeUndefined();
  });
});

describe('ruleMatcher and TopicAcl', () => {
  it('a dead-letter rule matches only the dead letters of the topics its pattern matches', () => {
    const dlq = ruleMatcher({ pattern: 'events.order.#', dlq: true });
    expect(dlq('events.order.created.dlq')).toBe(true);
    expect(dlq('events.order.created')).toBe(false);
    expect(dlq('events.other.created.dlq')).toBe(false);
  });

  it('answers may-publish per identity, wildcards and implied topics included', () => {
    const topics = new TopicAcl(acl);
    expect(topics.mayPublish('checkout', 'commands.agent.inventory.reserve')).toBe(true);
    expect(topics.mayPublish('checkout', 'commands.agent.inventory.reserve.now')).toBe(false);
    expect(topics.mayPublish('checkout', 'events.inventory.reserved')).toBe(false);
    expect(topics.mayPublish('inventory', 'events.inventory.reserved')).toBe(true);
    // A wildcard grant does not cover dead letters: a consumer writes those for what it consumes.
    expect(topics.mayPublish('inventory', 'events.inventory.reserved.dlq')).toBe(false);
    expect(topics.mayPublish('inventory', 'commands.agent.inventory.reserve.dlq')).toBe(true);
    expect(topics.mayPublish('inventory', 'cutover.replies.checkout.r1')).toBe(true);
    expect(topics.mayPublish('pricing', 'cutover.replies.checkout.r1')).toBe(false);
    expect(topics.mayPublish('nobody', 'cutover.observations')).toBe(false);
    // Observations: every flow's topic and the shared topic older sidecars publish on, never another's dead letters.
    expect(topics.mayPublish('inventory', 'cutover.observations.inventory.reserve')).toBe(true);
    expect(topics.mayPublish('inventory', 'cutover.observations')).toBe(true);
    expect(topics.mayPublish('inventory', 'cutover.observations.inventory.reserve.dlq')).toBe(false);
    expect(topics.mayPublish('inventory', 'cutover.observationsx')).toBe(false);
    expect(topics.enforce).toBe(true);
  });
});
