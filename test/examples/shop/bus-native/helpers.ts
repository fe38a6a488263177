import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildCallMessage } from '../../../../proxy/call-event.js';
import { createBus, type Bus, type Delivery } from '../../../../src/bus/index.js';
import { newTraceparent } from '../../../../src/events/cloudevent.js';
import { waitFor } from '../../../helpers/wait-for.js';

/**
 * A started embedded bus in a temporary directory, a reply topic to listen on, and a way to send call
 * events exactly as the sidecar dual-writes them.
 */
export interface Harness {
  bus: Bus;
  replies: Delivery[];
  /** Publishes calls (one publish, in order) as the sidecar would; returns their correlation ids. */
  send(calls: Array<{ flow: string; topic: string; body: unknown; key?: string | null; mode?: 'shadow' | 'bus'; method?: string; target?: string }>): Promise<string[]>;
  /** The reply to a call, once it arrived. */
  reply(id: string): Promise<Delivery>;
  close(): Promise<void>;
}

export async function harness(): Promise<Harness> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-shop-bus-'));
  const bus = await createBus({ kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '5ms' });
  await bus.start();
  const replyTo = `cutover.replies.t${randomUUID().slice(0, 8)}`;
  const replies: Delivery[] = [];
  const sub = await bus.subscribe({ group: 'test.replies', topics: [replyTo], handler: async (d) => void replies.push(d) });
  return {
    bus,
    replies,
    async send(calls) {
      const messages = calls.map((c) => {
        const id = randomUUID();
        return buildCallMessage({
          agent: 'test',
          flow: { name: c.flow, schemaVersion: '1', mode: c.mode ?? 'shadow' },
          topic: c.topic,
          id,
          traceparent: newTraceparent(),
          partitionKey: c.key ?? undefined,
          data: { body: c.body, params: {}, query: {} },
          method: c.method ?? 'POST',
          target: c.target ?? '/',
          headers: { 'content-type': 'application/json' },
          replyTo,
        });
      });
      await bus.publish(calls[0]!.topic, messages);
      return messages.map((m) => m.event.id);
    },
    reply: (id) => waitFor(() => replies.find((r) => r.event.correlationid === id), { timeoutMs: 15_000, what: `the reply to ${id}` }),
    async close() {
      await sub.close();
      await bus.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
