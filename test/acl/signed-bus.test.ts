import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TopicAcl } from '../../src/acl/rules.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { DlqHeaders, type BusMessage } from '../../src/bus/types.js';
import { aclSchema, type AclConfigInput } from '../../src/config/acl.js';
import { ErrorCodes } from '../../src/errors.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { signEvent, type Signer, type Trust } from '../../src/events/signature.js';
import { appendFlip, readFlips } from '../../src/flips/log.js';
import type { FlipRecord } from '../../src/flips/types.js';
import { AgentBus } from '../../src/sdk/index.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';

const keys = { inventory: generateKeyPairSync('ed25519'), checkout: generateKeyPairSync('ed25519') };
const signer = (agent: keyof typeof keys): Signer => ({ agent, keyId: 'k1', key: keys[agent].privateKey });
const trust: Trust = {
  keys: new Map(Object.entries(keys).map(([agent, pair]) => [agent, new Map<string, KeyObject>([['k1', pair.publicKey]])])),
  allowUnsigned: new Set(['pricing']),
  enforce: true,
};
const rules: AclConfigInput = {
  agents: { inventory: { publish: ['events.inventory.#'] }, checkout: { publish: ['commands.agent.inventory.*'], consume: ['events.inventory.#'] }, pricing: { publish: ['events.pricing.#'] } },
  operators: ['checkout'],
};
const acl = (enforce = true): TopicAcl => new TopicAcl(aclSchema.parse({ ...rules, enforce }));
const message = (agent: string): BusMessage => ({ key: null, event: buildEvent({ source: `/agents/${agent}`, type: 'test', data: { n: 1 } }) });

describe('signed bus with acl: cutover enforces topic authorization itself', () => {
  it('refuses a publish outside the identity grant with CUTOVER_AUTH_TOPIC_DENIED, before the bus sees it', async () => {
    const raw = new MemoryBus();
    const inventory = signedBus(raw, { signer: signer('inventory'), acl: acl() });
    await inventory.publish('events.inventory.reserved', [message('inventory')]);
    const refused = await inventory.publish('commands.agent.inventory.reserve', [message('inventory')]).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED, retriable: false });
    expect((refused as Error).message).toContain('topic commands.agent.inventory.reserve: agent "inventory" may not publish here');
    expect(raw.messages('commands.agent.inventory.reserve')).toHaveLength(0);
    // Without a signer, the config's agent is the identity.
    await expect(signedBus(raw, { acl: acl(), agent: 'inventory' }).publish('cutover.parity', [message('inventory')])).rejects.toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED });
    // enforce: false logs and publishes.
    await signedBus(raw, { signer: signer('inventory'), acl: acl(false) }).publish('commands.agent.inventory.reserve', [message('inventory')]);
    expect(raw.messages('commands.agent.inventory.reserve')).toHaveLength(1);
  });

  it('dead-letters a correctly signed event whose producer may not publish on its topic, and counts it', async () => {
    const raw = new MemoryBus();
    const registry = new Registry();
    const consumer = signedBus(raw, { trust, acl: acl(), registry });
    const seen: string[] = [];
    await consumer.subscribe({ group: 'checkout.facts', topics: ['events.inventory.#'], handler: async (d) => void seen.push(d.event.source) });
    const own = signedBus(raw, { signer: signer('inventory') });
    const other = signedBus(raw, { signer: signer('checkout') });
    await own.publish('events.inventory.reserved', [message('inventory')]);
    await other.publish('events.inventory.reserved', [message('checkout')]);
    // An unsigned event of an allowUnsigned producer is judged by its source agent.
    await raw.publish('events.inventory.reserved', [message('pricing')]);
    const dlq = 'events.inventory.reserved.dlq';
    await waitFor(() => seen.length === 1 && raw.messages(dlq).length === 2, { what: 'one handled, two dead letters' });
    expect(seen).toEqual(['/agents/inventory']);
    expect(raw.messages(dlq).map((m) => [m.event.source, m.headers[DlqHeaders.errorCode]])).toEqual([
      ['/agents/checkout', ErrorCodes.AUTH_TOPIC_DENIED],
      ['/agents/pricing', ErrorCodes.AUTH_TOPIC_DENIED],
    ]);
    expect(await registry.getSingleMetricAsString('cutover_events_rejected_total')).toContain('consumer="checkout.facts",reason="CUTOVER_AUTH_TOPIC_DENIED"} 2');
  });

  it('handles such an event anyway with acl.enforce off (counted)', async () => {
    const raw = new MemoryBus();
    const registry = new Registry();
    const seen: string[] = [];
    await signedBus(raw, { trust, acl: acl(false), registry }).subscribe({ group: 'g', topics: ['events.inventory.reserved'], handler: async (d) => void seen.push(d.event.source) });
    await signedBus(raw, { signer: signer('checkout') }).publish('events.inventory.reserved', [message('checkout')]);
    await waitFor(() => seen.length === 1, { what: 'handled' });
    expect(raw.messages('events.inventory.reserved.dlq')).toHaveLength(0);
    expect(await registry.getSingleMetricAsString('cutover_events_rejected_total')).toContain('reason="CUTOVER_AUTH_TOPIC_DENIED"} 1');
  });

  it('skips on reads: a flip signed by a trusted identity that acl: does not name is never read', async () => {
    const raw = new MemoryBus();
    const record = { flow: 'inventory.reserve', from: 'shadow', to: 'canary:10', reason: 'r', who: 'carol', at: new Date().toISOString(), forced: false, report: null } as FlipRecord;
    await appendFlip(signedBus(raw, { signer: signer('checkout') }), record);
    await appendFlip(signedBus(raw, { signer: signer('inventory') }), { ...record, to: 'bus' } as FlipRecord);
    const inventoryOnly = new TopicAcl(aclSchema.parse({ agents: { inventory: rules.agents!.inventory } }));
    expect((await readFlips(signedBus(raw, { trust, acl: inventoryOnly }))).map((f) => f.to)).toEqual(['bus']);
  });

  it('judges an event signed already by its signer, on publish too (a flip signed with an operator key)', async () => {
    const raw = new MemoryBus();
    const pricingAcl = new TopicAcl(aclSchema.parse({ agents: { inventory: rules.agents!.inventory }, operators: ['checkout'] }));
    const flip = signEvent(message('checkout').event, 'cutover.control', signer('checkout'));
    // pricing is not named, but the flip speaks for checkout, an operator.
    await signedBus(raw, { signer: { ...signer('inventory'), agent: 'pricing' }, acl: pricingAcl }).publish('cutover.control', [{ key: null, event: flip }]);
    expect(raw.messages('cutover.control')).toHaveLength(1);
    await expect(signedBus(raw, { signer: { ...signer('inventory'), agent: 'pricing' }, acl: pricingAcl }).publish('cutover.control', [message('pricing')])).rejects.toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED });
  });

  it('the SDK takes the same rules', async () => {
    const raw = new MemoryBus();
    const agents = new AgentBus({ bus: raw, agent: 'inventory', signer: signer('inventory'), acl: acl() });
    await expect(agents.publish('commands.agent.inventory.reserve', { n: 1 })).rejects.toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED });
    await agents.publish('events.inventory.reserved', { n: 1 });
    await agents.close();
    expect(raw.messages('events.inventory.reserved')).toHaveLength(1);
  });
});
