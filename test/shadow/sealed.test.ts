import { afterEach, describe, expect, it } from 'vitest';
import type { BusMessage } from '../../src/bus/types.js';
import type { Keyring } from '../../src/crypto/keyring.js';
import { ObservationTypes, type BusReplyData } from '../../src/events/wire.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { Comparator } from '../../shadow/comparator.js';
import { SEALED_VALUE } from '../../shadow/sealed.js';
import { keyringOf, rotationKeys } from '../helpers/field-keys.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const OBS = 'test.observations';
const PARITY = 'test.parity';
const FLOW = 'payments.charge';
const EMAIL = 'carol@example.com';
const CARD = '4000056655665556';

interface Charge {
  customer?: { email: string; tier?: string };
  card: { number: string };
  amount: number;
}

/** An observation as the sidecar (direct) or the bus side (bus) publishes it: response fields encrypted. */
function observation(side: 'direct' | 'bus', id: string, body: Charge, keyring: Keyring): BusMessage {
  const sealed = structuredClone(body);
  keyring.current.encryptFields(sealed, { eventId: id, part: 'response' });
  const data: BusReplyData = { status: 201, body: sealed };
  return { key: id, event: { specversion: '1.0', id: `${side}:${id}`, source: '/agents/payments', type: ObservationTypes[side], correlationid: id, cutoverflow: FLOW, cutovermode: 'shadow', data } };
}

const charge = (over: Partial<Charge> = {}): Charge => ({ customer: { email: EMAIL, tier: 'gold' }, card: { number: CARD }, amount: 10, ...over });

describe('Comparator on encrypted fields', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup(keyring: Keyring | undefined, ignore: string[] = []) {
    const bus = new MemoryBus();
    const c = new Comparator({ bus, observationsTopic: OBS, parityTopic: PARITY, window: 30_000, sweepInterval: 0, flows: { [FLOW]: { compare: { ignore } } }, ...(keyring ? { keyring } : {}) });
    await c.start();
    cleanups.push(() => c.close());
    const records = (): ParityRecord[] => bus.messages(PARITY).map((d) => d.event.data as ParityRecord);
    return { bus, c, records };
  }

  it('with the key compares clear values: equal values under fresh IVs match, different ones mismatch as [ENCRYPTED]', async () => {
    const { old, current } = rotationKeys();
    const ring = keyringOf(current, [old]);
    const { bus, records } = await setup(ring);
    // The direct side still encrypts with the old key, the bus side with the new one: both decrypt.
    const oldRing = keyringOf(old);
    await bus.publish(`${OBS}.${FLOW}`, [observation('direct', 'same', charge(), oldRing), observation('bus', 'same', charge(), ring)]);
    await bus.publish(`${OBS}.${FLOW}`, [observation('direct', 'differs', charge(), ring), observation('bus', 'differs', charge({ customer: { email: 'mallory@example.com', tier: 'gold' }, card: { number: '4000000000000002' } }), ring)]);
    await waitFor(() => records().length === 2, { what: 'two parity records' });
    const [same, differs] = records();
    expect(same).toMatchObject({ correlationId: 'same', outcome: 'match', diffs: [] });
    expect(differs).toMatchObject({ correlationId: 'differs', outcome: 'mismatch' });
    expect(differs!.diffs).toEqual([
      { path: '/body/customer/email', kind: 'changed', direct: SEALED_VALUE, bus: SEALED_VALUE },
      { path: '/body/card/number', kind: 'changed', direct: SEALED_VALUE, bus: SEALED_VALUE },
    ]);
    const published = JSON.stringify(bus.messages(PARITY).map((d) => d.event));
    for (const secret of [EMAIL, CARD, 'mallory@example.com', '4000000000000002']) expect(published).not.toContain(secret);
  });

  it('shows a differing object that holds an encrypted field with that field masked, never decrypted', async () => {
    const ring = keyringOf(rotationKeys().current);
    const { bus, records } = await setup(ring);
    const { customer: _gone, ...withoutCustomer } = charge();
    await bus.publish(`${OBS}.${FLOW}`, [observation('direct', 'c1', charge(), ring), observation('bus', 'c1', withoutCustomer as Charge, ring)]);
    await waitFor(() => records().length === 1, { what: 'the parity record' });
    expect(records()[0]!.diffs).toEqual([{ path: '/body/customer', kind: 'missing', direct: { email: SEALED_VALUE, tier: 'gold' } }]);
  });

  it('without the key compares ciphertext: encrypted fields always differ, shown as [ENCRYPTED]; compare.ignore makes them match', async () => {
    const ring = keyringOf(rotationKeys().current);
    const blind = await setup(undefined);
    await blind.bus.publish(`${OBS}.${FLOW}`, [observation('direct', 'c1', charge(), ring), observation('bus', 'c1', charge(), ring)]);
    await waitFor(() => blind.records().length === 1, { what: 'the parity record' });
    expect(blind.records()[0]).toMatchObject({ outcome: 'mismatch' });
    expect(blind.records()[0]!.diffs.map((d) => [d.path, d.direct, d.bus])).toEqual([
      ['/body/customer/email/$enc', SEALED_VALUE, SEALED_VALUE],
      ['/body/card/number/$enc', SEALED_VALUE, SEALED_VALUE],
    ]);
    const ignoring = await setup(undefined, ['/body/customer/email', '/body/card/number']);
    await ignoring.bus.publish(`${OBS}.${FLOW}`, [observation('direct', 'c2', charge(), ring), observation('bus', 'c2', charge(), ring)]);
    await waitFor(() => ignoring.records().length === 1, { what: 'the parity record' });
    expect(ignoring.records()[0]).toMatchObject({ outcome: 'match', diffs: [] });
  });

  it('compares an observation that does not decrypt as published and counts it, never half-decrypted', async () => {
    const ring = keyringOf(rotationKeys().current);
    const stranger = keyringOf(rotationKeys().current);
    const { bus, c, records } = await setup(ring);
    await bus.publish(`${OBS}.${FLOW}`, [observation('direct', 'c1', charge(), ring), observation('bus', 'c1', charge(), stranger)]);
    await waitFor(() => records().length === 1, { what: 'the parity record' });
    expect(records()[0]).toMatchObject({ outcome: 'mismatch' });
    expect(records()[0]!.diffs.every((d) => d.direct === SEALED_VALUE || d.bus === SEALED_VALUE)).toBe(true);
    expect(JSON.stringify(records())).not.toContain(EMAIL);
    expect(c.stats().undecryptable).toBe(1);
  });
});
