import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start } from '../../../examples/shop/logistics.js';
import type { AgentHandle } from '../../../examples/shop/http.js';
import { call } from './helpers.js';

describe('logistics agent (REST)', () => {
  let a: AgentHandle;
  let b: AgentHandle;
  beforeAll(async () => {
    [a, b] = await Promise.all([start(), start()]);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  const booking = { orderId: 'ord-l1', shipTo: { country: 'DE', postcode: '10115' }, items: [{ sku: 'SKU-TEAPOT', qty: 1 }, { sku: 'SKU-SENCHA', qty: 2 }] };

  it('books a parcel: carrier, weight, cost (base + per started kg) and ETA from the order', async () => {
    const res = await call('POST', `${a.url}/shipments`, booking);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ orderId: 'ord-l1', carrier: 'DHL', service: 'parcel', weightGrams: 250 + 1600 + 240, cost: 6.79, currency: 'EUR', etaDays: 2 });
    expect(res.headers.get('location')).toBe(`/shipments/${res.body.shipmentId}`);
    expect((await call('GET', `${a.url}/shipments/${res.body.shipmentId}`)).body).toEqual(res.body);
  });

  it('books the same parcel on a second instance, but for the booking time', async () => {
    const one = (await call('POST', `${a.url}/shipments`, booking)).body;
    const two = (await call('POST', `${b.url}/shipments`, booking)).body;
    const { createdAt: _1, ...restOne } = one;
    const { createdAt: _2, ...restTwo } = two;
    expect(restTwo).toEqual(restOne);
  });

  it('refuses bad bookings and embargoed destinations', async () => {
    expect((await call('POST', `${a.url}/shipments`, { orderId: 'ord-l2', items: [] })).status).toBe(400);
    expect((await call('POST', `${a.url}/shipments`, { ...booking, items: [{ sku: 'SKU-NOPE', qty: 1 }] })).status).toBe(400);
    const embargoed = await call('POST', `${a.url}/shipments`, { ...booking, shipTo: { country: 'KP', postcode: '1' } });
    expect(embargoed.status).toBe(422);
    expect(embargoed.body.error.code).toBe('NO_CARRIER');
  });
});
