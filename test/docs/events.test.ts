import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CloudEvent as SdkCloudEvent } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { start as startInventory } from '../../examples/agents/inventory.js';
import { CallHeaders, EXTENSIONS, ObservationTypes, observationsTopicOf } from '../../src/events/wire.js';
import { startSidecar } from '../../proxy/sidecar.js';
import { DlqHeaders } from '../../src/bus/types.js';
import { validateEvent } from '../../src/events/cloudevent.js';
import type { CloudEvent } from '../../src/events/types.js';
import { appendFlip } from '../../src/flips/log.js';
import { FLIP_TOPIC } from '../../src/flips/types.js';
import { createRegistry } from '../../src/metrics.js';
import { PARITY_OUTCOMES, PARITY_TOPIC, type ParityRecord } from '../../src/parity/types.js';
import { MemoryDedupeStore } from '../../src/handling/dedupe/index.js';
import { Comparator } from '../../shadow/comparator.js';
import { ReplayConsumer } from '../../shadow/replay-consumer.js';
import { request } from '../helpers/http.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';
import { codeBlocks, prose } from './markdown.js';

/**
 * The JSON examples in docs/events.md (blocks marked `<!-- event: NAME -->`) must be valid CloudEvents for
 * our validator and for the official SDK, and must have exactly the attributes and `data` fields that the
 * code producing that kind of event writes: an attribute added or renamed in the code fails here until the
 * doc shows it.
 */
const FILE = 'docs/events.md';

function examples(): Map<string, CloudEvent> {
  const out = new Map<string, CloudEvent>();
  for (const b of codeBlocks(FILE)) {
    const name = /^<!-- event: ([a-z]+) -->$/.exec(b.marker ?? '')?.[1];
    if (b.lang === 'json' && name) out.set(name, JSON.parse(b.text) as CloudEvent);
  }
  return out;
}

const keys = (o: object | undefined): string[] => Object.keys(o ?? {}).sort();
const dataKeys = (e: CloudEvent): string[] => keys(e.data as object);

/**
 * The same kinds of event, produced by the code paths that write them: a sidecar (on a memory bus) in front
 * of the example inventory agent for the call event and the direct observation, a shadow delivery consumer
 * for the bus reply, the comparator for the parity record (given a bus reply that differs), `appendFlip`.
 */
async function produced(doc: Map<string, CloudEvent>): Promise<Map<string, CloudEvent>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cutover-docs-events-'));
  const agent = await startInventory();
  const bus = new MemoryBus();
  const flow = { name: 'inventory.reserve', match: { method: 'POST' as const, path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow' as const };
  const sidecar = await startSidecar(
    { agent: 'inventory', listen: '127.0.0.1:0', upstream: agent.url, admin: { listen: '127.0.0.1:0', auth: false }, dataDir: dir, flows: [flow], shadow: { inProcess: false } },
    { bus, registry: createRegistry() },
  );
  try {
    const call = doc.get('call')!;
    await request(sidecar.data.url, {
      method: 'POST',
      path: '/reservations?dryRun=0',
      headers: { 'content-type': 'application/json', traceparent: call.traceparent!, authorization: 'Bearer never-on-the-bus' },
      body: JSON.stringify((call.data as { body: unknown }).body),
    });
    const callDelivery = await waitFor(() => bus.messages(flow.topic)[0], { what: 'the call event' });
    const observation = await waitFor(() => bus.messages(observationsTopicOf(flow.name))[0], { what: 'the direct observation' });

    const consumer = new ReplayConsumer({ bus, flow: { ...flow, shadow: { target: agent.url, timeout: 5_000, concurrency: 1, maxAttempts: 1 } }, dedupe: new MemoryDedupeStore() });
    await consumer.handle(callDelivery);
    await consumer.close();
    const reply = await waitFor(() => bus.messages(observationsTopicOf(flow.name)).find((d) => d.event.type === ObservationTypes.bus), { what: 'the bus reply' });

    const comparator = new Comparator({ bus, sweepInterval: 0, flows: { [flow.name]: {} } });
    await comparator.handle(observation);
    const differing = structuredClone(reply);
    (differing.event.data as { body: { qty: number } }).body.qty += 1;
    await comparator.handle(differing);
    const parity = await waitFor(() => bus.messages(PARITY_TOPIC).find((d) => (d.event.data as ParityRecord).outcome === 'mismatch'), { what: 'the parity record' });
    await comparator.close();

    await appendFlip(bus, doc.get('flip')!.data as Parameters<typeof appendFlip>[1]);
    const flip = bus.messages(FLIP_TOPIC)[0]!;
    return new Map([
      ['call', callDelivery.event],
      ['observation', observation.event],
      ['reply', reply.event],
      ['parity', parity.event],
      ['flip', flip.event],
    ]);
  } finally {
    await sidecar.close();
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('docs/events.md', () => {
  const doc = examples();

  it('shows every kind of event the toolkit writes', () => {
    expect([...doc.keys()].sort()).toEqual(['call', 'flip', 'observation', 'parity', 'reply']);
  });

  it('shows valid CloudEvents (our validator and the cloudevents SDK)', () => {
    for (const [name, event] of doc) {
      expect(() => validateEvent(event), name).not.toThrow();
      expect(() => new SdkCloudEvent(event as never), name).not.toThrow();
    }
  });

  it('shows the attributes and data fields the code writes, and no others', async () => {
    const code = await produced(doc);
    for (const [name, event] of doc) {
      const built = code.get(name)!;
      expect(keys(event), `${name}: attributes`).toEqual(keys(built));
      expect(dataKeys(event), `${name}: data fields`).toEqual(name === 'parity' ? expect.arrayContaining(dataKeys(built)) : dataKeys(built));
      expect(event.type, `${name}: type`).toBe(built.type);
      expect(event.source, `${name}: source`).toBe(built.source);
    }
    expect(doc.get('observation')!.type).toBe(ObservationTypes.direct);
    expect(doc.get('reply')!.type).toBe(ObservationTypes.bus);
  });

  it('shows a parity record whose fields are ParityRecord fields', async () => {
    const record = doc.get('parity')!.data as ParityRecord;
    expect(PARITY_OUTCOMES).toContain(record.outcome);
    const known: Array<keyof ParityRecord> = ['v', 'flow', 'correlationId', 'outcome', 'at', 'mode', 'diffs', 'noise', 'directStatus', 'busStatus', 'directLatencyMs', 'busLatencyMs', 'busLagMs', 'dlq', 'errorCode', 'request', 'eventBytes'];
    expect(known).toEqual(expect.arrayContaining(Object.keys(record) as Array<keyof ParityRecord>));
    expect(doc.get('parity')!.id).toBe(`${record.correlationId}:${record.outcome}`);
  });

  it('documents every extension attribute and transport header', () => {
    const text = prose(FILE);
    for (const name of [...EXTENSIONS, 'cutoverkid']) expect(text, name).toContain(`| \`${name}\` |`);
    for (const header of [...Object.values(CallHeaders), ...Object.values(DlqHeaders)]) expect(text, header).toContain(`| \`${header}\` |`);
    for (const topic of ['cutover.observations.<flow>', 'cutover.parity', 'cutover.control', '<topic>.dlq']) expect(text, topic).toContain(`| \`${topic}\` |`);
  });
});
