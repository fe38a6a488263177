import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { TopicAcl } from '../../src/acl/rules.js';
import { createBus } from '../../src/bus/index.js';
import { DlqHeaders, type Bus, type BusMessage, type Delivery } from '../../src/bus/types.js';
import { aclSchema } from '../../src/config/acl.js';
import { trustSchema } from '../../src/config/identity.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { loadSigner, loadTrust, signEvent } from '../../src/events/signature.js';
import { ErrorCodes } from '../../src/errors.js';
import { AgentBus } from '../../src/sdk/agent-bus.js';
import { busTargets } from '../helpers/bus-targets.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * An SDK agent with `trust` and `acl` on real brokers: of five events on its topic only the one a trusted
 * agent signed on a topic it may publish reaches the handler; an unsigned one, one changed after signing,
 * one signed by an unknown key and one a trusted agent signed outside its grant are dead-lettered, each with
 * its reason. Topics and groups are unique per run.
 */

function pem() {
  return generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
}

for (const target of busTargets('sdk-identity').filter((t) => t.kind !== 'embedded')) {
  (target.skip ? describe.skip : describe)(`SDK agent with trust and acl on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    it('hands the handler only the signed, granted event; the forged ones are dead-lettered with their reasons', async () => {
      const id = randomUUID().slice(0, 8);
      const env = await target.setup(id);
      const topic = `commands.agent.inventory.reserve-${id}`;
      cleanups.push(() => env.cleanup([topic]));
      const keys = { checkout: pem(), pricing: pem(), mallory: pem() };
      const keyIds = { checkout: 'chk-1', pricing: 'prc-1', mallory: 'chk-1' };
      const trust = loadTrust(
        trustSchema.parse({
          agents: {
            checkout: [{ keyId: 'chk-1', publicKey: keys.checkout.publicKey }],
            pricing: [{ keyId: 'prc-1', publicKey: keys.pricing.publicKey }],
          },
        }),
      );
      const acl = new TopicAcl(
        aclSchema.parse({
          agents: {
            inventory: { consume: ['commands.agent.inventory.#'] },
            checkout: { publish: ['commands.agent.inventory.#'] },
            pricing: { publish: ['commands.agent.pricing.#'] },
          },
        }),
      );
      const raw: Bus = await createBus(env.config);
      await raw.start();
      cleanups.push(() => raw.close());
      const dead: Delivery[] = [];
      await raw.subscribe({ group: `test.dlq.${id}`, topics: [`${topic}.dlq`], from: 'start', handler: async (d) => void dead.push(d) });

      const handled: unknown[] = [];
      const inventory = new AgentBus({ bus: raw, agent: 'inventory', trust, acl });
      cleanups.push(() => inventory.close());
      await inventory.subscribe(topic, async (ctx) => void handled.push(ctx.data), { group: `inventory.${id}`, from: 'start' });

      const event = (agent: string, data: unknown) => buildEvent({ source: `/agents/${agent}`, type: topic, data });
      const signed = (agent: 'checkout' | 'pricing' | 'mallory', data: unknown): BusMessage => ({
        key: 'k',
        event: signEvent(event(agent, data), topic, loadSigner({ keyId: keyIds[agent], privateKey: keys[agent].privateKey }, agent)),
        headers: {},
      });
      const tampered = signed('checkout', { qty: 1 });
      tampered.event = { ...tampered.event, data: { qty: 999 } };
      await raw.publish(topic, [
        { key: 'k', event: event('checkout', { forged: 'unsigned' }), headers: {} },
        tampered,
        signed('mallory', { forged: 'unknown key' }),
        signed('pricing', { forged: 'outside its grant' }),
        signed('checkout', { qty: 2 }),
      ]);

      await waitFor(() => handled.length === 1 && dead.length === 4, { timeoutMs: 30_000, what: 'one handled event and four dead letters' }).catch((err: Error) => {
        throw new Error(`${err.message}; handled ${JSON.stringify(handled)}, dead letters ${JSON.stringify(dead.map((d) => d.headers[DlqHeaders.errorCode]))}`);
      });
      expect(handled).toEqual([{ qty: 2 }]);
      expect(dead.map((d) => d.headers[DlqHeaders.errorCode]).sort()).toEqual(
        [ErrorCodes.AUTH_BAD_SIGNATURE, ErrorCodes.AUTH_TOPIC_DENIED, ErrorCodes.AUTH_UNKNOWN_AGENT, ErrorCodes.AUTH_UNSIGNED].sort(),
      );
      // A later event of the same key is handled only after everything before it: once it is in, a retry
      // of a rejected event would have shown up.
      await raw.publish(topic, [signed('checkout', { qty: 3 })]);
      await waitFor(() => handled.length >= 2, { timeoutMs: 30_000, what: 'the trailing event' });
      expect(handled).toEqual([{ qty: 2 }, { qty: 3 }]);
    });
  });
}
