import type { Bus } from '../../src/bus/types.js';
import { PARITY_TOPIC, type ParityRecord } from '../../src/parity/types.js';

/** Subscribes to the parity topic and returns the array the records land in, as they arrive. */
export async function collectParity(bus: Bus, options: { group?: string; topic?: string; concurrency?: number } = {}): Promise<ParityRecord[]> {
  const records: ParityRecord[] = [];
  await bus.subscribe({
    group: options.group ?? 'test.parity',
    topics: [options.topic ?? PARITY_TOPIC],
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    handler: async (d) => void records.push(d.event.data as ParityRecord),
  });
  return records;
}
