import { afterEach, describe, expect, it } from 'vitest';
import { CHECK_TOPIC, startBusFraud } from '../../../../examples/shop/bus-native/fraud.js';
import { assess } from '../../../../examples/shop/fraud-rules.js';
import { harness } from './helpers.js';

describe('bus-native fraud (SDK, embedded bus)', () => {
  const open: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });

  it('replies with the fraud model\u2019s assessment, and 400 for a malformed check', async () => {
    const h = await harness();
    open.push(h);
    open.push(await startBusFraud({ bus: h.bus }));
    const check = { orderId: 'ord-b1', customerId: 'cus-0100', amount: 310.5, shipTo: 'FR', itemCount: 3 };
    const [ok, bad] = await h.send([
      { flow: 'fraud.check', topic: CHECK_TOPIC, body: check, key: check.customerId },
      { flow: 'fraud.check', topic: CHECK_TOPIC, body: { orderId: 'x' }, key: 'x' },
    ]);
    expect((await h.reply(ok!)).event.data).toMatchObject({ status: 200, body: assess(check) });
    expect((await h.reply(bad!)).event.data).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
  });
});
