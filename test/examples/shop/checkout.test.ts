import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShop, type Shop } from '../../../examples/shop/index.js';
import { call } from './helpers.js';

describe('the checkout chain (orders POST /checkout through inventory, fraud, payments, logistics)', () => {
  let shop: Shop;
  beforeAll(async () => {
    shop = await startShop();
  });
  afterAll(() => shop.close());

  const checkout = (checkoutId: string, items: Array<{ sku: string; qty: number }>, customerId = 'cus-0010', country = 'DE') => ({ checkoutId, customerId, items, shipTo: { country, postcode: '10115' } });
  const served = (agent: keyof Shop['agents'], route: string) => shop.agents[agent].served.get(route) ?? 0;
  const undos = () => ({ releases: served('inventory', 'POST /checkout/releases'), refunds: served('payments', 'POST /checkout/refunds') });

  it('answers with the shipment when every step succeeds, and undoes nothing', async () => {
    const before = undos();
    const res = await call('POST', `${shop.agents.orders.url}/checkout`, checkout('k-1', [{ sku: 'SKU-BLUE-MUG', qty: 2 }]));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ orderId: 'k-1', carrier: 'DHL', currency: 'EUR' });
    expect(served('payments', 'POST /checkout/charges')).toBeGreaterThan(0);
    expect(undos()).toEqual(before);
  });

  it('answers with payments\u2019 402 over the card limit, after releasing the hold', async () => {
    const before = undos();
    // 4 kettles at 54.90 EUR: 219.60 EUR, over the 150 EUR limit.
    const res = await call('POST', `${shop.agents.orders.url}/checkout`, checkout('k-2', [{ sku: 'SKU-KETTLE', qty: 4 }]));
    expect(res.status).toBe(402);
    expect(res.body.error).toMatchObject({ code: 'PAYMENT_DECLINED', amount: 219.6 });
    expect(undos()).toEqual({ releases: before.releases + 1, refunds: before.refunds });
  });

  it('answers with fraud\u2019s 403 for a checkout the model rejects, after releasing the hold', async () => {
    const before = undos();
    // A new customer (cus-0002, FR) shipping 534 EUR abroad: the fraud model rejects it before payments.
    const res = await call('POST', `${shop.agents.orders.url}/checkout`, checkout('k-3', [{ sku: 'SKU-GRINDER', qty: 6 }], 'cus-0002', 'DE'));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FRAUD_REJECTED');
    expect(undos()).toEqual({ releases: before.releases + 1, refunds: before.refunds });
  });

  it('stops at inventory with nothing to undo: too many limited cups, or a malformed checkout', async () => {
    const before = undos();
    const cups = await call('POST', `${shop.agents.orders.url}/checkout`, checkout('k-4', [{ sku: 'SKU-LIMITED-CUP', qty: 3 }]));
    expect(cups.status).toBe(409);
    expect(cups.body.error.code).toBe('LIMIT_EXCEEDED');
    const bad = await call('POST', `${shop.agents.orders.url}/checkout`, { checkoutId: 'k-5', customerId: 'cus-0010', items: [{ sku: 'SKU-BLUE-MUG', qty: 0 }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^items\[0\]/);
    expect(undos()).toEqual(before);
  });
});
