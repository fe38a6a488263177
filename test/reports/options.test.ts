import { describe, expect, it } from 'vitest';
import { formatIssues } from '../../src/config/load.js';
import { flowReadinessSchema, READINESS_DEFAULTS, readinessSchema, resolveCriteria } from '../../src/config/readiness.js';

describe('readiness options', () => {
  it('defaults to the documented criteria', () => {
    expect(readinessSchema.parse({})).toEqual({
      minSamples: 1000,
      minParityLowerBound: 0.999,
      maxMissingRate: 0.001,
      maxDlqRate: 0.001,
      maxBusErrorRate: 0.001,
      maxBusP99Ms: null,
      largeEventBytes: 65536,
    });
    expect(readinessSchema.parse({})).toEqual(READINESS_DEFAULTS);
  });

  it('lets a flow override some keys and inherit the rest, and switch the latency gate off', () => {
    const defaults = readinessSchema.parse({ minSamples: 5000, maxBusP99Ms: 200 });
    expect(resolveCriteria(defaults, flowReadinessSchema.parse({ minParityLowerBound: 0.99 }))).toEqual({ ...READINESS_DEFAULTS, minSamples: 5000, maxBusP99Ms: 200, minParityLowerBound: 0.99 });
    expect(resolveCriteria(defaults, flowReadinessSchema.parse({ maxBusP99Ms: null })).maxBusP99Ms).toBeNull();
    expect(resolveCriteria(defaults, undefined)).toEqual({ ...READINESS_DEFAULTS, minSamples: 5000, maxBusP99Ms: 200 });
  });

  it('names each bad key with its path', () => {
    const result = readinessSchema.safeParse({ minSamples: 1.5, minParityLowerBound: 1.5, maxDlqRate: -1, maxBusP99Ms: 0, nope: 1 });
    expect(result.success).toBe(false);
    expect(formatIssues(result.error!).sort()).toEqual([
      'maxBusP99Ms: expected a positive number of milliseconds',
      'maxDlqRate: expected a rate between 0 and 1',
      'minParityLowerBound: expected a rate between 0 and 1',
      'minSamples: expected a whole number',
      'nope: unknown key',
    ]);
  });
});
