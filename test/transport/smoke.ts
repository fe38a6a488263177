import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { openBus, type BusConfigInput, type Delivery } from '../../src/bus/index.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import type { CutoverError } from '../../src/errors.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A short conformance run over a secured connection: publish, a group subscription that gets every message
 * with its key, and a full read of the topic from its start. Returns what was read, for further checks.
 */
export async function transportSmoke(config: BusConfigInput): Promise<number[]> {
  const bus = await openBus(config);
  try {
    const topic = `test.transport.${randomUUID().slice(0, 8)}`;
    const got: Delivery[] = [];
    await bus.subscribe({ group: `g-${randomUUID()}`, topics: [topic], from: 'start', handler: async (d) => void got.push(d) });
    const events = [1, 2, 3].map((n) => buildEvent({ source: '/agents/test', type: 'test.event', data: { n } }));
    await bus.publish(topic, events.map((event, i) => ({ key: `k-${i}`, event })));
    await waitFor(() => got.length === 3, { timeoutMs: 30_000, what: 'three deliveries over TLS' });
    expect(got.map((d) => d.event.id).sort()).toEqual(events.map((e) => e.id).sort());
    expect(got.map((d) => d.key).sort()).toEqual(['k-0', 'k-1', 'k-2']);
    const read: number[] = [];
    for await (const d of bus.read(topic, { from: 'start', follow: false })) read.push((d.event.data as { n: number }).n);
    expect(read.sort()).toEqual([1, 2, 3]);
    return read;
  } finally {
    await bus.close();
  }
}

/** The error `open` fails with; fails the test when it succeeds (closing what it opened). */
export async function refusal(open: () => Promise<{ close(): Promise<unknown> }>): Promise<CutoverError> {
  const err = await open().then(
    async (opened) => {
      await opened.close();
      return undefined;
    },
    (e: unknown) => e as CutoverError,
  );
  expect(err, 'expected a refusal').toBeDefined();
  return err!;
}
