import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShop, type Shop } from '../../../examples/shop/index.js';
import { call } from './helpers.js';

describe('orders agent (REST, calling pricing, inventory, fraud, logistics)', () => {
  let shop: Shop;
  beforeAll(async () => {
    shop = await startShop();
  });
  afterAll(() => shop.close());

  const cart = (cartId: string, items: Array<{ sku: string; qty: number }>, country = 'DE') => ({ cartId, customerId: 'cus-0010', items, shipTo: { country, postcode: '10115' } });

  it('places an order: priced, reserved, checked, shipped', async () => {
    const res = await call('POST', `${shop.agents.orders.url}/orders`, cart('t-1', [{ sku: 'SKU-BLUE-MUG', qty: 2 }, { sku: 'SKU-FILTERS', qty: 1 }]));
    expect([201, 422]).toContain(res.status);
    expect(res.body).toMatchObject({ orderId: 'ord-t-1', customerId: 'cus-0010', currency: 'EUR' });
    expect(res.body.lines.map((l: { sku: string; status: string }) => [l.sku, l.status])).toEqual([['SKU-BLUE-MUG', 'held'], ['SKU-FILTERS', 'held']]);
    if (res.body.fraud.decision === 'approve') {
      expect(res.status).toBe(201);
      expect(res.body.status).toBe('confirmed');
      expect(res.body.shipment).toMatchObject({ carrier: 'DHL' });
    }
    expect(shop.agents.pricing.served.get('POST /quotes')).toBeGreaterThan(0);
    expect(shop.agents.inventory.served.get('POST /reservations')).toBe(2);
    expect(shop.agents.fraud.served.get('POST /checks')).toBe(1);
    expect((await call('GET', `${shop.agents.orders.url}/orders/ord-t-1`)).body).toEqual(res.body);
    // The same cart again is the same order, not a second one.
    expect((await call('POST', `${shop.agents.orders.url}/orders`, cart('t-1', [{ sku: 'SKU-BLUE-MUG', qty: 2 }]))).status).toBe(200);
    expect(shop.agents.inventory.served.get('POST /reservations')).toBe(2);
  });

  it('backorders lines out of stock and refuses an order with nothing in stock', async () => {
    const partial = await call('POST', `${shop.agents.orders.url}/orders`, cart('t-2', [{ sku: 'SKU-LIMITED-CUP', qty: 1000 }, { sku: 'SKU-SENCHA', qty: 1 }]));
    expect(partial.body.lines.map((l: { status: string }) => l.status)).toEqual(['backordered', 'held']);
    const none = await call('POST', `${shop.agents.orders.url}/orders`, cart('t-3', [{ sku: 'SKU-LIMITED-CUP', qty: 1000 }]));
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe('OUT_OF_STOCK');
  });

  it('refuses malformed carts and passes on unknown products as 422', async () => {
    expect((await call('POST', `${shop.agents.orders.url}/orders`, { customerId: 'cus-0010', items: [] })).status).toBe(400);
    expect((await call('POST', `${shop.agents.orders.url}/orders`, '{bad json')).status).toBe(400);
    const unknown = await call('POST', `${shop.agents.orders.url}/orders`, cart('t-4', [{ sku: 'SKU-NOPE', qty: 1 }]));
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('UNKNOWN_SKU');
    expect((await call('GET', `${shop.agents.orders.url}/orders/ord-none`)).status).toBe(404);
  });
});
