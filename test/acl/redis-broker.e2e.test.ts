import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { redisPasswordVariable } from '../../src/acl/redis.js';
import { openBus } from '../../src/bus/index.js';
import type { Bus, Delivery } from '../../src/bus/types.js';
import { aclSchema } from '../../src/config/acl.js';
import { TopicAcl } from '../../src/acl/rules.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { ErrorCodes } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { startRedis } from '../faults/helpers/brokers.js';
import { brokerCase } from './broker-case.js';

/**
 * Topic authorization enforced by Redis ACL users: a redis-server of the test's own (the shared one must
 * never get ACL users), users created by `cutover acl --apply`, then each agent on its own credentials
 * through the cutover Redis adapter: it may use the streams of its topics and gets NOPERM on the others'.
 */
const { id, topics, acl, message, ownTopicsOnly } = brokerCase({ operators: ['ops'] });
const prefix = `cutover-acl-${id}:`;
const passwords = { inventory: `inv-${randomUUID()}`, checkout: `chk-${randomUUID()}`, ops: `ops-${randomUUID()}` };

/** Every record of `topic` up to now, read without a group. */
async function readAll(bus: Bus, topic: string): Promise<Delivery[]> {
  const stream = bus.read(topic, { from: 'start', follow: false });
  const out: Delivery[] = [];
  for await (const d of stream) out.push(d);
  await stream.close();
  return out;
}

describe('Redis ACL users from cutover acl --apply, enforced by Redis', () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let dir: string;
  const buses: Bus[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    dir = await mkdtemp(path.join(tmpdir(), 'cutover-acl-redis-'));
  });
  afterAll(async () => {
    for (const bus of buses) await bus.close().catch(() => undefined);
    await redis?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const busOf = async (user: keyof typeof passwords): Promise<Bus> => {
    const bus = await openBus({ kind: 'redis', url: `redis://${user}:${passwords[user]}@127.0.0.1:${redis.port}`, prefix, blockTime: '100ms', publishTimeout: '3s' }, { logger: silentLogger() });
    buses.push(bus);
    return bus;
  };
  it('applies one user per agent; each may use its own topics and gets NOPERM on the others', async () => {
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, JSON.stringify({ agent: 'ops', admin: { listen: '127.0.0.1:15001', auth: false }, bus: { kind: 'redis', url: redis.url, prefix }, acl }));
    const env = Object.fromEntries(Object.entries(passwords).map(([user, pw]) => [redisPasswordVariable(user), pw]));
    const out: string[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void out.push(s) };
    // Without the passwords in the environment nothing is applied.
    expect(await runCli(['acl', '--config', file, '--apply'], io, { env: {}, logger: silentLogger() })).toBe(2);
    expect(out.join('\n')).toContain(`${redisPasswordVariable('checkout')}, ${redisPasswordVariable('inventory')}, ${redisPasswordVariable('ops')} not set`);
    out.length = 0;
    expect(await runCli(['acl', '--config', file, '--apply'], io, { env, logger: silentLogger() })).toBe(0);
    expect(out.join('\n')).toContain('applied ACL SETUSER for 3 users: checkout, inventory, ops');

    const inventory = await busOf('inventory');
    const checkout = await busOf('checkout');
    await ownTopicsOnly(inventory, checkout, 'NOPERM');
    // The flip log: ops, an operator, writes it and inventory reads it.
    const ops = await busOf('ops');
    await ops.publish('cutover.control', [message('ops')]);
    expect(await readAll(inventory, 'cutover.control')).toHaveLength(1);
    // Parity records (written here by the server's default user, as a shadow would): read-only to an agent (%R~).
    const admin = await openBus({ kind: 'redis', url: redis.url, prefix, requireNoEviction: false }, { logger: silentLogger() });
    buses.push(admin);
    await admin.publish('cutover.parity', [message('cutover-shadow')]);
    expect(await readAll(inventory, 'cutover.parity')).toHaveLength(1);
    await expect(inventory.publish('cutover.parity', [message('inventory')])).rejects.toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    // A topic checkout neither publishes nor consumes: NOPERM.
    await expect(checkout.publish(`events.pricing.changed-${id}`, [message('checkout')])).rejects.toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    // The limit Redis has (docs/security.md): consuming in a group writes to the stream, so a topic an
    // agent consumes is writable to it. Only cutover's own check refuses checkout writing inventory's facts.
    await checkout.publish(`events.inventory.other-${id}`, [message('checkout')]);
    const guarded = signedBus(checkout, { acl: new TopicAcl(aclSchema.parse(acl)), agent: 'checkout' });
    await expect(guarded.publish(`events.inventory.other-${id}`, [message('checkout')])).rejects.toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED });
  });
});
