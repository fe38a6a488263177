// Uses every part of the Kafka adapter, closes it, and then simply stops: the test that runs this checks
// that the process ends on its own, i.e. that close() left no timer or socket keeping it alive.
import { randomUUID } from 'node:crypto';
import { createBus } from '../../../src/bus/index.js';
import { buildEvent } from '../../../src/events/cloudevent.js';

const [configJson, topic] = process.argv.slice(2);
const bus = await createBus(JSON.parse(configJson!));
await bus.start();
const event = buildEvent({ source: '/agents/test', type: 'test.exit', data: { n: 1 } });
await bus.publish(topic!, [{ key: 'k', event }]);
let delivered!: () => void;
const got = new Promise<void>((resolve) => (delivered = resolve));
await bus.subscribe({ group: `g.${randomUUID()}`, topics: [topic!], handler: async () => delivered() });
// A pattern subscription too: it owns the refresh timer.
await bus.subscribe({ group: `g.${randomUUID()}`, topics: [`${topic!}.*`], handler: async () => undefined });
await got;
for await (const _ of bus.read(topic!, { from: 'start', follow: false })) break;
const follower = bus.read(topic!, { from: 'end', follow: true });
const iterator = follower[Symbol.asyncIterator]();
const pending = iterator.next();
await bus.health();
await bus.close();
await pending;
process.stdout.write('closed\n');
