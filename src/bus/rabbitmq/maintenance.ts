import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { registeredTopics } from './backfill.js';
import { rabbitNames } from './names.js';

/**
 * Deletes the named queues and exchanges (test and operations cleanup), each on a channel of its own so a
 * name that is already gone does not stop the rest. AMQP cannot list what a vhost holds: the caller names
 * what to delete (`rabbitmqctl list_queues` lists it on the broker's host).
 */
export async function deleteRabbitObjects(url: string, names: { queues?: readonly string[]; exchanges?: readonly string[] }): Promise<void> {
  const model = await amqp.connect(url);
  model.on('error', () => undefined);
  try {
    const each = async (fn: (ch: amqp.Channel) => Promise<unknown>): Promise<void> => {
      const ch = await model.createChannel();
      ch.on('error', () => undefined);
      await fn(ch).catch(() => undefined);
      await ch.close().catch(() => undefined);
    };
    for (const q of names.queues ?? []) await each((ch) => ch.deleteQueue(q));
    for (const x of names.exchanges ?? []) await each((ch) => ch.deleteExchange(x));
  } finally {
    await model.close().catch(() => undefined);
  }
}

/**
 * Deletes an installation's shared objects under `prefix` when nothing runs on it any more: the log stream
 * of every topic in its registry, the registry, the partition-count queue and the topic exchange, plus the
 * queues and exchanges of the named consumer groups (groups are not registered: name them).
 */
export async function deleteRabbitPrefixObjects(url: string, prefix: string, options: { groups?: readonly string[]; partitions?: number } = {}): Promise<void> {
  const names = rabbitNames(prefix);
  const model = await amqp.connect(url);
  model.on('error', () => undefined);
  let topics: Set<string>;
  try {
    topics = await registeredTopics(model, names).catch(() => new Set<string>());
  } finally {
    await model.close().catch(() => undefined);
  }
  const queues = [...[...topics].map((t) => names.log(t)), names.registry, names.settings];
  const exchanges = [names.exchange];
  for (const group of options.groups ?? []) {
    for (let p = 0; p < (options.partitions ?? 8); p++) queues.push(names.partition(group, p), names.history(group, p));
    queues.push(names.members(group));
    exchanges.push(names.groupExchange(group), names.historyExchange(group));
  }
  await deleteRabbitObjects(url, { queues, exchanges });
}

/**
 * The queues and exchanges of a vhost whose names start with `prefix`, listed with `rabbitmqctl` on this host
 * (AMQP cannot list them). Empty when rabbitmqctl cannot run here (the broker is elsewhere, or not ours).
 */
export async function listRabbitNames(prefix: string, vhost = '/'): Promise<{ queues: string[]; exchanges: string[] }> {
  const run = promisify(execFile);
  const listed = async (what: 'list_queues' | 'list_exchanges'): Promise<string[]> => {
    try {
      const { stdout } = await run('rabbitmqctl', [what, '-q', '-p', vhost, '--no-table-headers', 'name'], { timeout: 30_000 });
      return stdout.split('\n').map((l) => l.trim()).filter((n) => n.startsWith(prefix));
    } catch {
      return [];
    }
  };
  const [queues, exchanges] = await Promise.all([listed('list_queues'), listed('list_exchanges')]);
  return { queues, exchanges };
}
