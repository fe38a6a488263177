import { describe, expect, it } from 'vitest';
import { checkoutCount, mixIn, planCheckouts } from '../../../examples/demo/checkout-traffic.js';
import { planTraffic } from '../../../examples/demo/traffic.js';
import { CHECKOUT_RULES } from '../../../examples/shop/checkout-rules.js';

describe('checkout traffic', () => {
  it('is the same for the same seed, with valid checkouts and unique ids', () => {
    expect(planCheckouts(42, 100)).toEqual(planCheckouts(42, 100));
    const plan = planCheckouts(42, 300);
    expect(new Set(plan.map((c) => c.body.checkoutId)).size).toBe(300);
    // Every checkout is well formed: the chain's first step holds it or refuses the limited cups, never a 400.
    expect(new Set(plan.map((c) => CHECKOUT_RULES.hold(c.body).status))).toEqual(new Set([201, 409]));
    // Payments refuses some of them (over the card limit), not most.
    const declined = plan.filter((c) => CHECKOUT_RULES.charge(c.body).status === 402).length;
    expect(declined).toBeGreaterThan(0);
    expect(declined).toBeLessThan(plan.length / 2);
  });

  it('is a fifth of the requests, at least enough for a verdict', () => {
    expect(checkoutCount(400)).toBe(210);
    expect(checkoutCount(2000)).toBe(400);
  });

  it('spreads the checkouts evenly through the plan, keeping both in order', () => {
    const plan = planTraffic(42, 100);
    const checkouts = planCheckouts(42, 25);
    const mixed = mixIn(plan, checkouts);
    expect(mixed.filter((r) => r.kind !== 'checkout')).toEqual(plan);
    expect(mixed.filter((r) => r.kind === 'checkout')).toEqual(checkouts);
    // A checkout after the first request of the plan, then one after every four more.
    const positions = mixed.flatMap((r, i) => (r.kind === 'checkout' ? [i] : []));
    expect(positions.slice(0, 3)).toEqual([1, 6, 11]);
  });
});
