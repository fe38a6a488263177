import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startInventory } from '../examples/agents/inventory.js';
import { startSidecar } from '../proxy/sidecar.js';
import { AgentBus } from '../src/sdk/index.js';
import { createBus } from '../src/bus/index.js';
import { createRegistry } from '../src/metrics.js';
import { SpanKind, spanContextOf, startSpan, traceparentOf } from '../src/tracing.js';
import { request } from './helpers/http.js';
import { MemoryBus } from './helpers/memory-bus.js';
import { collectParity } from './helpers/parity.js';
import { waitFor } from './helpers/wait-for.js';

const CALLER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  trace.disable();
});

/** Registers an SDK with the in-memory exporter, as a user's setup would (globally). */
function recordSpans(): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  return exporter;
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;
const named = (spans: ReadableSpan[], name: string): ReadableSpan => {
  const found = spans.filter((s) => s.name === name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};

describe('tracing helpers', () => {
  it('record nothing without an SDK: no span, so callers skip the rest', () => {
    expect(startSpan('x', SpanKind.INTERNAL, CALLER)).toBeUndefined();
  });

  it('read and write W3C traceparents', () => {
    expect(spanContextOf(CALLER)).toEqual({ traceId: TRACE_ID, spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
    expect(spanContextOf('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeUndefined();
    expect(spanContextOf('garbage')).toBeUndefined();
    recordSpans();
    const span = startSpan('x', SpanKind.INTERNAL, CALLER)!;
    expect(traceparentOf(span)).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    span.end();
  });
});

describe('one trace across the bus', () => {
  it('shadow mode: the direct call, the publish, the shadow delivery, the replay and the comparison, parents intact', async () => {
    const exporter = recordSpans();
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-trace-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const direct = await startInventory();
    const shadow = await startInventory();
    cleanups.push(() => direct.close(), () => shadow.close());
    const bus = { kind: 'embedded' as const, path: path.join(dir, 'bus.db') };
    const sidecar = await startSidecar(
      {
        agent: 'inventory', listen: '127.0.0.1:0', upstream: direct.url, admin: { listen: '127.0.0.1:0', auth: false }, bus, dataDir: dir, shadow: { window: '20s' },
        flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow', shadow: { target: shadow.url }, compare: { ignore: ['/body/reservationId', '/body/remaining'] } }],
      },
      { registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());
    const reader = await createBus(bus);
    await reader.start();
    cleanups.push(() => reader.close());
    const records = await collectParity(reader);

    const res = await request(sidecar.data.url, { method: 'POST', path: '/reservations', headers: { 'content-type': 'application/json', traceparent: CALLER }, body: JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: 'c-1' }) });
    expect(res.status).toBe(201);
    await waitFor(() => records.length === 1, { timeoutMs: 30_000, what: 'the parity record' });
    expect(records[0]!.outcome).toBe('match');
    await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'cutover compare'), { what: 'the compare span' });

    const spans = exporter.getFinishedSpans();
    const forward = named(spans, 'cutover forward');
    const publish = named(spans, 'cutover publish');
    const deliver = named(spans, 'cutover deliver');
    const replay = named(spans, 'cutover replay');
    const compare = named(spans, 'cutover compare');
    for (const s of [forward, publish, deliver, replay, compare]) expect(s.spanContext().traceId, s.name).toBe(TRACE_ID);
    expect(parentOf(forward)).toBe('00f067aa0ba902b7');
    expect(parentOf(publish)).toBe(forward.spanContext().spanId);
    expect(parentOf(deliver)).toBe(publish.spanContext().spanId);
    expect(parentOf(replay)).toBe(deliver.spanContext().spanId);
    expect(parentOf(compare)).toBe(publish.spanContext().spanId);
    expect([forward.kind, publish.kind, deliver.kind, replay.kind, compare.kind]).toEqual([SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT, SpanKind.INTERNAL]);
    expect(forward.attributes).toMatchObject({ 'http.request.method': 'POST', 'cutover.flow': 'inventory.reserve', 'http.response.status_code': 201 });
    expect(replay.attributes['http.response.status_code']).toBe(201);
    expect(compare.attributes).toMatchObject({ 'cutover.outcome': 'match', 'cutover.correlation_id': records[0]!.correlationId });
  });

  it('bus mode: the sidecar\u2019s request/reply and the SDK\u2019s bus-native handler', async () => {
    const exporter = recordSpans();
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-trace-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const bus = new MemoryBus();
    const agents = new AgentBus({ bus, agent: 'inventory' });
    cleanups.push(() => agents.close());
    await agents.subscribe('commands.agent.inventory.stock', async (ctx) => ctx.reply({ sku: (ctx.data as { params: { sku: string } }).params.sku, available: 3 }));
    const sidecar = await startSidecar(
      {
        agent: 'inventory', listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:9', admin: { listen: '127.0.0.1:0', auth: false }, dataDir: dir,
        flows: [{ name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: 'commands.agent.inventory.stock', key: 'path.sku', mode: 'bus' }],
      },
      { bus, registry: createRegistry() },
    );
    cleanups.push(() => sidecar.close());

    const res = await request(sidecar.data.url, { path: '/stock/SKU-TEAPOT', headers: { traceparent: CALLER } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ sku: 'SKU-TEAPOT', available: 3 });
    await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'cutover forward'), { what: 'the forward span' });

    const spans = exporter.getFinishedSpans();
    const forward = named(spans, 'cutover forward');
    const busRequest = named(spans, 'cutover bus request');
    const handle = named(spans, 'cutover handle');
    for (const s of [forward, busRequest, handle]) expect(s.spanContext().traceId, s.name).toBe(TRACE_ID);
    expect(parentOf(busRequest)).toBe(forward.spanContext().spanId);
    expect(parentOf(handle)).toBe(busRequest.spanContext().spanId);
    expect(handle.kind).toBe(SpanKind.CONSUMER);
    expect(busRequest.attributes['http.response.status_code']).toBe(200);
  });
});
