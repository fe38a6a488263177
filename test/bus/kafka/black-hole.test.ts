import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from '../../../src/bus/index.js';
import { ErrorCodes } from '../../../src/errors.js';
import { buildEvent } from '../../../src/events/cloudevent.js';
import { startBlackHole, type BlackHole } from '../../helpers/black-hole.js';
import { settled, waitFor } from '../../helpers/wait-for.js';

/** The Kafka adapter against a broker that accepts connections and never answers (no real broker needed). */
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function blackHole(): Promise<BlackHole> {
  const hole = await startBlackHole();
  cleanups.push(() => hole.close());
  return hole;
}

describe('Kafka adapter, broker that never answers', () => {
  it('fails start with a typed error naming the brokers, and ends every connection it opened', async () => {
    const hole = await blackHole();
    const rounds = 3;
    for (let i = 0; i < rounds; i++) {
      const bus = await createBus({ kind: 'kafka', brokers: [hole.address], connectionTimeout: '300ms', publishTimeout: '1s' });
      const err = await settled(bus.start(), { timeoutMs: 30_000, what: 'start() to fail' });
      expect(err).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE });
      expect((err as Error).message).toContain(hole.address);
      await settled(bus.close(), { timeoutMs: 30_000, what: 'close()' });
      // Nothing survives close(): no socket, and no retry inside kafkajs that opens another one.
      await waitFor(() => hole.open === 0, { timeoutMs: 15_000, what: `round ${i}: no connection left open` });
    }
    // One admin and one producer per round at most, never an accumulation across rounds.
    expect(hole.maxOpen).toBeLessThanOrEqual(2);
  });

  it('fails a publish with a typed error and leaves nothing open after close', async () => {
    const hole = await blackHole();
    const bus = await createBus({ kind: 'kafka', brokers: [hole.address], connectionTimeout: '300ms', publishTimeout: '1s' });
    const event = buildEvent({ source: '/agents/test', type: 'test.happened', data: {} });
    const err = await settled(bus.publish('test.black.hole', [{ key: 'k', event }]), { timeoutMs: 30_000, what: 'publish to fail' });
    expect([ErrorCodes.BUS_UNAVAILABLE, ErrorCodes.BUS_TIMEOUT]).toContain((err as { code: string }).code);
    expect(await settled(bus.health(), { timeoutMs: 30_000, what: 'health' })).toMatchObject({ ok: false });
    await settled(bus.close(), { timeoutMs: 30_000, what: 'close()' });
    await waitFor(() => hole.open === 0, { timeoutMs: 15_000, what: 'no connection left open' });
  });
});
