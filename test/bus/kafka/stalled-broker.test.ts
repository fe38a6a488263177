import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createBus } from '../../../src/bus/index.js';
import { deleteKafkaTopics } from '../../../src/bus/kafka/maintenance.js';
import { ErrorCodes } from '../../../src/errors.js';
import { buildEvent } from '../../../src/events/cloudevent.js';
import { kafkaBrokers } from '../../helpers/brokers.js';
import { settled, waitFor } from '../../helpers/wait-for.js';

const brokers = kafkaBrokers();
const topic = `test.${randomUUID()}`;

afterAll(async () => {
  if (brokers) await deleteKafkaTopics(brokers, (t) => t === topic).catch(() => undefined);
});

/**
 * A broker that stops answering while connected (SIGSTOP, a long GC pause): the sockets stay open and no
 * byte comes back. Simulated at the connection layer by no longer reading what the broker sends.
 */
describe.skipIf(!brokers)('Kafka adapter, broker that stops answering while connected', () => {
  it('fails the publish with a typed error and close() ends every connection', async () => {
    const sockets: net.Socket[] = [];
    let stalled = false;
    const connect = (host: string, port: number): net.Socket => {
      const socket = net.connect({ host, port });
      sockets.push(socket);
      if (stalled) socket.once('connect', () => socket.pause());
      return socket;
    };
    const bus = await createBus({ kind: 'kafka', brokers: brokers!, connectionTimeout: '1s', publishTimeout: '2s' }, { connect });
    const event = buildEvent({ source: '/agents/test', type: 'test.happened', data: {} });
    await bus.start();
    await bus.publish(topic, [{ key: 'k', event }]);

    stalled = true;
    for (const socket of sockets) socket.pause();
    const err = await settled(bus.publish(topic, [{ key: 'k', event }]), { timeoutMs: 30_000, what: 'the publish to fail' });
    expect([ErrorCodes.BUS_TIMEOUT, ErrorCodes.BUS_UNAVAILABLE]).toContain((err as { code: string }).code);
    expect((err as Error).message).toContain(brokers![0]);

    await settled(bus.close(), { timeoutMs: 60_000, what: 'close()' });
    await waitFor(() => sockets.every((s) => s.destroyed), { what: `every connection ended (${sockets.filter((s) => !s.destroyed).length} open)` });
  });
});
