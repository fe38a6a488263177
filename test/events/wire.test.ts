import { describe, expect, it } from 'vitest';
import { topicMatcher } from '../../src/bus/topics.js';
import { flowObservationsPattern, isObservationsTopic, observationsPattern, observationsTopicOf } from '../../src/events/wire.js';

describe('observation topics', () => {
  it('puts each flow on <observationsTopic>.<flow>, multi-level flow names included', () => {
    expect(observationsTopicOf('inventory.reserve')).toBe('cutover.observations.inventory.reserve');
    expect(observationsTopicOf('orders.get', 'cutover.observations-staging')).toBe('cutover.observations-staging.orders.get');
  });

  it('recognizes the flow topics and the shared topic below a base, never dead letters or look-alikes', () => {
    for (const topic of ['cutover.observations', 'cutover.observations.inventory.reserve', 'cutover.observations.a']) expect(isObservationsTopic(topic), topic).toBe(true);
    for (const topic of ['cutover.observationsx', 'cutover.observations.', 'cutover.observations.inventory.reserve.dlq', 'cutover.observations.dlq', 'cutover.parity', 'cutover.observation']) {
      expect(isObservationsTopic(topic), topic).toBe(false);
    }
    expect(isObservationsTopic('cutover.observations-staging.orders.get', 'cutover.observations-staging')).toBe(true);
    expect(isObservationsTopic('cutover.observations.orders.get', 'cutover.observations-staging')).toBe(false);
  });

  it('the ACL pattern covers the shared topic and every flow topic; the comparator pattern (scope all) leaves out the shared one', () => {
    const acl = topicMatcher(observationsPattern());
    const all = topicMatcher(flowObservationsPattern());
    for (const topic of ['cutover.observations.inventory.reserve', 'cutover.observations.shop.checkout.v2', 'cutover.observations.x']) {
      expect(acl(topic), topic).toBe(true);
      expect(all(topic), topic).toBe(true);
    }
    expect(acl('cutover.observations')).toBe(true);
    expect(all('cutover.observations')).toBe(false);
    // Wildcards never match dead-letter topics.
    expect(acl('cutover.observations.inventory.reserve.dlq')).toBe(false);
    expect(all('cutover.observations.inventory.reserve.dlq')).toBe(false);
    expect(all('cutover.observationsx.a')).toBe(false);
  });
});
