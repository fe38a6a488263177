import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundHalfEven, start } from '../../../examples/shop/pricing.js';
import type { AgentHandle } from '../../../examples/shop/http.js';
import { customer } from '../../../examples/shop/catalog.js';
import { call } from './helpers.js';

describe('pricing agent (REST)', () => {
  let agent: AgentHandle;
  beforeAll(async () => {
    agent = await start();
  });
  afterAll(() => agent.close());

  // A customer without the gold discount, so the volume discount is the only one on mugs.
  const plain = ['cus-0001', 'cus-0002', 'cus-0003', 'cus-0004', 'cus-0005', 'cus-0006'].find((id) => customer(id).tier !== 'gold')!;

  it('quotes a cart: list price, discounts, unit prices rounded half to even, totals', async () => {
    const res = await call('POST', `${agent.url}/quotes`, { customerId: plain, items: [{ sku: 'SKU-RED-MUG', qty: 3 }, { sku: 'SKU-GRINDER', qty: 1 }] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ customerId: plain, currency: 'EUR', subtotal: 126.35 });
    expect(res.body.quoteId).toMatch(/^q_[0-9a-z]+$/);
    // 12.45 less 10% is 11.205: half a cent, rounded to the even cent.
    expect(res.body.lines[0]).toEqual({ sku: 'SKU-RED-MUG', name: 'Red mug', qty: 3, listPrice: 12.45, discountPct: 10, unitPrice: 11.2, lineTotal: 33.6 });
    expect(res.body.lines[1]).toMatchObject({ sku: 'SKU-GRINDER', qty: 1, discountPct: 0, unitPrice: 89, lineTotal: 89 });
    expect(res.body.total).toBe(122.6);
  });

  it('gives the same quote id for the same cart', async () => {
    const cart = { customerId: plain, items: [{ sku: 'SKU-SENCHA', qty: 2 }] };
    const [a, b] = await Promise.all([call('POST', `${agent.url}/quotes`, cart), call('POST', `${agent.url}/quotes`, cart)]);
    expect(a.body.quoteId).toBe(b.body.quoteId);
  });

  it('refuses malformed carts and unknown products', async () => {
    expect((await call('POST', `${agent.url}/quotes`, { customerId: plain, items: [] })).status).toBe(400);
    expect((await call('POST', `${agent.url}/quotes`, '{nope')).body.error.code).toBe('BAD_JSON');
    const unknown = await call('POST', `${agent.url}/quotes`, { customerId: plain, items: [{ sku: 'SKU-NOPE', qty: 1 }] });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('UNKNOWN_SKU');
  });

  it('serves list prices and health', async () => {
    expect((await call('GET', `${agent.url}/prices/SKU-TEAPOT`)).body).toEqual({ sku: 'SKU-TEAPOT', name: 'Cast-iron teapot', listPrice: 39.95, currency: 'EUR' });
    expect((await call('GET', `${agent.url}/prices/SKU-NOPE`)).status).toBe(404);
    expect((await call('GET', `${agent.url}/healthz`)).body).toEqual({ ok: true, agent: 'pricing' });
    expect(agent.served.get('POST /quotes')).toBeGreaterThan(0);
  });

  it('rounds half to even', () => {
    expect([roundHalfEven(112050, 100), roundHalfEven(111150, 100), roundHalfEven(112051, 100), roundHalfEven(112049, 100)]).toEqual([1120, 1112, 1121, 1120]);
  });
});
