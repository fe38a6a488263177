import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { createBus, type BusConfigInput } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { DlqHeaders, type Delivery } from '../../src/bus/types.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { trustSchema } from '../../src/config/identity.js';
import { flowCompareSchema, flowShadowSchema, shadowConfigSchema } from '../../src/config/shadow.js';
import { loadSigner, loadTrust } from '../../src/events/signature.js';
import { CallHeaders, OBSERVATIONS_TOPIC, ObservationTypes } from '../../src/events/wire.js';
import { createRegistry } from '../../src/metrics.js';
import { deleteRedisPrefix } from '../../src/bus/redis/maintenance.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { redisUrl } from '../helpers/brokers.js';
import { request } from '../helpers/http.js';
import { collectParity } from '../helpers/parity.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Agent identity on real Redis: a sidecar with a signing key publishes call events and direct
 * observations; the shadow side trusts its public key, so the signed calls are replayed and paired, while
 * events an attacker adds with a plain bus publish are dead-lettered and never reach the shadow agent.
 */

const redis = redisUrl();

function pem() {
  return generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
}

(redis ? describe : describe.skip)('signed events on redis: sidecar with identity -> shadow side with trust', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it('replays and pairs the signed calls; dead-letters forged call events and observations', async () => {
    const prefix = `cutover-identity-${randomUUID().slice(0, 8)}:`;
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-identity-'));
    cleanups.push(async () => {
      await deleteRedisPrefix(redis!, prefix);
      await rm(dir, { recursive: true, force: true });
    });
    const busConfig: BusConfigInput = { kind: 'redis', url: redis!, prefix, blockTime: '200ms' };
    const inventoryKey = pem();
    const shadowKey = pem();
    const direct = await startInventory();
    const shadowAgent = await startInventory();
    cleanups.push(() => direct.close(), () => shadowAgent.close());
    const flow = { name: 'inventory.reserve', match: { method: 'POST' as const, path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow' as const };
    const sidecar = await startSidecar(
      {
        agent: 'inventory',
        listen: '127.0.0.1:0',
        upstream: direct.url,
        admin: { listen: '127.0.0.1:0', auth: false },
        bus: busConfig,
        dataDir: dir,
        flows: [flow],
        identity: { keyId: 'inv-1', privateKey: inventoryKey.privateKey },
      },
      { registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());

    const raw = await createBus(busConfig);
    await raw.start();
    cleanups.push(() => raw.close());
    const registry = createRegistry();
    const trust = loadTrust(trustSchema.parse({ agents: { inventory: [{ keyId: 'inv-1', publicKey: inventoryKey.publicKey }], 'cutover-shadow': [{ keyId: 'sh-1', publicKey: shadowKey.publicKey }] } }));
    const shadowBus = signedBus(raw, { signer: loadSigner({ agent: 'cutover-shadow', keyId: 'sh-1', privateKey: shadowKey.privateKey }, 'inventory'), trust, registry });
    const records = await collectParity(raw);
    const runtime = new ShadowRuntime({
      bus: shadowBus,
      busConfig: busConfigSchema.parse(busConfig),
      dataDir: dir,
      registry,
      flows: [{ ...flow, shadow: flowShadowSchema.parse({ target: shadowAgent.url }), compare: flowCompareSchema.parse({ ignore: ['/body/reservationId'], headers: ['content-type'] }) }],
      shadow: shadowConfigSchema.parse({ window: '20s' }),
    });
    await runtime.start();
    cleanups.push(() => runtime.close());
    const dead: Delivery[] = [];
    await raw.subscribe({ group: 'test.dlq', topics: [`${flow.topic}.dlq`, `${OBSERVATIONS_TOPIC}.dlq`], handler: async (d) => void dead.push(d) });

    for (let i = 0; i < 3; i++) {
      const body = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: `c-${i}` });
      expect((await request(sidecar.data.url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json' }, body })).status).toBe(201);
    }
    // The attacker: plain publishes, a call event as inventory and a direct observation for it.
    const forgedId = randomUUID();
    await raw.publish(flow.topic, [
      {
        key: 'SKU-RED-MUG',
        event: { specversion: '1.0', id: forgedId, source: '/agents/inventory', type: flow.name, time: new Date().toISOString(), correlationid: forgedId, replyto: OBSERVATIONS_TOPIC, cutoverflow: flow.name, cutovermode: 'shadow', schemaversion: '1', data: { body: { sku: 'SKU-RED-MUG', qty: 999 }, params: {}, query: {} } },
        headers: { [CallHeaders.method]: 'POST', [CallHeaders.target]: '/reservations', [CallHeaders.headers]: '{"content-type":"application/json"}' },
      },
    ]);
    await raw.publish(OBSERVATIONS_TOPIC, [
      { key: forgedId, event: { specversion: '1.0', id: randomUUID(), source: '/agents/inventory', type: ObservationTypes.direct, correlationid: forgedId, cutoverflow: flow.name, cutovermode: 'shadow', schemaversion: '1', data: { status: 201 } } },
    ]);

    await waitFor(() => records.length >= 3 && dead.length >= 2, { timeoutMs: 30_000, what: 'three parity records and two dead letters' });
    expect(records.map((r) => r.outcome)).toEqual(['match', 'match', 'match']);
    expect(shadowAgent.served.get('POST /reservations')).toBe(3);
    expect(dead.map((d) => [d.headers[DlqHeaders.originalTopic], d.headers[DlqHeaders.errorCode]]).sort()).toEqual([
      [flow.topic, 'CUTOVER_AUTH_UNSIGNED'],
      [OBSERVATIONS_TOPIC, 'CUTOVER_AUTH_UNSIGNED'],
    ]);
    expect(await registry.getSingleMetricAsString('cutover_events_rejected_total')).toMatch(/reason="CUTOVER_AUTH_UNSIGNED"} 1/);
  });
});
