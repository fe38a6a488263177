import { afterEach, describe, expect, it } from 'vitest';
import { RESERVE_TOPIC, RESERVED_FACT_TOPIC, startBusInventory } from '../../../../examples/shop/bus-native/inventory.js';
import { CATALOG } from '../../../../examples/shop/catalog.js';
import { hash32 } from '../../../../examples/shop/random.js';
import type { Delivery } from '../../../../src/bus/index.js';
import { waitFor } from '../../../helpers/wait-for.js';
import { harness, type Harness } from './helpers.js';

const stockOf = (sku: string): number => CATALOG.find((p) => p.sku === sku)!.stock;

/** Two order ids whose warehouse lookups for `sku` take very different times (slow first, fast second). */
function slowThenFast(sku: string): [string, string] {
  const ms = (orderId: string) => 2 + (hash32(`wms:${orderId}:${sku}`) % 39);
  const ids = Array.from({ length: 400 }, (_, i) => `ord-o${i}`);
  const slow = ids.find((id) => ms(id) >= 38)!;
  const fast = ids.find((id) => ms(id) <= 4)!;
  return [slow, fast];
}

describe('bus-native inventory (SDK, embedded bus)', () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });

  async function setup(): Promise<Harness> {
    const h = await harness();
    open.push(h);
    open.push(await startBusInventory({ bus: h.bus }));
    return h;
  }

  it('holds stock like the REST agent: 201 with what remains, 200 for a line it holds, 409 when short', async () => {
    const h = await setup();
    const sku = 'SKU-LIMITED-CUP';
    const [a, again, short] = await h.send([
      { flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId: 'ord-i1', sku, qty: 2 }, key: sku },
      { flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId: 'ord-i1', sku, qty: 2 }, key: sku },
      { flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId: 'ord-i2', sku, qty: 1000 }, key: sku },
    ]);
    const first = (await h.reply(a!)).event.data as { status: number; body: unknown; headers: Record<string, string> };
    expect(first).toMatchObject({ status: 201, body: { reservationId: `res_ord-i1_${sku}`, orderId: 'ord-i1', sku, qty: 2, status: 'held', warehouse: 'WH-HAMBURG', remaining: stockOf(sku) - 2 } });
    expect(first.headers.location).toBe(`/reservations/res_ord-i1_${sku}`);
    expect((await h.reply(again!)).event.data).toMatchObject({ status: 200, body: first.body });
    expect((await h.reply(short!)).event.data).toMatchObject({ status: 409, body: { error: { code: 'OUT_OF_STOCK', sku, available: stockOf(sku) - 2 } } });
  });

  it('keyed by SKU, applies one SKU\u2019s reservations in the order they were made', async () => {
    const h = await setup();
    const sku = 'SKU-TEAPOT';
    const [slow, fast] = slowThenFast(sku);
    const ids = await h.send([slow, fast].map((orderId) => ({ flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId, sku, qty: 1 }, key: sku })));
    const remaining = await Promise.all(ids.map(async (id) => ((await h.reply(id)).event.data as { body: { remaining: number } }).body.remaining));
    expect(remaining).toEqual([stockOf(sku) - 1, stockOf(sku) - 2]);
  });

  it('keyed by order (the demo\u2019s planted mistake), applies them in the order their warehouse lookups finish', async () => {
    const h = await setup();
    const sku = 'SKU-TEAPOT';
    const [slow, fast] = slowThenFast(sku);
    const ids = await h.send([slow, fast].map((orderId) => ({ flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId, sku, qty: 1 }, key: orderId })));
    const remaining = await Promise.all(ids.map(async (id) => ((await h.reply(id)).event.data as { body: { remaining: number } }).body.remaining));
    // The REST agent told the first order 49,999 and the second 49,998; the port tells them the reverse.
    expect(remaining).toEqual([stockOf(sku) - 2, stockOf(sku) - 1]);
  });

  it('publishes the reserved fact only when it serves the call for real (not in shadow mode)', async () => {
    const h = await setup();
    const facts: Delivery[] = [];
    await h.bus.subscribe({ group: 'test.facts', topics: [RESERVED_FACT_TOPIC], handler: async (d) => void facts.push(d) });
    const [shadow] = await h.send([{ flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId: 'ord-s', sku: 'SKU-TRAY', qty: 1 }, key: 'SKU-TRAY', mode: 'shadow' }]);
    await h.reply(shadow!);
    const [real] = await h.send([{ flow: 'inventory.reserve', topic: RESERVE_TOPIC, body: { orderId: 'ord-b', sku: 'SKU-TRAY', qty: 1 }, key: 'SKU-TRAY', mode: 'bus' }]);
    await h.reply(real!);
    await waitFor(() => facts.length >= 1, { what: 'the reserved fact' });
    expect(facts.map((f) => (f.event.data as { orderId: string }).orderId)).toEqual(['ord-b']);
  });
});
