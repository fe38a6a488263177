import { afterEach, describe, expect, it } from 'vitest';
import { CHECKOUT_SAGA } from '../../../../examples/demo/config.js';
import { startBusCheckout } from '../../../../examples/shop/bus-native/checkout.js';
import { startShop } from '../../../../examples/shop/index.js';
import { sagaDefinition } from '../../../../src/saga/model.js';
import { SagaOrchestrator } from '../../../../src/saga/orchestrator.js';
import { outcomeResponse } from '../../../../src/saga/state.js';
import { call } from '../helpers.js';
import { harness } from './helpers.js';

/** Without the booking time, which differs on every side. */
function comparable(answer: { status: number; body?: unknown }): { status: number; body: unknown } {
  const body = answer.body as Record<string, unknown> | undefined;
  const { createdAt: _, ...rest } = body ?? {};
  return { status: answer.status, body: body && 'createdAt' in body ? rest : body };
}

describe('bus-native checkout participants (serveSagaStep, embedded bus)', () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });

  it('the checkout saga in shadow answers every checkout as the REST chain does, and undoes the same steps', async () => {
    const h = await harness();
    open.push(h);
    const participants = await startBusCheckout({ bus: h.bus });
    open.push(...participants);
    const orchestrator = new SagaOrchestrator({ bus: h.bus, sagas: [sagaDefinition(CHECKOUT_SAGA)], tickMs: 20 });
    await orchestrator.start();
    open.push(orchestrator);
    const shop = await startShop();
    open.push(shop);

    const checkout = (checkoutId: string, items: Array<{ sku: string; qty: number }>, customerId = 'cus-0010', country = 'DE') => ({ checkoutId, customerId, items, shipTo: { country, postcode: '10115' } });
    const checkouts = [
      checkout('s-ok', [{ sku: 'SKU-RED-MUG', qty: 1 }, { sku: 'SKU-SENCHA', qty: 2 }]),
      checkout('s-limit', [{ sku: 'SKU-KETTLE', qty: 4 }]),
      checkout('s-fraud', [{ sku: 'SKU-GRINDER', qty: 6 }], 'cus-0002', 'DE'),
      checkout('s-cups', [{ sku: 'SKU-LIMITED-CUP', qty: 3 }]),
      { checkoutId: 's-bad', customerId: 'cus-0010', items: [] },
    ];
    for (const c of checkouts) {
      const chain = await call('POST', `${shop.agents.orders.url}/checkout`, c);
      await orchestrator.begin('checkout', { body: c, params: {}, query: {} }, { id: c.checkoutId, mode: 'shadow' });
      const outcome = await orchestrator.outcome('checkout', c.checkoutId, 15_000);
      expect(comparable(outcomeResponse(outcome)), c.checkoutId).toEqual(comparable(chain));
    }
    expect(checkouts.map((c) => orchestrator.get('checkout', c.checkoutId)!.status)).toEqual(['completed', 'compensated', 'compensated', 'compensated', 'compensated']);
    // The chain released the hold after the refused charge and the fraud rejection, and refunded nothing...
    expect(shop.agents.inventory.served.get('POST /checkout/releases')).toBe(2);
    expect(shop.agents.payments.served.get('POST /checkout/refunds')).toBeUndefined();
    // ...and so did the saga: inventory handled 5 holds (every checkout starts there) and 2 releases, payments 2 charges.
    const handled = Object.fromEntries(participants.map((p) => [p.agents.agent, p.handled]));
    expect(handled).toEqual({ inventory: 7, fraud: 3, payments: 2, logistics: 1 });
  });
});
