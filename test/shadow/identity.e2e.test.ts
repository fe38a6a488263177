import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { TopicAcl } from '../../src/acl/rules.js';
import { createBus } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { DlqHeaders, type Bus, type BusMessage, type Delivery } from '../../src/bus/types.js';
import { aclSchema, type AclConfigInput } from '../../src/config/acl.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { trustSchema } from '../../src/config/identity.js';
import { flowCompareSchema, flowShadowSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { loadSigner, loadTrust, signEvent } from '../../src/events/signature.js';
import { CallHeaders, ObservationTypes, observationsTopicOf } from '../../src/events/wire.js';
import { createRegistry } from '../../src/metrics.js';
import type { ParityRecord } from '../../src/parity/types.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { busTargets, type BusTargetEnv } from '../helpers/bus-targets.js';
import { request } from '../helpers/http.js';
import { collectParity } from '../helpers/parity.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Agent identity and topic authorization on real Redis, Kafka and RabbitMQ: a sidecar with a signing key
 * publishes call events and direct observations; the shadow side trusts its public key, so the signed calls
 * are replayed and paired, while events an attacker adds with a plain bus publish (unsigned, altered after
 * signing, signed by a key nobody trusts), and correctly signed events
 * of a trusted agent on a topic `acl:` does not let it publish on, are dead-lettered and never reach the
 * shadow agent. Topics, groups and prefixes are unique per run: the Kafka broker is shared.
 */

function pem() {
  return generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
}

const targets = busTargets('identity').filter((t) => t.kind !== 'embedded');

for (const target of targets) {
  (target.skip ? describe.skip : describe)(`signed events on ${target.kind}: sidecar with identity -> shadow side with trust and acl${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    interface Run {
      raw: Bus;
      flow: { name: string; match: { method: 'POST'; path: string }; topic: string; key: string; mode: 'shadow' };
      observations: string;
      sidecarUrl: string;
      shadowAgent: Awaited<ReturnType<typeof startInventory>>;
      records: ParityRecord[];
      dead: Delivery[];
      registry: ReturnType<typeof createRegistry>;
      checkoutKey: ReturnType<typeof pem>;
    }

    /** The sidecar of inventory, the shadow side (trusting inventory, checkout and itself), a parity and a DLQ reader. */
    async function setup(): Promise<Run> {
      const id = randomUUID().slice(0, 8);
      const env: BusTargetEnv = await target.setup(id);
      const flow = { name: `inventory.reserve-${id}`, match: { method: 'POST' as const, path: '/reservations' }, topic: `commands.agent.inventory.reserve-${id}`, key: 'body.sku', mode: 'shadow' as const };
      const observations = `cutover.observations.t${id}`;
      const parityTopic = `cutover.parity.t${id}`;
      cleanups.push(() => env.cleanup([flow.topic, observations, parityTopic]));
      const acl: AclConfigInput = {
        agents: { inventory: { publish: ['commands.agent.inventory.#'] }, checkout: { publish: ['commands.agent.pricing.#'] } },
        shadow: ['cutover-shadow'],
      };
      const inventoryKey = pem();
      const checkoutKey = pem();
      const shadowKey = pem();
      const direct = await startInventory();
      const shadowAgent = await startInventory();
      cleanups.push(() => direct.close(), () => shadowAgent.close());
      const sidecar = await startSidecar(
        {
          agent: 'inventory',
          listen: '127.0.0.1:0',
          upstream: direct.url,
          admin: { listen: '127.0.0.1:0', auth: false },
          bus: env.config,
          dataDir: env.dataDir,
          observationsTopic: observations,
          flows: [flow],
          identity: { keyId: 'inv-1', privateKey: inventoryKey.privateKey },
          acl,
        },
        { registry: createRegistry() },
      );
      cleanups.push(() => sidecar.close());

      const raw = await createBus(env.config);
      await raw.start();
      cleanups.push(() => raw.close());
      const registry = createRegistry();
      const trust = loadTrust(
        trustSchema.parse({
          agents: {
            inventory: [{ keyId: 'inv-1', publicKey: inventoryKey.publicKey }],
            checkout: [{ keyId: 'chk-1', publicKey: checkoutKey.publicKey }],
            'cutover-shadow': [{ keyId: 'sh-1', publicKey: shadowKey.publicKey }],
          },
        }),
      );
      const shadowBus = signedBus(raw, {
        signer: loadSigner({ agent: 'cutover-shadow', keyId: 'sh-1', privateKey: shadowKey.privateKey }, 'inventory'),
        trust,
        acl: new TopicAcl(aclSchema.parse(acl), { observations, parity: parityTopic }),
        registry,
      });
      const records = await collectParity(raw, { group: `test.parity.${id}`, topic: parityTopic });
      const runtime = new ShadowRuntime({
        bus: shadowBus,
        busConfig: busConfigSchema.parse(env.config),
        dataDir: env.dataDir,
        registry,
        flows: [{ ...flow, shadow: flowShadowSchema.parse({ target: shadowAgent.url }), compare: flowCompareSchema.parse({ ignore: ['/body/reservationId'], headers: ['content-type'] }) }],
        shadow: shadowConfigSchema.parse({ window: '20s' }),
        observationsTopic: observations,
        parityTopic,
        comparatorGroup: `cutover.comparator.t${id}`,
      });
      await runtime.start();
      cleanups.push(() => runtime.close());
      const dead: Delivery[] = [];
      await raw.subscribe({ group: `test.dlq.${id}`, topics: [`${flow.topic}.dlq`, `${observationsTopicOf(flow.name, observations)}.dlq`], from: 'start', handler: async (d) => void dead.push(d) });
      return { raw, flow, observations, sidecarUrl: sidecar.data.url, shadowAgent, records, dead, registry, checkoutKey };
    }

    async function realCalls(run: Run, n: number): Promise<void> {
      for (let i = 0; i < n; i++) {
        const body = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: `c-${i}` });
        expect((await request(run.sidecarUrl, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body })).status).toBe(201);
      }
    }

    /** A call event of the flow as `source` would publish it (qty 999: a replay would be visible at the agent). */
    function callEvent(run: Run, source: string): BusMessage {
      const id = randomUUID();
      return {
        key: 'SKU-RED-MUG',
        event: { specversion: '1.0', id, source, type: run.flow.name, time: new Date().toISOString(), correlationid: id, replyto: observationsTopicOf(run.flow.name, run.observations), cutoverflow: run.flow.name, cutovermode: 'shadow', schemaversion: '1', data: { body: { sku: 'SKU-RED-MUG', qty: 999 }, params: {}, query: {} } },
        headers: { [CallHeaders.method]: 'POST', [CallHeaders.target]: '/reservations', [CallHeaders.headers]: '{"content-type":"application/json"}' },
      };
    }

    const deadLetters = (run: Run): string[][] => run.dead.map((d) => [d.headers[DlqHeaders.originalTopic]!, d.headers[DlqHeaders.errorCode]!]).sort();

    it('replays and pairs the signed calls; dead-letters forged call events and observations', async () => {
      const run = await setup();
      await realCalls(run, 3);
      // The attacker: plain publishes, a call event as inventory and a direct observation for it.
      const forged = callEvent(run, '/agents/inventory');
      // A real signature over other content (the qty changed after signing), and a key nobody trusts.
      const signedByCheckout = signEvent(callEvent(run, '/agents/checkout').event, run.flow.topic, loadSigner({ keyId: 'chk-1', privateKey: run.checkoutKey.privateKey }, 'checkout'));
      const tampered = { ...callEvent(run, '/agents/checkout'), event: { ...signedByCheckout, data: { body: { sku: 'SKU-RED-MUG', qty: 998 }, params: {}, query: {} } } };
      const stranger = callEvent(run, '/agents/mallory');
      stranger.event = signEvent(stranger.event, run.flow.topic, loadSigner({ keyId: 'm-1', privateKey: pem().privateKey }, 'mallory'));
      await run.raw.publish(run.flow.topic, [forged, tampered, stranger]);
      await run.raw.publish(observationsTopicOf(run.flow.name, run.observations), [
        { key: forged.event.id, event: { specversion: '1.0', id: randomUUID(), source: '/agents/inventory', type: ObservationTypes.direct, correlationid: forged.event.id, cutoverflow: run.flow.name, cutovermode: 'shadow', schemaversion: '1', data: { status: 201 } } },
      ]);

      await waitFor(() => run.records.length >= 3 && run.dead.length >= 4, { timeoutMs: 45_000, what: 'three parity records and four dead letters' });
      expect(run.records.map((r) => r.outcome)).toEqual(['match', 'match', 'match']);
      expect(run.shadowAgent.served.get('POST /reservations')).toBe(3);
      expect(deadLetters(run)).toEqual([
        [run.flow.topic, 'CUTOVER_AUTH_BAD_SIGNATURE'],
        [run.flow.topic, 'CUTOVER_AUTH_UNKNOWN_AGENT'],
        [run.flow.topic, 'CUTOVER_AUTH_UNSIGNED'],
        [observationsTopicOf(run.flow.name, run.observations), 'CUTOVER_AUTH_UNSIGNED'],
      ]);
      expect(await run.registry.getSingleMetricAsString('cutover_events_rejected_total')).toMatch(/reason="CUTOVER_AUTH_UNSIGNED"} 1/);
    });

    it('agent outside its grant: a correctly signed call from a trusted agent on a topic it may not publish is dead-lettered, never replayed, and the verdict is unaffected', async () => {
      const run = await setup();
      // checkout is trusted (its key is listed) but acl: lets it publish on commands.agent.pricing.# only.
      const checkout = signedBus(run.raw, { signer: loadSigner({ keyId: 'chk-1', privateKey: run.checkoutKey.privateKey }, 'checkout') });
      await realCalls(run, 2);
      await checkout.publish(run.flow.topic, [callEvent(run, '/agents/checkout')]);
      await realCalls(run, 1);

      await waitFor(() => run.records.length >= 3 && run.dead.length >= 1, { timeoutMs: 45_000, what: 'three parity records and one dead letter' });
      expect(deadLetters(run)).toEqual([[run.flow.topic, 'CUTOVER_AUTH_TOPIC_DENIED']]);
      expect(run.dead[0]!.event.source).toBe('/agents/checkout');
      expect(run.dead[0]!.headers[DlqHeaders.errorMessage]).toContain('"checkout" may not publish on this topic');
      expect(run.shadowAgent.served.get('POST /reservations')).toBe(3);
      expect(run.records.map((r) => r.outcome)).toEqual(['match', 'match', 'match']);
      expect(await run.registry.getSingleMetricAsString('cutover_events_rejected_total')).toMatch(/reason="CUTOVER_AUTH_TOPIC_DENIED"} 1/);
    });
  });
}
