import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start } from '../../../examples/shop/inventory.js';
import type { AgentHandle } from '../../../examples/shop/http.js';
import { call } from './helpers.js';

describe('inventory agent (REST)', () => {
  let agent: AgentHandle;
  beforeAll(async () => {
    agent = await start();
  });
  afterAll(() => agent.close());

  it('holds stock for an order line and reports what remains', async () => {
    const before = (await call('GET', `${agent.url}/stock/SKU-TEAPOT`)).body;
    const res = await call('POST', `${agent.url}/reservations`, { orderId: 'ord-t1', sku: 'SKU-TEAPOT', qty: 2 });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/reservations/res_ord-t1_SKU-TEAPOT');
    expect(res.body).toEqual({ reservationId: 'res_ord-t1_SKU-TEAPOT', orderId: 'ord-t1', sku: 'SKU-TEAPOT', qty: 2, status: 'held', warehouse: 'WH-LEIPZIG', remaining: before.available - 2 });
    expect((await call('GET', `${agent.url}/stock/SKU-TEAPOT`)).body).toEqual({ sku: 'SKU-TEAPOT', available: before.available - 2, reserved: before.reserved + 2 });
    expect((await call('GET', `${agent.url}/reservations/res_ord-t1_SKU-TEAPOT`)).body).toEqual(res.body);
  });

  it('answers a repeated order line with the reservation it holds, taking no more stock', async () => {
    const first = await call('POST', `${agent.url}/reservations`, { orderId: 'ord-t2', sku: 'SKU-SENCHA', qty: 1 });
    const again = await call('POST', `${agent.url}/reservations`, { orderId: 'ord-t2', sku: 'SKU-SENCHA', qty: 1 });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect((await call('GET', `${agent.url}/stock/SKU-SENCHA`)).body.reserved).toBe(1);
  });

  it('refuses with 409 when stock is short, 404 for unknown SKUs, 400 for bad bodies', async () => {
    const stock = (await call('GET', `${agent.url}/stock/SKU-LIMITED-CUP`)).body.available as number;
    const short = await call('POST', `${agent.url}/reservations`, { orderId: 'ord-t3', sku: 'SKU-LIMITED-CUP', qty: stock + 1 });
    expect(short.status).toBe(409);
    expect(short.body.error).toMatchObject({ code: 'OUT_OF_STOCK', sku: 'SKU-LIMITED-CUP', available: stock });
    expect((await call('POST', `${agent.url}/reservations`, { orderId: 'ord-t3', sku: 'SKU-NOPE', qty: 1 })).status).toBe(404);
    expect((await call('POST', `${agent.url}/reservations`, { orderId: 'ord-t3', sku: 'SKU-TEAPOT', qty: 0 })).status).toBe(400);
    expect((await call('GET', `${agent.url}/stock/SKU-NOPE`)).status).toBe(404);
    expect((await call('GET', `${agent.url}/nothing-here`)).status).toBe(404);
  });
});
