import { describe, expect, it } from 'vitest';
import { planTraffic } from '../../../examples/demo/traffic.js';
import { product } from '../../../examples/shop/catalog.js';

describe('traffic plan', () => {
  it('is the same for the same seed, and different for another', () => {
    expect(planTraffic(42, 200)).toEqual(planTraffic(42, 200));
    expect(planTraffic(43, 200)).not.toEqual(planTraffic(42, 200));
  });

  it('mixes about two orders per recommendation page, with valid carts and unique cart ids', () => {
    const plan = planTraffic(42, 1000);
    const orders = plan.filter((r) => r.kind === 'order');
    expect(orders.length / plan.length).toBeGreaterThan(0.55);
    expect(orders.length / plan.length).toBeLessThan(0.75);
    const carts = new Set<string>();
    for (const o of orders) {
      carts.add(o.body.cartId);
      expect(o.body.items.length).toBeGreaterThan(0);
      for (const item of o.body.items) {
        expect(product(item.sku)).toBeDefined();
        expect(item.qty).toBeGreaterThan(0);
      }
    }
    expect(carts.size).toBe(orders.length);
  });
});
