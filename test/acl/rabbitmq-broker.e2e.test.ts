import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { TopicAcl } from '../../src/acl/rules.js';
import { openBus } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import type { Bus, Delivery } from '../../src/bus/types.js';
import { aclSchema, type AclConfigInput } from '../../src/config/acl.js';
import { ErrorCodes } from '../../src/errors.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { silentLogger } from '../../src/logger.js';
import { rabbitmqUrl } from '../helpers/brokers.js';
import { deleteRabbitPrefix } from '../helpers/rabbitmq.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Topic authorization enforced by RabbitMQ: two users of the test's own (unique names, deleted afterwards),
 * permissions set by `cutover acl --apply`, then each agent on its own credentials through the cutover
 * RabbitMQ adapter, under a prefix of the test's own.
 */
const run = promisify(execFile);
const adminUrl = rabbitmqUrl();
const rabbitmqctl = await run('rabbitmqctl', ['-q', 'status'], { timeout: 30_000 }).then(
  () => true,
  () => false,
);
const skip = !adminUrl ? 'RabbitMQ unavailable, see the line printed at start' : !rabbitmqctl ? 'rabbitmqctl cannot run here (it must reach the broker node to add users and permissions)' : undefined;

const id = randomUUID().slice(0, 8);
const prefix = `cutover-acl-${id}`;
const inv = `cutover-test-${id}-inventory`;
const chk = `cutover-test-${id}-checkout`;
const passwords: Record<string, string> = { [inv]: randomUUID(), [chk]: randomUUID() };
const topics = { inventoryFact: `events.inventory.reserved-${id}`, checkoutFact: `events.checkout.paid-${id}`, command: `commands.agent.inventory.reserve-${id}` };
const acl: AclConfigInput = {
  agents: {
    [inv]: { publish: ['events.inventory.#'], consume: ['commands.agent.inventory.#'] },
    [chk]: { publish: ['commands.agent.inventory.*', 'events.checkout.#'], consume: ['events.inventory.#'] },
  },
  topics: [topics.command],
};
const message = (source: string) => ({ key: 'k', event: buildEvent({ source: `/agents/${source}`, type: 'test', data: { n: 1 } }) });
const refusal = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  );

(skip ? describe.skip : describe)(`RabbitMQ permissions from cutover acl --apply, enforced by RabbitMQ${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  const buses: Bus[] = [];
  const users: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cutover-acl-rabbitmq-'));
  });
  afterAll(async () => {
    for (const bus of buses) await bus.close().catch(() => undefined);
    for (const user of users) await run('rabbitmqctl', ['-q', 'delete_user', user], { timeout: 30_000 }).catch(() => undefined);
    await deleteRabbitPrefix(adminUrl!, `${prefix}.`);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const busOf = async (user: string): Promise<Bus> => {
    const u = new URL(adminUrl!);
    const bus = await openBus({ kind: 'rabbitmq', url: `amqp://${user}:${passwords[user]}@${u.host}/`, prefix, publishTimeout: '5s' }, { logger: silentLogger() });
    buses.push(bus);
    return bus;
  };
  async function readAll(bus: Bus, topic: string): Promise<Delivery[]> {
    const out: Delivery[] = [];
    for await (const d of bus.read(topic, { from: 'start', follow: false })) out.push(d);
    return out;
  }

  it('sets each agent its permissions; each may use its own topics and the broker refuses the others', async () => {
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, JSON.stringify({ agent: inv, admin: { listen: '127.0.0.1:15001', auth: false }, bus: { kind: 'rabbitmq', url: adminUrl, prefix }, acl }));
    const out: string[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void out.push(s) };
    // Users that do not exist: --apply never creates them (they are the operator's).
    expect(await runCli(['acl', '--config', file, '--apply'], io, { env: {}, logger: silentLogger() })).toBe(1);
    expect(out.join('\n')).toContain(`CUTOVER_BUS_REJECTED: rabbitmqctl set_permissions for user ${chk} in vhost /: user ${chk} does not exist`);
    for (const user of [inv, chk]) {
      await run('rabbitmqctl', ['-q', 'add_user', user, passwords[user]!], { timeout: 30_000 });
      users.push(user);
    }
    // A vhost that does not exist is not created either.
    out.length = 0;
    const elsewhere = path.join(dir, 'elsewhere.yaml');
    const noVhost = new URL(adminUrl!);
    noVhost.pathname = `/no-such-vhost-${id}`;
    await writeFile(elsewhere, JSON.stringify({ agent: inv, admin: { listen: '127.0.0.1:15001', auth: false }, bus: { kind: 'rabbitmq', url: noVhost.toString(), prefix }, acl }));
    expect(await runCli(['acl', '--config', elsewhere, '--apply'], io, { env: {}, logger: silentLogger() })).toBe(1);
    expect(out.join('\n')).toContain(`CUTOVER_BUS_REJECTED: rabbitmqctl set_permissions for user ${chk} in vhost no-such-vhost-${id}: vhost no-such-vhost-${id} (from bus.url) does not exist`);
    out.length = 0;
    expect(await runCli(['acl', '--config', file, '--apply'], io, { env: {}, logger: silentLogger() })).toBe(0);
    expect(out).toEqual([`applied permissions and topic permissions for 2 users: ${chk}, ${inv}`]);

    const inventory = await busOf(inv);
    const checkout = await busOf(chk);
    // Own topics: publish, and consume in its own group what the other publishes to it.
    await inventory.publish(topics.inventoryFact, [message(inv)]);
    const commands: Delivery[] = [];
    await inventory.subscribe({ group: `agent.${inv}`, topics: [topics.command], from: 'start', handler: async (d) => void commands.push(d) });
    await checkout.publish(topics.command, [message(chk)]);
    await waitFor(() => commands.length === 1, { timeoutMs: 30_000, what: 'inventory consumes the command' });
    const facts: Delivery[] = [];
    await checkout.subscribe({ group: `agent.${chk}`, topics: ['events.inventory.#'], from: 'start', handler: async (d) => void facts.push(d) });
    await inventory.publish(topics.inventoryFact, [message(inv)]);
    // A new group from the start gets the history too (the fact published first), under these permissions.
    await waitFor(() => facts.length === 2, { timeoutMs: 30_000, what: 'checkout consumes both inventory facts' });

    // Another agent's topic: ACCESS_REFUSED (403) from the broker, CUTOVER_BUS_REJECTED from the adapter.
    const refused = await refusal(inventory.publish(topics.checkoutFact, [message(inv)]));
    expect(refused).toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    expect(String((refused as Error).message)).toContain('ACCESS_REFUSED');
    // Unlike Redis, consuming a topic does not make it writable: checkout consumes inventory's facts.
    expect(await refusal(checkout.publish(`events.inventory.other-${id}`, [message(chk)]))).toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    // Consuming a topic it does not consume (even in a group of its own), or reading the log of a topic it
    // only publishes. The log of a topic it consumes is readable: a new group's history comes from it.
    expect(await refusal(checkout.subscribe({ group: `agent.${chk}.sneak`, topics: ['commands.agent.inventory.#'], from: 'start', handler: async () => undefined }))).toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    expect(await refusal(readAll(checkout, topics.command))).toMatchObject({ code: ErrorCodes.BUS_REJECTED });
    expect(await readAll(checkout, topics.inventoryFact)).toHaveLength(2);
    // RabbitMQ matches regexes, so `*` is granted as exactly one level, not expanded against known topics.
    await checkout.publish(`commands.agent.inventory.other-${id}`, [message(chk)]);
    expect(await refusal(checkout.publish(`commands.agent.inventory.other-${id}.deeper`, [message(chk)]))).toMatchObject({ code: ErrorCodes.BUS_REJECTED });

    // Dead letters of what it consumes: inventory's failing handler moves the command to <topic>.dlq.
    const admin = await openBus({ kind: 'rabbitmq', url: adminUrl!, prefix }, { logger: silentLogger() });
    buses.push(admin);
    const dead: Delivery[] = [];
    await admin.subscribe({ group: 'test.dead-letters', topics: [`${topics.command}.dlq`], handler: async (d) => void dead.push(d) });
    await inventory.subscribe({ group: `agent.${inv}.failing`, topics: [topics.command], maxAttempts: 1, handler: async () => Promise.reject(new Error('refused on purpose')) });
    await checkout.publish(topics.command, [message(chk)]);
    await waitFor(() => dead.length === 1, { timeoutMs: 30_000, what: 'inventory dead-letters the command' });

    // The flip log: every named identity writes it and reads it (through the end marker).
    await checkout.publish('cutover.control', [message(chk)]);
    expect(await readAll(inventory, 'cutover.control')).toHaveLength(1);

    // cutover's own check refuses first, before the broker is asked.
    const guarded = signedBus(inventory, { acl: new TopicAcl(aclSchema.parse(acl)), agent: inv });
    await expect(guarded.publish(topics.checkoutFact, [message(inv)])).rejects.toMatchObject({ code: ErrorCodes.AUTH_TOPIC_DENIED });
  });
});
