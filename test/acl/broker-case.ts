import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { Bus, BusMessage, Delivery } from '../../src/bus/types.js';
import type { AclConfigInput } from '../../src/config/acl.js';
import { ErrorCodes } from '../../src/errors.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { waitFor } from '../helpers/wait-for.js';

/** What the broker-enforced tests share: unique topics, the rules of two agents, and the checks both brokers must pass. */
export function brokerCase(extra: Partial<AclConfigInput> = {}) {
  const id = randomUUID().slice(0, 8);
  const topics = {
    inventoryFact: `events.inventory.reserved-${id}`,
    checkoutFact: `events.checkout.paid-${id}`,
    command: `commands.agent.inventory.reserve-${id}`,
  };
  const acl: AclConfigInput = {
    agents: {
      inventory: { publish: ['events.inventory.#'], consume: ['commands.agent.inventory.#'] },
      checkout: { publish: ['commands.agent.inventory.*', 'events.checkout.#'], consume: ['events.inventory.#'] },
    },
    // commands.agent.inventory.* has a wildcard level brokers cannot express: it is granted for the topics named here.
    topics: [topics.command],
    ...extra,
  };
  const message = (source: string): BusMessage => ({ key: 'k', event: buildEvent({ source: `/agents/${source}`, type: 'test', data: { n: 1 } }) });

  /**
   * inventory publishes its own fact, is refused (by the broker, `refusal` in the message) on checkout's,
   * and consumes in its group the command checkout sends.
   */
  async function ownTopicsOnly(inventory: Bus, checkout: Bus, refusal: string): Promise<void> {
    await inventory.publish(topics.inventoryFact, [message('inventory')]);
    const refused = await inventory.publish(topics.checkoutFact, [message('inventory')]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    expect(String((refused as Error).message)).toContain(refusal);
    const seen: Delivery[] = [];
    await inventory.subscribe({ group: 'agent.inventory', topics: [topics.command], from: 'start', handler: async (d) => void seen.push(d) });
    await checkout.publish(topics.command, [message('checkout')]);
    await waitFor(() => seen.length === 1, { timeoutMs: 30_000, what: 'inventory consumes the command' });
  }

  return { id, topics, acl, message, ownTopicsOnly };
}
