import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Parser } from '@asyncapi/parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { runCli } from '../../bin/main.js';
import { demoConfigYaml, demoFlows } from '../../examples/demo/config.js';
import { asyncApiDocument } from '../../src/discovery/asyncapi.js';
import { Contract } from '../../src/discovery/contract.js';
import { DiscoveryRecorder } from '../../src/discovery/recorder.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-asyncapi-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Errors the official AsyncAPI parser reports (severity 0); warnings and hints are not failures. */
async function parserErrors(text: string): Promise<string[]> {
  const { document, diagnostics } = await new Parser().parse(text);
  const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
  if (!document && errors.length === 0) errors.push('no document');
  return errors;
}

describe('cutover asyncapi', () => {
  it('exports the demo flows as an AsyncAPI 3.0 document the official parser accepts', async () => {
    const flows = demoFlows(new Set());
    const configDir = await mkdtemp(path.join(dir, 'demo-'));
    const file = path.join(configDir, 'cutover.yaml');
    await writeFile(file, demoConfigYaml({ kind: 'embedded' }, path.join(configDir, 'data'), flows, configDir));
    const out = path.join(configDir, 'asyncapi.yaml');
    const lines: string[] = [];
    const code = await runCli(['asyncapi', '--config', file, '--out', out], { out: (s) => void lines.push(s), err: (s) => void lines.push(s) }, { env: {} });
    expect(lines.join('\n')).toBe(`wrote ${out} (AsyncAPI 3.0, ${flows.length} flows, no observed payloads)`);
    expect(code).toBe(0);
    const text = await readFile(out, 'utf8');
    expect(await parserErrors(text)).toEqual([]);

    const doc = parse(text) as { channels: Record<string, { address: string | null }>; operations: Record<string, { action: string; reply?: { address: { location: string } } }> };
    expect(Object.values(doc.channels).map((c) => c.address).filter(Boolean).sort()).toEqual(flows.map((f) => f.input.topic).sort());
    const reserve = doc.operations['inventory.reserve.send']!;
    expect(reserve.action).toBe('send');
    expect(reserve.reply!.address.location).toBe('$message.payload#/replyto');
    expect(doc.operations['inventory.reserve.receive']!.action).toBe('receive');
  });

  it('infers payload schemas from observed calls: required fields and enums where the evidence supports them', async () => {
    const recorder = new DiscoveryRecorder({ agent: 'inventory', maxTemplates: 10, maxSamples: 1, foldAfter: 8 });
    for (let i = 0; i < 30; i++) {
      recorder.record({
        method: 'POST',
        path: '/reservations',
        status: 201,
        latencyMs: 2,
        request: Buffer.from(JSON.stringify({ sku: `SKU-${i % 5}`, qty: i + 1, ...(i % 2 ? { note: 'gift' } : {}) })),
        response: Buffer.from(JSON.stringify({ reservationId: `r-${i}`, status: i % 3 ? 'held' : 'backordered' })),
      });
    }
    const doc = asyncApiDocument({
      agent: 'inventory',
      flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: 'commands.agent.inventory.reserve', schemaVersion: '1', key: 'body.sku' }],
      summaries: [recorder.current()],
    });
    expect(await parserErrors(JSON.stringify(doc))).toEqual([]);
    const messages = (doc.components as { messages: Record<string, { payload: { properties: { data: { properties: { body: unknown } } } } }> }).messages;
    expect(messages['inventory.reserve.call']!.payload.properties.data.properties.body).toEqual({
      type: 'object',
      properties: { sku: { type: 'string', enum: ['SKU-0', 'SKU-1', 'SKU-2', 'SKU-3', 'SKU-4'] }, qty: { type: 'integer' }, note: { type: 'string' } },
      required: ['sku', 'qty'],
      description: 'request body: inferred from 30 observed calls',
    });
    expect(messages['inventory.reserve.reply']!.payload.properties.data.properties.body).toMatchObject({
      properties: { reservationId: { type: 'string' }, status: { type: 'string', enum: ['backordered', 'held'] } },
      required: ['reservationId', 'status'],
    });
  });

  it('describes a JSON-RPC endpoint by its whole message, and reads back as a contract that finds drift', async () => {
    const recorder = new DiscoveryRecorder({ agent: 'planner', maxTemplates: 10, maxSamples: 1, foldAfter: 8 });
    const rpc = (id: number, method: string, params: object, result: object): void =>
      recorder.record({ method: 'POST', path: '/a2a', status: 200, latencyMs: 1, request: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method, params })), response: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, result })) });
    for (let i = 0; i < 5; i++) {
      rpc(i, 'tasks/get', { contextId: `ctx-${i % 2}`, taskId: `t-${i}` }, { state: 'completed' });
      rpc(i, 'message/send', { contextId: `ctx-${i % 2}`, message: { text: 'hi' } }, { messageId: `m-${i}` });
    }
    const doc = asyncApiDocument({ agent: 'planner', flows: [{ name: 'planner.rpc', match: { method: 'POST', path: '/a2a' }, topic: 'commands.agent.planner.rpc', schemaVersion: '1', key: 'body.params.contextId' }], summaries: [recorder.current()] });
    const text = stringify(doc);
    expect(await parserErrors(text)).toEqual([]);
    const body = (doc.components as { messages: Record<string, { payload: { properties: { data: { properties: { body: Record<string, unknown> } } } } }> }).messages['planner.rpc.call']!.payload.properties.data.properties.body;
    expect(body).toMatchObject({ required: ['jsonrpc', 'method'], properties: { method: { enum: ['tasks/get', 'message/send'] }, params: { required: ['contextId'] } } });

    const file = path.join(dir, 'planner.asyncapi.yaml');
    await writeFile(file, text);
    const contract = Contract.load(file);
    const call = (request: object, response: object = { jsonrpc: '2.0', id: 9, result: { state: 'completed' } }) => contract.drift('planner.rpc', { request, response, status: 200 });
    expect(call({ jsonrpc: '2.0', id: 9, method: 'tasks/get', params: { contextId: 'ctx-1', taskId: 't-9' } })).toBeUndefined();
    expect(call({ jsonrpc: '2.0', id: 9, method: 'tasks/get', params: { taskId: 't-9' } })).toBe('request /params/contextId: missing');
    expect(call({ jsonrpc: '2.0', id: 9, method: 'tasks/cancel', params: { contextId: 'ctx-1' } })).toBe('request /method: "tasks/cancel" is not one of "tasks/get", "message/send"');
    expect(call({ jsonrpc: '2.0', id: 9, method: 'tasks/get', params: { contextId: 'ctx-1' } }, { jsonrpc: '2.0', id: 9, result: 'done' })).toBe('response /result: expected object, got string');
    expect(contract.drift('other.flow', { request: {}, response: undefined, status: 200 })).toBeUndefined();
  });

  it('the parser check fails a broken document (the check above can fail)', async () => {
    const doc = asyncApiDocument({ agent: 'shop', flows: [{ name: 'shop.get', match: { method: 'GET', path: '/x' }, topic: 'commands.agent.shop.get', schemaVersion: '1' }] });
    (doc.operations as Record<string, { action: string }>)['shop.get.send']!.action = 'publish';
    expect(await parserErrors(JSON.stringify(doc))).not.toEqual([]);
  });

  it('gives a fire-and-forget flow no reply', async () => {
    const doc = asyncApiDocument({ agent: 'shop', flows: [{ name: 'shop.ship', match: { method: 'POST', path: '/orders/:orderId/ship' }, topic: 'events.shop.order-shipped', schemaVersion: '1', kind: 'event' }] });
    expect(await parserErrors(JSON.stringify(doc))).toEqual([]);
    expect(Object.keys(doc.channels as object)).toEqual(['shop.ship']);
    expect((doc.operations as Record<string, object>)['shop.ship.send']).not.toHaveProperty('reply');
  });
});
