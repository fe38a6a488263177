import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShop, type Shop } from '../../../examples/shop/index.js';
import { rank } from '../../../examples/shop/recommendation.js';
import { call } from './helpers.js';

describe('recommendation agent (REST, calling pricing and inventory)', () => {
  let shop: Shop;
  beforeAll(async () => {
    shop = await startShop();
  });
  afterAll(() => shop.close());

  it('recommends in-stock products, priced for the customer, the same for the same customer', async () => {
    const url = `${shop.agents.recommendation.url}/recommendations/cus-0042?limit=3`;
    const res = await call('GET', url);
    expect(res.status).toBe(200);
    expect(res.body.customerId).toBe('cus-0042');
    expect(res.body.quoteId).toMatch(/^q_/);
    expect(res.body.items).toHaveLength(3);
    expect(res.body.items.map((i: { sku: string }) => i.sku)).toEqual(rank('cus-0042').slice(0, 3));
    for (const item of res.body.items) {
      expect(item.price).toBeLessThanOrEqual(item.listPrice);
      expect(item.available).toBeGreaterThan(0);
    }
    expect((await call('GET', url)).body).toEqual(res.body);
    expect(shop.agents.inventory.served.get('GET /stock/:sku')).toBe(10);
  });

  it('refuses a bad limit', async () => {
    expect((await call('GET', `${shop.agents.recommendation.url}/recommendations/cus-0042?limit=99`)).status).toBe(400);
  });
});
