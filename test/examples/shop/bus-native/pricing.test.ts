import { afterEach, describe, expect, it } from 'vitest';
import { QUOTE_TOPIC, startBusPricing } from '../../../../examples/shop/bus-native/pricing.js';
import type { BusAgent } from '../../../../examples/shop/bus-native/call.js';
import { customer } from '../../../../examples/shop/catalog.js';
import { start as startRestPricing } from '../../../../examples/shop/pricing.js';
import { call } from '../helpers.js';
import { harness, type Harness } from './helpers.js';

describe('bus-native pricing (SDK, embedded bus)', () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });

  async function setup(rounding?: 'half-up' | 'half-even'): Promise<{ h: Harness; agent: BusAgent }> {
    const h = await harness();
    open.push(h);
    const agent = await startBusPricing({ bus: h.bus, ...(rounding ? { rounding } : {}) });
    open.push(agent);
    return { h, agent };
  }

  const plain = ['cus-0001', 'cus-0002', 'cus-0003', 'cus-0004'].find((id) => customer(id).tier !== 'gold')!;
  const carts = [
    { customerId: plain, items: [{ sku: 'SKU-RED-MUG', qty: 3 }] }, // 11.205: half a cent
    { customerId: plain, items: [{ sku: 'SKU-GRINDER', qty: 1 }, { sku: 'SKU-SENCHA', qty: 2 }] }, // no half cents
    { customerId: plain, items: [{ sku: 'SKU-NOPE', qty: 1 }] },
  ];

  it('answers like the REST agent, except where a discounted price lands on half a cent (the planted bug)', async () => {
    const { h } = await setup();
    const rest = await startRestPricing();
    open.push(rest);
    const ids = await h.send(carts.map((body) => ({ flow: 'pricing.quote', topic: QUOTE_TOPIC, body, key: body.customerId })));
    const bus = await Promise.all(ids.map((id) => h.reply(id)));
    const direct = await Promise.all(carts.map((body) => call('POST', `${rest.url}/quotes`, body)));

    // Half a cent: the REST agent rounds to the even cent, the port rounds up.
    expect(direct[0]!.body.lines[0].unitPrice).toBe(11.2);
    expect(bus[0]!.event.data).toMatchObject({ status: 200, body: { lines: [{ unitPrice: 11.21, lineTotal: 33.63 }], total: 33.63 } });
    // Everything else is the same answer.
    expect(bus[1]!.event.data).toMatchObject({ status: 200, body: direct[1]!.body });
    expect(bus[2]!.event.data).toMatchObject({ status: 422, body: direct[2]!.body });
    expect(bus[0]!.event).toMatchObject({ type: 'cutover.observation.bus', source: '/agents/pricing', cutoverflow: 'pricing.quote', cutovermode: 'shadow' });
  });

  it('with half-even rounding (the fix) gives the REST agent\u2019s quote', async () => {
    const { h, agent } = await setup('half-even');
    const [id] = await h.send([{ flow: 'pricing.quote', topic: QUOTE_TOPIC, body: carts[0], key: plain }]);
    expect((await h.reply(id!)).event.data).toMatchObject({ status: 200, body: { lines: [{ unitPrice: 11.2, lineTotal: 33.6 }] } });
    expect(agent.handled).toBe(1);
  });
});
