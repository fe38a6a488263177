import { describe, expect, it } from 'vitest';
import { assertTopicName, assertTopicPattern, conventionProblem, topicMatcher } from '../../src/bus/topics.js';
import { ErrorCodes } from '../../src/errors.js';

describe('topic patterns', () => {
  it('* matches exactly one level', () => {
    const m = topicMatcher('commands.agent.*.reserve');
    expect(m('commands.agent.inventory.reserve')).toBe(true);
    expect(m('commands.agent.reserve')).toBe(false);
    expect(m('commands.agent.a.b.reserve')).toBe(false);
  });

  it('# matches zero or more trailing levels', () => {
    const m = topicMatcher('events.orders.#');
    expect(m('events.orders')).toBe(true);
    expect(m('events.orders.created')).toBe(true);
    expect(m('events.orders.created.eu.west')).toBe(true);
    expect(m('events.ordersx')).toBe(false);
    expect(topicMatcher('#')('anything.at.all')).toBe(true);
  });

  it('wildcards skip dead-letter topics unless the pattern asks for them', () => {
    expect(topicMatcher('commands.#')('commands.agent.x.y.dlq')).toBe(false);
    expect(topicMatcher('commands.*.dlq')('commands.x.dlq')).toBe(true);
    expect(topicMatcher('commands.x.dlq')('commands.x.dlq')).toBe(true);
  });

  it('treats names literally (a hyphen or underscore is not a pattern)', () => {
    expect(topicMatcher('a-b.*')('a-b.c')).toBe(true);
    expect(topicMatcher('a-b.*')('aXb.c')).toBe(false);
  });

  it('rejects malformed names and patterns with CUTOVER_TOPIC_INVALID naming the field', () => {
    for (const bad of ['', 'a..b', '.a', 'a b', 'x'.repeat(250), 'a/b']) {
      expect(() => assertTopicName(bad, 'flows[0].topic')).toThrowError(expect.objectContaining({ code: ErrorCodes.TOPIC_INVALID, message: expect.stringContaining('flows[0].topic') }));
    }
    expect(() => assertTopicPattern('a.#.b')).toThrowError(expect.objectContaining({ code: ErrorCodes.TOPIC_INVALID }));
    expect(() => assertTopicPattern('a.b*')).toThrowError(expect.objectContaining({ code: ErrorCodes.TOPIC_INVALID }));
    expect(() => assertTopicPattern('a.*.#')).not.toThrow();
  });

  it('checks the naming convention for configured topics', () => {
    expect(conventionProblem('commands.agent.inventory.reserve')).toBeUndefined();
    expect(conventionProblem('events.orders.created')).toBeUndefined();
    expect(conventionProblem('metrics.agent.pricing.latency')).toBeUndefined();
    expect(conventionProblem('cutover.observations')).toBeUndefined();
    expect(conventionProblem('commands.inventory.reserve')).toMatch(/commands\.agent\.<agent>\.<action>/);
    expect(conventionProblem('orders')).toMatch(/events\., commands\./);
    expect(conventionProblem('events.Orders.Created')).toMatch(/lowercase/);
  });
});
