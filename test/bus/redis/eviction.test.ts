import { describe, expect, it } from 'vitest';
import { evictionDecision } from '../../../src/bus/redis/redis-bus.js';

// The decision start() takes on the answer to CONFIG GET maxmemory-policy. Tested with fake answers: the
// shared test server must keep its real policy.
describe('redis bus: eviction policy check', () => {
  it('accepts noeviction', () => {
    expect(evictionDecision(['maxmemory-policy', 'noeviction'], true)).toEqual({ action: 'ok' });
  });

  it('refuses any policy that can evict, naming it', () => {
    for (const policy of ['allkeys-lru', 'volatile-lru', 'allkeys-lfu', 'volatile-ttl', 'allkeys-random']) {
      const decision = evictionDecision(['maxmemory-policy', policy], true);
      expect(decision.action).toBe('refuse');
      expect(decision.message).toContain(policy);
      expect(decision.message).toContain('noeviction');
    }
  });

  it('only warns when the user accepted the risk (requireNoEviction: false)', () => {
    const decision = evictionDecision(['maxmemory-policy', 'allkeys-lru'], false);
    expect(decision.action).toBe('warn');
    expect(decision.message).toContain('allkeys-lru');
  });

  it('warns and goes on when CONFIG is disabled or answers nothing', () => {
    expect(evictionDecision(new Error("ERR unknown command 'CONFIG'"), true).action).toBe('warn');
    expect(evictionDecision([], true).action).toBe('warn');
  });
});
