import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start } from '../../../examples/shop/fraud.js';
import { MODEL_VERSION } from '../../../examples/shop/fraud-rules.js';
import type { AgentHandle } from '../../../examples/shop/http.js';
import { customer } from '../../../examples/shop/catalog.js';
import { call } from './helpers.js';

describe('fraud agent (REST)', () => {
  let agent: AgentHandle;
  beforeAll(async () => {
    agent = await start();
  });
  afterAll(() => agent.close());

  it('scores an order and decides, the same way every time', async () => {
    const id = 'cus-0007';
    const check = { orderId: 'ord-f1', customerId: id, amount: 42.5, shipTo: customer(id).country, itemCount: 2 };
    const a = await call('POST', `${agent.url}/checks`, check);
    const b = await call('POST', `${agent.url}/checks`, check);
    expect(a.status).toBe(200);
    expect(a.body).toEqual(b.body);
    expect(a.body).toMatchObject({ orderId: 'ord-f1', modelVersion: MODEL_VERSION });
    expect(['approve', 'review', 'reject']).toContain(a.body.decision);
    expect(a.body.score).toBeGreaterThanOrEqual(0);
  });

  it('weighs large amounts shipped abroad', async () => {
    const id = 'cus-0008';
    const abroad = customer(id).country === 'US' ? 'DE' : 'US';
    const res = await call('POST', `${agent.url}/checks`, { orderId: 'ord-f2', customerId: id, amount: 900, shipTo: abroad, itemCount: 9 });
    expect(res.body.reasons).toEqual(expect.arrayContaining(['amount_very_high', 'ships_abroad', 'bulk_order']));
    expect(res.body.score).toBeGreaterThanOrEqual(65);
  });

  it('refuses malformed checks', async () => {
    const res = await call('POST', `${agent.url}/checks`, { orderId: 'ord-f3', customerId: 'cus-0001', amount: -1, shipTo: 'DE', itemCount: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('BAD_REQUEST');
  });
});
