import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { TopicAcl } from '../../src/acl/rules.js';
import { openBus, type BusConfigInput } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import type { Bus } from '../../src/bus/types.js';
import { aclSchema } from '../../src/config/acl.js';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { saslKafkaUnavailable, startSaslKafka, type SaslKafka } from '../helpers/kafka-sasl.js';
import { brokerCase } from './broker-case.js';

/**
 * Topic authorization enforced by Kafka itself: a broker with SCRAM users and the standard authorizer,
 * rules created by `cutover acl --apply`, then each agent on its own credentials through the cutover Kafka
 * adapter. The broker refuses what the rules leave out, and cutover's own check refuses it before the
 * broker sees it.
 */
const unavailable = saslKafkaUnavailable();
const { id, topics, acl, message, ownTopicsOnly } = brokerCase();

(unavailable ? describe.skip : describe)(unavailable ? `Kafka ACLs (skipped: ${unavailable})` : 'Kafka ACLs from cutover acl --apply, enforced by a SASL/SCRAM broker', () => {
  let kafka: SaslKafka;
  let dir: string;
  const buses: Bus[] = [];

  beforeAll(async () => {
    kafka = await startSaslKafka({ inventory: `inv-${id}`, checkout: `chk-${id}` });
    dir = await mkdtemp(path.join(tmpdir(), 'cutover-acl-kafka-'));
  });
  afterAll(async () => {
    for (const bus of buses) await bus.close().catch(() => undefined);
    await kafka?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const busOf = async (user: string, producer: 'kafkajs' | 'platformatic' = 'kafkajs'): Promise<Bus> => {
    const config: BusConfigInput = { kind: 'kafka', brokers: kafka.brokers, sasl: kafka.sasl(user), publishTimeout: '5s', sessionTimeout: '6s', client: { producer } };
    const bus = await openBus(config, { logger: silentLogger() });
    buses.push(bus);
    return bus;
  };
  it('applies the rules; each agent may publish and consume its own topics; the broker refuses the rest', async () => {
    const file = path.join(dir, 'cutover.yaml');
    const config = { agent: 'ops', admin: { listen: '127.0.0.1:15001', auth: false }, bus: { kind: 'kafka', brokers: kafka.brokers, sasl: kafka.sasl('admin') }, acl };
    await writeFile(file, JSON.stringify(config));
    const out: string[] = [];
    const code = await runCli(['acl', '--config', file, '--apply'], { out: (s) => void out.push(s), err: (s) => void out.push(s) }, { logger: silentLogger() });
    expect(out.join('\n')).toMatch(/applied \d+ ACL entries .* for 2 principals/);
    expect(code).toBe(0);

    const inventory = await busOf('inventory');
    const checkout = await busOf('checkout');
    // Its own fact (Create + Write on the prefix events.inventory.), not checkout's; its command (topic and group Read).
    await ownTopicsOnly(inventory, checkout, 'TOPIC_AUTHORIZATION_FAILED');
    // With the same rules in cutover, the publish is refused before the broker is asked.
    const guarded = signedBus(inventory, { acl: new TopicAcl(aclSchema.parse(acl)), agent: 'inventory' });
    await expect(guarded.publish(topics.checkoutFact, [message('inventory')])).rejects.toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED });

    // The flip log: every agent reads it (topic Read, and Read + Delete on its throwaway reader group).
    const flips = inventory.read('cutover.control', { from: 'start', follow: false });
    for await (const _ of flips) break;
    await flips.close();
    // checkout may not write inventory's facts, and inventory may not send itself commands.
    await expect(checkout.publish(`events.inventory.other-${id}`, [message('checkout')])).rejects.toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    await expect(inventory.publish(topics.command, [message('inventory')])).rejects.toMatchObject({ code: ErrorCodes.BUS_REJECTED });

    // The @platformatic/kafka producer on the same SCRAM credentials: what the rules allow is written, and the
    // broker's refusal of a write to an existing topic comes back at once as a final CUTOVER_BUS_REJECTED.
    const inventoryPk = await busOf('inventory', 'platformatic');
    const checkoutPk = await busOf('checkout', 'platformatic');
    await inventoryPk.publish(topics.inventoryFact, [message('inventory')]);
    await checkoutPk.publish(topics.command, [message('checkout')]);
    // Resent until publishTimeout, it would end as CUTOVER_BUS_TIMEOUT instead.
    const refused = await inventoryPk.publish(topics.command, [message('inventory')]).then(() => undefined, (err: unknown) => err);
    expect(refused).toMatchObject({ code: ErrorCodes.BUS_REJECTED, retriable: false });
    expect(String((refused as Error).message)).toContain('TOPIC_AUTHORIZATION_FAILED');
  });
});
