import { describe, expect, it } from 'vitest';
import { compareIds } from '../../../src/bus/redis/keys.js';

describe('compareIds (Redis stream ids)', () => {
  it('orders by milliseconds, then sequence, numerically', () => {
    const sorted = ['999-7', '1000-0', '1000-2', '1000-10', '10000-0'];
    const shuffled = [...sorted].reverse();
    expect(shuffled.sort(compareIds)).toEqual(sorted);
    expect(compareIds('1000-2', '1000-2')).toBe(0);
    expect(compareIds('1000-10', '1000-9')).toBe(1);
  });
});
